"""The `genesys` command.

Exit codes, for every subcommand: 0 clean, 1 problems found in the input (errors,
or files `fmt --check` would change), 2 usage or I/O errors. User mistakes are
printed as located diagnostics or one-line messages, never as tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from . import __version__, ir
from .agents.backend import AgentError
from .check import check, diagnostics_dict, stats
from .check.analyze import CallRecord, UnitInfo
from .check import dims
from .compile.backends import BACKENDS, BackendError
from .evaluate.suite import EvaluationError
from .evolve.executor import ExecutorError
from .evolve.store import StoreError
from .ops.registry import RegistryError
from .plugins import PluginError
from .scales import ConfigError, get_scale, scales as configured_scales
from .syntax.diagnostics import Diagnostic, DSLError, render_all
from .syntax.files import InputError, find_specs, read_design
from .syntax.parse import parse, read_text
from .syntax.unparse import unparse

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments that argparse cannot see (e.g. an unknown scale)."""


def _color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def _scale_names(requested: list[str] | None) -> list[str]:
    if not requested:
        return list(configured_scales())
    for name in requested:
        get_scale(name)  # raises ConfigError with a did-you-mean
    return requested


def _load_all(paths: list[str]) -> tuple[list[tuple[Path, ir.Design]], list[tuple[DSLError, Path]]]:
    """Every design under `paths`; unreadable ones come back as errors, not exceptions."""
    loaded, failed = [], []
    for path in find_specs(paths):
        try:
            loaded.append((path, read_design(path)))
        except DSLError as err:
            failed.append((err, path))
    return loaded, failed


# ------------------------------------------------------------------ check


def _warn_plugin_failures() -> None:
    """A broken plugin does not stop the command; it is named once on stderr."""
    from .plugins import plugin_failures

    for failure in plugin_failures():
        print(f"genesys: warning: {failure}", file=sys.stderr)


def cmd_check(args) -> int:
    _warn_plugin_failures()
    scale_names = _scale_names(args.scale)
    diagnostics: list[Diagnostic] = []
    rendered: list[str] = []
    color = _color(sys.stdout)
    loaded, failed = _load_all(args.paths)
    for err, _ in failed:
        diagnostics += err.diagnostics
        rendered.append(err.render(color=color))
    for path, design in loaded:
        report = check(design, scale_names, file=str(path))
        diagnostics += report.diagnostics
        if report.diagnostics:
            rendered.append(report.render(color=color))
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if args.format == "json":
        print(json.dumps(diagnostics_dict(diagnostics), indent=2))
    else:
        for block in rendered:
            print(block)
        files = len(loaded) + len(failed)
        print(f"checked {files} design{'s' * (files != 1)} at {len(scale_names)} scale"
              f"{'s' * (len(scale_names) != 1)}: {errors} error{'s' * (errors != 1)}, "
              f"{warnings} warning{'s' * (warnings != 1)}")
    return EXIT_PROBLEMS if errors or (args.strict and warnings) else EXIT_OK


# ------------------------------------------------------------------ fmt


def cmd_fmt(args) -> int:
    if args.paths == ["-"]:
        text = sys.stdin.read()
        try:
            sys.stdout.write(unparse(parse(text, filename="<stdin>")))
        except DSLError as err:
            print(err.render(color=_color(sys.stderr)), file=sys.stderr)
            return EXIT_PROBLEMS
        return EXIT_OK
    problems = 0
    for path in find_specs(args.paths, suffixes=(".gab",)):
        try:
            text = read_text(path)
            formatted = unparse(parse(text, filename=str(path)))
        except DSLError as err:
            print(err.render(color=_color(sys.stderr)), file=sys.stderr)
            problems += 1
            continue
        if formatted == text:
            continue
        if args.check:
            print(f"would reformat {path}")
            problems += 1
        else:
            path.write_text(formatted, encoding="utf-8")
            print(f"reformatted {path}")
    return EXIT_PROBLEMS if problems else EXIT_OK


# ------------------------------------------------------------------ show


def cmd_show(args) -> int:
    loaded, failed = _load_all(args.paths)
    for err, _ in failed:
        print(err.render(color=_color(sys.stderr)), file=sys.stderr)
    for i, (path, design) in enumerate(loaded):
        report = check(design, [], file=str(path))
        if i:
            print()
        print(show_tree(report.design, report.infos))
        if not report.ok:
            print(f"  ({len(report.errors)} error(s): run `genesys check {path}`)")
    return EXIT_PROBLEMS if failed else EXIT_OK


def show_tree(design: ir.Design, infos: dict[str, UnitInfo]) -> str:
    """The unit tree: every call from the block down, with its hyperparameters."""
    title = f"{design.name}" + (f": {design.description}" if design.description else "")
    lines = [title]
    block = design.block
    if block is None or block.name not in infos:
        return "\n".join(lines + ["  (no block)"])
    lines.append("block")
    _show_calls(infos, infos[block.name], "", lines, {block.name})
    return "\n".join(lines)


def _show_calls(infos, info: UnitInfo, prefix: str, lines: list[str], active: set[str]) -> None:
    calls = info.calls
    for i, call in enumerate(calls):
        last = i == len(calls) - 1
        lines.append(prefix + ("└─ " if last else "├─ ") + _call_label(call))
        target = next(iter(call.targets.values()))
        if call.choice is None and target.unit is not None and target.name in infos and target.name not in active:
            _show_calls(infos, infos[target.name], prefix + ("   " if last else "│  "), lines,
                        active | {target.name})


def _call_label(call: CallRecord) -> str:
    if call.choice is not None:
        return f"{call.choice}(...)  one of {{{', '.join(call.targets)}}}"
    target = next(iter(call.targets.values()))
    bindings = call.bindings[call.callee]
    # units show every hyperparameter; primitives only what differs from their defaults
    shown = [p for p in target.params if isinstance(p.type, ir.ScalarType) and p.name in bindings
             and (target.unit is not None or bindings[p.name] != _default(p))]
    args = ", ".join(f"{p.name}={dims.show(bindings[p.name])}" for p in shown)
    kind = "unit" if target.unit is not None else target.primitive.family
    return f"{target.name}({args})  [{kind}]"


def _default(p: ir.Param):
    from .check.types import lit

    return lit(p.default) if p.type.kind == "choice" else p.default


# ------------------------------------------------------------------ stats


def cmd_stats(args) -> int:
    scale_names = _scale_names(args.scale)
    rows, problems = [], 0
    loaded, failed = _load_all(args.paths)
    for err, _ in failed:
        print(err.render(color=_color(sys.stderr)), file=sys.stderr)
        problems += 1
    for path, design in loaded:
        for name in scale_names:
            try:
                rows.append(stats(design, name))
            except DSLError as err:
                print(render_all(err.diagnostics, err.source, color=_color(sys.stderr)), file=sys.stderr)
                problems += 1
                break
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(stats_table(rows))
    return EXIT_PROBLEMS if problems else EXIT_OK


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def stats_table(rows) -> str:
    header = ("design", "scale", "params", "block params", "FLOPs/token", "non-embedding")
    body = [
        (r.design, r.scale, f"{r.params:,}", f"{r.block_params:,}", _human(r.flops_per_token),
         f"{r.params - r.parts['embedding'] - r.parts['positions']:,}")
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    fmt = lambda row: "  ".join(  # noqa: E731
        str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body])


# ------------------------------------------------------------------ compile


def cmd_compile(args) -> int:
    from .compile import compile_source

    design = read_design(args.spec)
    source = compile_source(design, args.scale, backend=args.backend)
    if args.output in (None, "-"):
        sys.stdout.write(source)
    else:
        Path(args.output).write_text(source, encoding="utf-8")
        print(f"wrote {args.output} ({len(source.splitlines())} lines)", file=sys.stderr)
    return EXIT_OK


# ------------------------------------------------------------------ verify


def cmd_verify(args) -> int:
    from .verify import verify  # imports torch: only for this command

    try:
        design = read_design(args.spec)
    except DSLError as err:
        if args.format != "json":
            raise
        print(json.dumps(diagnostics_dict(err.diagnostics), indent=2))
        return EXIT_PROBLEMS
    report = verify(design, args.scale, seed=args.seed)
    if args.format == "json":
        print(report.to_json())
    else:
        if report.diagnostics:
            print(report.render(color=_color(sys.stdout)))
        print(report.summary())
    return EXIT_OK if report.ok else EXIT_PROBLEMS


# ------------------------------------------------------------------ genetic programming


def _write_offspring(offspring, parents: list[Path], output: str | None) -> None:
    """The child spec, with a header comment saying where it came from."""
    design = offspring.design.model_copy(deep=True)
    origin = f"# {offspring.operator} of {', '.join(p.name for p in parents)}"
    design.comments = [origin] + [f"#   {edit}" for edit in offspring.edits]
    text = unparse(design)
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output}: {offspring.operator}", file=sys.stderr)
        for edit in offspring.edits:
            print(f"  {edit}", file=sys.stderr)


def _gp_call(make):
    from .gp import GPError, OperatorError

    try:
        return make()
    except (GPError, OperatorError) as err:
        raise UsageError(str(err)) from None


def cmd_mutate(args) -> int:
    from .gp import mutate

    design = read_design(args.spec)
    offspring = _gp_call(lambda: mutate(design, seed=args.seed, op=args.op))
    _write_offspring(offspring, [Path(args.spec)], args.output)
    return EXIT_OK


def cmd_cross(args) -> int:
    from .gp import crossover

    a, b = read_design(args.a), read_design(args.b)
    offspring = _gp_call(lambda: crossover(a, b, seed=args.seed, op=args.op))
    _write_offspring(offspring, [Path(args.a), Path(args.b)], args.output)
    return EXIT_OK


def cmd_diff(args) -> int:
    from .gp import canonical_hash, diff

    a, b = read_design(args.a), read_design(args.b)
    edits = diff(a, b)
    same = canonical_hash(a) == canonical_hash(b)
    if args.format == "json":
        print(json.dumps({"same_architecture": same, "edits": edits}, indent=2))
    else:
        for line in edits:
            print(line)
        if not edits:
            print("no structural difference" + (" (same canonical hash)" if same else ""))
    return EXIT_OK if not edits else EXIT_PROBLEMS


# ------------------------------------------------------------------ schema, reference


def cmd_schema(args) -> int:
    print(json.dumps(ir.json_schema(), indent=2))
    return EXIT_OK


def cmd_reference(args) -> int:
    from .reference import reference_text

    print(reference_text(), end="")
    return EXIT_OK


# ------------------------------------------------------------------ agents


def cmd_propose(args) -> int:
    from .agents.commands import propose_command

    return propose_command(args)


def cmd_prompts(args) -> int:
    from .agents.commands import prompts_command

    return prompts_command(args)


# ------------------------------------------------------------------ plugins


def cmd_plugins(args) -> int:
    from .plugins import plugin_failures, plugin_summaries

    summaries, failures = plugin_summaries(), plugin_failures()
    if args.format == "json":
        print(json.dumps({"plugins": [s.to_dict() for s in summaries],
                          "failures": [f.to_dict() for f in failures]}, indent=2))
    else:
        for s in summaries:
            print(f"{s.name}: {s.origin}")
            for kind, names in s.contributions.items():
                if names or kind in ("primitive", "operator"):
                    print(f"  {len(names)} {kind}{'s' * (len(names) != 1)}" + (f": {', '.join(names)}" if names else ""))
        for failure in failures:
            print(f"warning: {failure}")
    return EXIT_PROBLEMS if failures else EXIT_OK


# ------------------------------------------------------------------ entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genesys",
        description="Discover language-model block architectures with the GAB design language.",
    )
    parser.add_argument("--version", action="version", version=f"genesys-dsl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("check", cmd_check, "check specs (.gab or .json, files or folders) and report every problem")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--scale", action="append", metavar="NAME",
                   help="check sizes at this scale (repeatable; default: every configured scale)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")

    p = command("fmt", cmd_fmt, "format specs in place in the canonical style ('-' formats stdin to stdout)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--check", action="store_true", help="change nothing; list the files that would change")

    p = command("show", cmd_show, "print each design's unit tree")
    p.add_argument("paths", nargs="+", metavar="PATH")

    p = command("stats", cmd_stats, "print parameter counts and forward FLOPs per token")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--scale", action="append", metavar="NAME", help="scale name (repeatable; default: all)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = command("mutate", cmd_mutate, "write a mutated copy of a spec (a typed tree edit)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--seed", type=int, required=True, help="the same seed gives the same offspring")
    p.add_argument("--op", metavar="NAME", help="the operator to apply (default: one drawn by weight)")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the child (default: stdout)")

    p = command("cross", cmd_cross, "write a child of two specs (typed crossover)")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--seed", type=int, required=True, help="the same seed gives the same offspring")
    p.add_argument("--op", metavar="NAME", help="the crossover operator (default: one drawn by weight)")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the child (default: stdout)")

    p = command("diff", cmd_diff, "the structural difference of two specs, in units and edits (exit 1 if any)")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = command("compile", cmd_compile, "compile a spec to one standalone PyTorch module")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--scale", metavar="NAME", help="also check at this scale and record it as SCALE in the file")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the module (default: stdout)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="torch, triton (Triton kernels where a primitive has them; needs triton), or auto "
                        "(triton on a CUDA machine, else torch); default: $GENESYS_BACKEND, else auto")

    p = command("verify", cmd_verify, "build a spec's LM at a scale and check it runs: causality, gradients, "
                                      "parameter budget, cost relative to the transformer")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--scale", default="cpu-xs", metavar="NAME", help="scale to verify at (default: cpu-xs)")
    p.add_argument("--seed", type=int, default=0, help="initialisation and data seed (default: 0)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    command("schema", cmd_schema, "print the JSON Schema of designs in JSON form")
    command("reference", cmd_reference, "print the compact language reference (fit for an LLM prompt)")

    p = command("propose", cmd_propose, "one agent design round: propose, review and implement a child of "
                                        "SPEC (mutation) or of SPEC and SPEC2 (crossover)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("spec2", metavar="SPEC2", nargs="?")
    p.add_argument("--backend", metavar="NAME", help="agent backend (default: gp, offline; see `genesys plugins`)")
    p.add_argument("--model", metavar="M", help="model name handed to the backend")
    p.add_argument("--seed", type=int, default=0, help="seed of every request (default: 0)")
    p.add_argument("--config", metavar="FILE", help="agents settings (TOML; see docs/agents.md)")
    p.add_argument("--archive", action="append", metavar="PATH",
                   help="designs already explored (files or folders, repeatable): novelty is judged against them")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to write the child (default: stdout); the transcript goes beside it")
    p.add_argument("--transcript", metavar="FILE", help="where to write the transcript (JSON)")

    p = command("prompts", cmd_prompts, "print the agents' prompt templates (all, or one role's)")
    p.add_argument("role", metavar="ROLE", nargs="?", help="proposer, reviewer or implementer")

    p = command("plugins", cmd_plugins, "list the loaded plugins, where each came from and what it registered")
    p.add_argument("--format", choices=("text", "json"), default="text")

    from .evaluate.commands import add_commands as add_evaluation_commands

    add_evaluation_commands(command)

    from .evolve.commands import add_commands as add_evolve_commands

    add_evolve_commands(command)

    from .report.commands import add_commands as add_report_commands

    add_report_commands(command)

    from .evolve.archive_cli import add_archive_command

    add_archive_command(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (InputError, ConfigError, UsageError, PluginError, RegistryError, EvaluationError, AgentError,
            ExecutorError, StoreError, BackendError) as err:
        print(f"genesys: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except DSLError as err:
        print(err.render(color=_color(sys.stderr)), file=sys.stderr)
        return EXIT_PROBLEMS
    except BrokenPipeError:  # `genesys reference | head`
        sys.stderr.close()
        return EXIT_OK
    except OSError as err:  # an output file that cannot be written, a folder that cannot be read
        where = f"{err.filename}: " if err.filename else ""
        print(f"genesys: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
