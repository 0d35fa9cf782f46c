"""Hypothesis strategies for random, valid GAB designs (`genesys_dsl.ir.Design` trees).

Every construct of grammar/gab.lark is reachable: the design header (with and without
a description that needs escaping), scaffold settings, the block and units, tensor
parameters whose dims are expressions or `*Rest`, hyperparameters with defaults and
domains, single and named outputs, docstrings, assignments (also to several names),
returns of several values, calls with positional and keyword arguments, arithmetic
nested arbitrarily, literals, and comments in every place the tree keeps them.

Trees are built through the pydantic constructors, so they are valid IR, and they
follow the parser's conventions: a negative number in an expression is
`Neg(IntLit)`/`Neg(FloatLit)`, while defaults and domain values are plain Python
numbers that may be negative. Sizes are kept small so hundreds of examples run fast.
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from genesys_dsl import ir
from genesys_dsl.syntax.grammar import RESERVED

# ------------------------------------------------------------------ text pieces

# Names that begin like keywords: the lexer must read each as one whole name.
TRICKY_NAMES = [
    "int_", "seq2", "inner", "in_", "returns", "return_value", "true_", "falsey", "design_",
    "unit1", "blocks", "choices", "float32", "bool_", "scaffolding", "e5", "E", "_", "x", "D",
]

_FIRST = string.ascii_letters + "_"
_REST = _FIRST + string.digits

# [A-Za-z_][A-Za-z0-9_]*, never a reserved word (built from characters: from_regex is slow).
names: st.SearchStrategy[str] = st.one_of(
    st.builds(str.__add__, st.sampled_from(_FIRST), st.text(_REST, max_size=9)),
    st.sampled_from(TRICKY_NAMES),
).filter(lambda s: s not in RESERVED)

# Any character but surrogates (which cannot be saved as UTF-8).
_any_char = st.characters(exclude_categories=("Cs",))


def _chunks(fragments: list[str], max_size: int = 6) -> st.SearchStrategy[str]:
    """Text made of awkward fragments and random runs of characters."""
    piece = st.one_of(st.sampled_from(fragments), st.text(_any_char, max_size=8))
    return st.lists(piece, max_size=max_size).map("".join)


# Descriptions are printed between double quotes with \\ \" \n \t escaped.
descriptions = _chunks(['"', "\\", "\\n", "\n", "\t", "\r", "\x00", "é", "ß", "💡", "中文", " ", "#", "'", '\\"'])


def _as_docstring(text: str) -> str:
    # A docstring has no escapes: it cannot hold three quotes or end with a quote.
    while '"""' in text:
        text = text.replace('"""', '""')
    return text + "." if text.endswith('"') else text


docstrings = _chunks(['"', '""', "\n", "\n    ", "\\", "\\n", "\t", "#", "# not a comment", "{", "}", "é", "💡"]).map(
    _as_docstring
)

_comment_char = st.characters(exclude_categories=("Cs",), exclude_characters="\n\r")
# '#' and the rest of the line; the parser drops trailing whitespace, so none is generated.
comments = st.text(_comment_char, max_size=20).map(lambda s: ("#" + s).rstrip())
comment_lists = st.lists(comments, max_size=2)
maybe_comment = st.none() | comments

# ------------------------------------------------------------------ plain values

ints = st.integers(-(10**6), 10**6) | st.sampled_from([0, 1, -1, 2**31, -(2**63), 10**20])
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1e-06, -1e-06, 0.5, -0.5, 1e16, 2.5, 3.0, -0.0, 5e-324, 1.7976931348623157e308, 1e-300]
)
values: st.SearchStrategy[ir.Value] = st.one_of(ints, floats, st.booleans(), names)

# ------------------------------------------------------------------ expressions

_expr_leaves = st.one_of(
    names.map(lambda n: ir.Name(id=n)),
    st.integers(0, 10**12).map(lambda v: ir.IntLit(value=v)),
    st.floats(min_value=0.0, allow_nan=False, allow_infinity=False).map(lambda v: ir.FloatLit(value=v)),
    st.sampled_from([1e-06, 0.5, 1e16, 2.0, -0.0]).map(lambda v: ir.FloatLit(value=v)),
    st.booleans().map(lambda v: ir.BoolLit(value=v)),
    names.map(lambda f: ir.Call(func=f)),
)


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(lambda op, a, b: ir.BinOp(op=op, left=a, right=b), st.sampled_from("+-*/"), children, children),
        children.map(lambda e: ir.Neg(operand=e)),
        st.builds(
            lambda f, args, kws: ir.Call(func=f, args=args, keywords=kws),
            names,
            st.lists(children, max_size=3),
            st.lists(st.builds(lambda n, v: ir.Keyword(name=n, value=v), names, children), max_size=2),
        ),
    )


def exprs(max_leaves: int = 8) -> st.SearchStrategy:
    """Expressions: + - * / and unary minus nested arbitrarily, calls, literals, names."""
    return st.recursive(_expr_leaves, _extend, max_leaves=max_leaves)


# ------------------------------------------------------------------ types and params

dims = st.one_of(exprs(4), names.map(lambda n: ir.RestDim(name=n)))
seq_types = st.lists(dims, min_size=1, max_size=3).map(lambda ds: ir.SeqType(dims=ds))
scalar_types = st.sampled_from(["int", "float", "bool", "choice"]).map(lambda k: ir.ScalarType(kind=k))
types = st.one_of(seq_types, scalar_types)

# The values that suit each kind of hyperparameter; `values` (anything) now and then,
# since the grammar does not tie a default's form to the declared type.
_VALUES_FOR = {"int": ints, "float": floats, "bool": st.booleans(), "choice": names}


def _domains(v: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.builds(lambda lo, hi: ir.Range(low=lo, high=hi), v, v),
        st.lists(v, min_size=1, max_size=4).map(lambda vs: ir.Options(values=vs)),
    )


@st.composite
def params(draw, name: str | None = None) -> ir.Param:
    name = name if name is not None else draw(names)
    kind = draw(st.sampled_from(["seq", "seq", "int", "float", "bool", "choice"]))
    default = domain = None
    if kind == "seq":
        type_ = draw(seq_types)
    else:
        type_ = ir.ScalarType(kind=kind)
        v = draw(st.sampled_from([_VALUES_FOR[kind]] * 4 + [values]))
        default = draw(st.none() | v)
        domain = draw(_domains(v))
    return ir.Param(
        name=name, type=type_, default=default, domain=domain,
        comments=draw(comment_lists), trailing_comment=draw(maybe_comment),
    )


param_lists = st.lists(names, max_size=4, unique=True).flatmap(
    lambda ns: st.tuples(*[params(n) for n in ns]).map(list)
)

outputs = st.one_of(
    types.map(lambda t: [ir.Output(type=t)]),
    st.lists(st.builds(lambda n, t: ir.Output(name=n, type=t), names, types), min_size=1, max_size=3),
)

# ------------------------------------------------------------------ statements and units

assigns = st.builds(
    lambda targets, value, cs, tc: ir.Assign(targets=targets, value=value, comments=cs, trailing_comment=tc),
    st.lists(names, min_size=1, max_size=3),
    exprs(),
    comment_lists,
    maybe_comment,
)
returns = st.builds(
    lambda vs, cs, tc: ir.Return(values=vs, comments=cs, trailing_comment=tc),
    st.lists(exprs(), min_size=1, max_size=3),
    comment_lists,
    maybe_comment,
)
statements = st.one_of(assigns, assigns, returns)


@st.composite
def units(draw, is_block: bool = False) -> ir.Unit:
    body = draw(st.lists(statements, max_size=4))
    if body and draw(st.booleans()):
        body.append(draw(returns))  # the usual shape: assignments, then a return
    return ir.Unit(
        name=ir.BLOCK_NAME if is_block else draw(names),
        is_block=is_block,
        params=draw(param_lists),
        outputs=draw(outputs),
        doc=draw(st.none() | docstrings),
        body=body,
        comments=draw(comment_lists),
        end_comments=draw(comment_lists),
    )


scaffolds = st.lists(st.builds(lambda n, v: ir.Setting(name=n, value=v), names, values), max_size=3).map(
    lambda ss: ir.Scaffold(settings=ss)
)


@st.composite
def designs(draw) -> ir.Design:
    """A whole design: header, optional scaffold, one block and up to three units."""
    others = draw(st.lists(units(), max_size=3))
    at = draw(st.integers(0, len(others)))
    return ir.Design(
        name=draw(names),
        description=draw(st.none() | descriptions),
        scaffold=draw(st.none() | scaffolds),
        units=others[:at] + [draw(units(is_block=True))] + others[at:],
        comments=draw(comment_lists),
        end_comments=draw(comment_lists),
    )
