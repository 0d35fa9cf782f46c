"""The typed tree of a GAB design (the IR).

Every node is a pydantic model with an optional source `span`, so a design can be
dumped to JSON, loaded back, validated against a JSON Schema, and compared. Spans
are carried for diagnostics only: `strip_spans` (or `same_design`) compares trees
by structure. Comments are part of the tree, so formatting a file never loses them.

Expression nodes form a tagged union on `kind`; so do types and statements.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr

def _check_docstring(text: str) -> str:
    if '"""' in text or text.endswith('"'):
        raise ValueError('a docstring cannot contain """ or end with a quote')
    return text


# Every identifier in the tree matches this pattern: JSON designs and LLM output
# cannot smuggle anything else into generated text or code.
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
Ident = Annotated[str, Field(pattern=IDENTIFIER, max_length=200)]

# A plain value: literals in defaults, domains and scaffold settings. A `str` is a
# name (a choice option, or a primitive/unit name), never free text.
# Text the printer writes back between quotes. A docstring cannot hold `"""` or end
# with a quote (there is no escape inside docstrings); comments are single lines.
Docstring = Annotated[str, AfterValidator(lambda s: _check_docstring(s)), Field(max_length=20000)]
Description = Annotated[str, Field(max_length=20000)]
Comment = Annotated[str, Field(pattern=r"^#[^\n\r]*$", max_length=20000)]

Value = Union[bool, int, Annotated[float, Field(allow_inf_nan=False)], Ident]


class Span(BaseModel):
    """1-based line/column of the first character and of the character after the last."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    line: int
    column: int
    end_line: int
    end_column: int


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")
    span: Span | None = None


# ---------------------------------------------------------------- expressions


class Name(Node):
    kind: Literal["name"] = "name"
    id: Ident


class IntLit(Node):
    kind: Literal["int"] = "int"
    value: int = Field(ge=0)


class FloatLit(Node):
    kind: Literal["float"] = "float"
    value: float = Field(ge=0, allow_inf_nan=False)


class BoolLit(Node):
    kind: Literal["bool"] = "bool"
    value: bool


class Keyword(Node):
    name: Ident
    value: Expr


class Call(Node):
    kind: Literal["call"] = "call"
    func: Ident
    args: list[Expr] = []
    keywords: list[Keyword] = []


class BinOp(Node):
    kind: Literal["binop"] = "binop"
    op: Literal["+", "-", "*", "/"]
    left: Expr
    right: Expr


class Neg(Node):
    kind: Literal["neg"] = "neg"
    operand: Expr


Expr = Annotated[
    Union[Name, IntLit, FloatLit, BoolLit, Call, BinOp, Neg], Field(discriminator="kind")
]

# ---------------------------------------------------------------------- types


class RestDim(Node):
    """`*S` in a shape: binds any number of trailing feature dims (pointwise primitives)."""

    kind: Literal["rest"] = "rest"
    name: Ident


Dim = Annotated[
    Union[Name, IntLit, FloatLit, BoolLit, Call, BinOp, Neg, RestDim],
    Field(discriminator="kind"),
]


class SeqType(Node):
    """A tensor [batch, length, *dims]: `seq[D]`, or `seq[H, E]` for multi-head values."""

    kind: Literal["seq"] = "seq"
    dims: list[Dim] = Field(min_length=1)


class ScalarType(Node):
    kind: Literal["int", "float", "bool", "choice"]


Type = Annotated[Union[SeqType, ScalarType], Field(discriminator="kind")]

# ------------------------------------------------------------------ signatures


class Range(Node):
    kind: Literal["range"] = "range"
    low: Value
    high: Value


class Options(Node):
    kind: Literal["options"] = "options"
    values: list[Value] = Field(min_length=1)


Domain = Annotated[Union[Range, Options], Field(discriminator="kind")]


class Param(Node):
    """A tensor input (`x: seq[D]`) or a hyperparameter (`heads: int = 8 in 1..64`)."""

    name: Ident
    type: Type
    default: Value | None = None
    default_span: Span | None = None
    domain: Domain | None = None
    comments: list[Comment] = []
    trailing_comment: Comment | None = None


class Output(Node):
    name: Ident | None = None
    type: Type


# ------------------------------------------------------------------ statements


class Assign(Node):
    kind: Literal["assign"] = "assign"
    targets: list[Ident] = Field(min_length=1)
    value: Expr
    comments: list[Comment] = []
    trailing_comment: Comment | None = None


class Return(Node):
    kind: Literal["return"] = "return"
    values: list[Expr] = Field(min_length=1)
    comments: list[Comment] = []
    trailing_comment: Comment | None = None


Statement = Annotated[Union[Assign, Return], Field(discriminator="kind")]

# ------------------------------------------------------------ units and design


class Unit(Node):
    """A unit definition; the design's root is a unit with `is_block` set."""

    name: Ident
    is_block: bool = False
    params: list[Param] = []
    outputs: list[Output] = Field(min_length=1)
    doc: Docstring | None = None
    body: list[Statement] = []
    comments: list[Comment] = []
    end_comments: list[Comment] = []
    name_span: Span | None = None


class Setting(Node):
    name: Ident
    value: Value


class Scaffold(Node):
    """Settings of the fixed LM around the block: `scaffold(positions=learned)`."""

    settings: list[Setting] = []


class Signature(Node):
    """A unit header without a body: how primitives declare their interface."""

    name: Ident
    params: list[Param] = []
    outputs: list[Output] = Field(min_length=1)


class Design(Node):
    name: Ident
    description: Description | None = None
    scaffold: Scaffold | None = None
    units: list[Unit] = Field(min_length=1)
    comments: list[Comment] = []
    end_comments: list[Comment] = []
    # Where a parsed design came from, so diagnostics can show the source line.
    _source: str | None = PrivateAttr(default=None)
    _file: str | None = PrivateAttr(default=None)

    @property
    def block(self) -> Unit | None:
        return next((u for u in self.units if u.is_block), None)

    def unit(self, name: str) -> Unit | None:
        return next((u for u in self.units if u.name == name and not u.is_block), None)


for _model in (Keyword, Call, BinOp, Neg, SeqType, Param, Output, Assign, Return, Unit, Design):
    _model.model_rebuild()


# ------------------------------------------------------------ JSON round trip

BLOCK_NAME = "block"  # the name the root unit carries in the tree and in messages


def _drop_spans(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _drop_spans(v)
            for k, v in value.items()
            if k not in ("span", "name_span", "default_span")
        }
    if isinstance(value, list):
        return [_drop_spans(v) for v in value]
    return value


def to_data(design: Design, *, spans: bool = True) -> dict[str, Any]:
    """The JSON-ready form of a design (the form `genesys schema` describes)."""
    data = design.model_dump(mode="json", exclude_defaults=False)
    return data if spans else _drop_spans(data)


def strip_spans(design: Design) -> Design:
    """The same tree with every span removed, for structural comparison."""
    return Design.model_validate(to_data(design, spans=False))


def same_design(a: Design, b: Design) -> bool:
    """True when two designs are the same tree, wherever they came from."""
    return to_data(a, spans=False) == to_data(b, spans=False)


def dumps(design: Design, *, spans: bool = False, indent: int | None = 2) -> str:
    return json.dumps(to_data(design, spans=spans), indent=indent, sort_keys=False)


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the JSON form of a design."""
    schema = Design.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "GAB design"
    return schema
