"""Assemble the generated file, and build models from it.

`compile_source(design)` returns the text of one standalone Python module;
`build(design, scale)` executes exactly that text (it is made from validated tree
nodes and the registry's own implementations, never from spec strings) and calls
its `build_model`. What runs is what a user reads with `genesys compile`.
"""

from __future__ import annotations

import hashlib
import linecache
import types
from typing import Any, Mapping

from .. import __version__, ir
from ..check import check
from ..check.checker import Report
from ..check.stats import scaffold_setting
from ..gp.hashing import canonical_hash
from ..ops.registry import Registry
from ..ops.torch_impl import PRELUDE
from ..ops.triton_impl import TRITON_PRELUDE
from ..scales import Scale, get_scale
from ..syntax.diagnostics import DSLError
from ..syntax.unparse import unparse
from . import backends
from .backends import BACKENDS
from .codegen import SIZE_HELPERS, UnitWriter, docstring
from .implementations import Implementation, ImplementationError, source_of
from .naming import FILE_NAMES, Namespace, camel

__all__ = ["BACKENDS", "build", "compile_source", "load_source"]


def _checked(design: ir.Design, registry: Registry | None, scales: list[Scale]) -> Report:
    report = check(design, scales, registry=registry)
    if not report.ok:
        raise DSLError(report.errors, report.source)
    return report


def _reachable_units(report: Report) -> list[str]:
    """Units the block uses, callees before callers (the order a reader meets them bottom-up)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:  # depth bounded by the number of units (no cycles: checked)
        seen.add(name)
        for call in report.infos[name].calls:
            for target in call.targets.values():
                if target.unit is not None and target.name not in seen:
                    visit(target.name)
        order.append(name)

    visit(report.design.block.name)
    return order


def _primitives_used(report: Report, units: list[str]) -> list[str]:
    names: list[str] = []
    for unit in units:
        for call in report.infos[unit].calls:
            for target in call.targets.values():
                if target.primitive is not None and target.name not in names:
                    names.append(target.name)
    return names


def compile_source(design: ir.Design, scale: str | Scale | Mapping[str, Any] | None = None, *,
                   registry: Registry | None = None, backend: str | None = None) -> str:
    """One standalone Python module implementing the design's LM (needs only torch, or
    torch and triton when the backend copies Triton kernels: see `backends`).

    The source does not depend on the scale: `build_model(d_model=..., n_layers=...,
    vocab_size=..., context_length=...)` builds any. With `scale`, the design is also
    checked at that scale and the file records it as `SCALE` (`build_model(**SCALE)`);
    Triton kernels are then checked to take the shapes at that scale."""
    sc = get_scale(scale) if scale is not None else None
    return _source(design, sc, registry, backends.resolve(backend), record_scale=True)


def _source(design: ir.Design, sc: Scale | None, registry: Registry | None, backend: str, *,
            record_scale: bool) -> str:
    from ..ops import registry as default_registry

    registry = registry or default_registry()
    if design.span is None:  # call sites are told apart by their place in the text
        from ..syntax.parse import parse

        design = parse(unparse(design), filename=f"<{design.name}>")
    report = _checked(design, registry, [sc] if sc else [])
    design = report.design
    units = _reachable_units(report)
    final_norm = registry.get(scaffold_setting(design, "final_norm", "RMSNorm"))
    prim_names = _primitives_used(report, units)
    if final_norm.name not in prim_names:
        prim_names.append(final_norm.name)
    bindings = None
    if sc is not None and backend != "torch":
        bindings = backends.primitive_bindings(report, sc, final_norm,
                                               scaffold_setting(design, "final_norm_eps", None))
    impls = backends.choose([registry.get(name) for name in prim_names], backend, bindings)
    kernels = [name for name, impl in impls.items() if impl.backend == "triton"]

    file_names = Namespace(FILE_NAMES | set(impls) | {"multiple_of", "round_half_up"})
    class_names = {name: file_names.claim(camel(name)) for name in units}
    writers = [UnitWriter(report.design.unit(n) or design.block, report.infos[n], class_names[n], class_names,
                          impls) for n in units]
    classes = [w.write() for w in writers]
    size_functions = set().union(*(w.size_functions for w in writers))

    parts = [_header(design, kernels), TRITON_PRELUDE if kernels else PRELUDE]
    helpers = [code for name, (_, code) in SIZE_HELPERS.items() if code and name in size_functions]
    if helpers:
        parts.append(_section("size helpers") + "\n\n\n".join(h.rstrip("\n") for h in helpers))
    parts.append(_section("primitives (copied from genesys-dsl's implementations)") + _primitive_sources(impls))
    parts.append(_section("units") + "\n\n".join(classes))
    parts.append(_section("the language model") + _language_model(design, class_names[design.block.name],
                                                                     final_norm.name))
    if sc is not None and record_scale:
        parts.append(f"# The scale this file was compiled for: {sc.name}. Build it with build_model(**SCALE).\n"
                     f"SCALE = {_scale_dict(sc)}")
    return "\n\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def _header(design: ir.Design, kernels: list[str]) -> str:
    text = f"{design.name}"
    if design.description:
        text += f": {design.description}"
    text += (f"\n\nGenerated by genesys-dsl {__version__} from design '{design.name}' "
             f"(canonical hash {canonical_hash(design)[:16]}).\n"
             "Regenerate it with `genesys compile`; edits here are not kept.")
    if kernels:
        text += (f"\nBackend triton: Triton kernels for {', '.join(kernels)}; PyTorch for the rest. They run on "
                 "a CUDA device, or on the CPU with TRITON_INTERPRET=1 set before this file runs.")
    literal = docstring(text, "")  # an escaped literal when the description needs it
    return f'"""{text}\n"""' if literal.startswith('"""') else literal


def _section(title: str) -> str:
    return f"# {'-' * 8} {title}\n\n"


def _primitive_sources(impls: dict[str, Implementation]) -> str:
    blocks: list[str] = []
    copied: dict[str, str] = {}  # top-level name in the file -> the helper target defining it
    for impl in impls.values():
        for target in impl.uses:
            name = target.rpartition(":")[2].rpartition(".")[2]
            if copied.get(name) == target:
                continue
            if name in copied:  # two plugins' helpers would overwrite each other in one namespace
                raise ImplementationError(f"helpers {copied[name]} and {target} (used by {impl.name}) are both "
                                          f"named '{name}'; a helper's name must be unique")
            copied[name] = target
            blocks.append(source_of(target))
        blocks.append(impl.source)
    return "\n\n\n".join(b.rstrip("\n") for b in blocks)


def _language_model(design: ir.Design, block_class: str, final_norm: str) -> str:
    learned_positions = scaffold_setting(design, "positions", "none") == "learned"
    tied = scaffold_setting(design, "tie_embeddings", True)
    eps = scaffold_setting(design, "final_norm_eps", None)
    norm_args = "W=d_model" + (f", eps={eps!r}" if eps is not None else "")
    lines = [
        "class LanguageModel(nn.Module):",
        f'    """Token embedding -> n_layers x {block_class} -> {final_norm} -> LM head'
        f'{" (tied to the embedding)" if tied else ""}."""',
        "",
        "    def __init__(self, d_model, n_layers, vocab_size, context_length):",
        "        super().__init__()",
        "        self.context_length = context_length",
        "        self.embedding = nn.Embedding(vocab_size, d_model)",
        "        # std 1/sqrt(d_model): a token's vector has about unit norm, on a par with what",
        "        # the blocks add to the residual stream (0.02 drowns it at small widths)",
        "        nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)",
    ]
    if learned_positions:
        lines += ["        self.positions = nn.Embedding(context_length, d_model)",
                  "        nn.init.normal_(self.positions.weight, std=0.01)"]
    lines += [
        f"        self.blocks = nn.ModuleList([{block_class}(D=d_model) for _ in range(n_layers)])",
        f"        self.norm = {final_norm}({norm_args})",
        "        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)",
    ]
    lines += ["        self.lm_head.weight = self.embedding.weight"] if tied else [
        "        nn.init.normal_(self.lm_head.weight, std=0.02)"]
    lines += [
        "",
        "    def hidden(self, input_ids):",
        '        """input_ids [batch, length] -> the final norm\'s output [batch, length, d_model],',
        '        what the LM head reads (a fused LM head + loss starts from here)."""',
        "        x = self.embedding(input_ids)",
    ]
    if learned_positions:
        lines += ["        x = x + self.positions(torch.arange(input_ids.shape[1], device=input_ids.device))"]
    lines += [
        "        for block in self.blocks:",
        "            x = block(x)",
        "        return self.norm(x)",
        "",
        "    def forward(self, input_ids):",
        '        """input_ids [batch, length] -> logits [batch, length, vocab_size]."""',
        "        return self.lm_head(self.hidden(input_ids))",
        "",
        "",
        "def build_model(d_model, n_layers, vocab_size, context_length):",
        '    """The language model at one scale."""',
        "    return LanguageModel(d_model, n_layers, vocab_size, context_length)",
    ]
    return "\n".join(lines)


def _scale_dict(sc: Scale) -> str:
    items = {"d_model": sc.d_model, "n_layers": sc.n_layers, "vocab_size": sc.vocab_size,
             "context_length": sc.context_length}
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in items.items()) + "}"


# ------------------------------------------------------------------ build


def load_source(source: str, name: str = "genesys_generated") -> types.ModuleType:
    """Execute generated source as a fresh module (our own output, never spec text)."""
    module = types.ModuleType(name)
    filename = f"<{name}>"
    if "\nimport triton\n" in source:
        # @triton.jit reads its function's source through inspect, i.e. linecache: give it the
        # text under a name unique to it (kept only for files with kernels, which are few)
        filename = f"<{name}-{hashlib.sha256(source.encode()).hexdigest()[:12]}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module.__dict__["__file__"] = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - generated from validated IR
    return module


def build(design: ir.Design, scale: str | Scale | Mapping[str, Any], *, seed: int = 0,
          registry: Registry | None = None, backend: str | None = None):
    """The design's LM at `scale` (a scale name or settings), initialised from `seed`.

    `backend` is "auto" (Triton kernels on a CUDA device, torch elsewhere), "torch" or
    "triton"; None reads $GENESYS_BACKEND, then takes auto. The same seed gives the same
    weights with every backend."""
    import torch

    backend = backends.resolve(backend)
    if backend == "triton" and not backends.interpreted() and not backends.cuda_available():
        raise backends.BackendError("backend 'triton' runs its kernels on a CUDA device, and there is none; "
                           "use backend 'auto' or 'torch', or set TRITON_INTERPRET=1 (Triton's slow CPU "
                           "interpreter, for tests) before building")
    sc = get_scale(scale)
    report = check(design, [sc], registry=registry)
    if not report.ok:
        raise DSLError(report.errors, report.source)
    source = _source(report.design, sc, registry, backend, record_scale=False)
    module = load_source(source, f"genesys_{design.name}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = module.build_model(sc.d_model, sc.n_layers, sc.vocab_size, sc.context_length)
    model.genesys_source = source
    return model
