"""The bodies of `genesys propose` and `genesys prompts` (registered in genesys_dsl/cli.py).

Exit codes as everywhere: 0 a valid child, 1 no valid child (the reason on one
line) or parents that do not check, 2 usage, configuration or backend errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..check import check
from ..gp import canonical_hash
from ..syntax.files import find_specs, read_design
from ..syntax.unparse import unparse
from .backend import ROLES, AgentError
from .config import load_config
from .flow import RoundResult, run_round
from .prompts import template, template_text
from .transcript import transcript_path

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def propose_command(args) -> int:
    from ..plugins import agent_registry

    config = load_config(args.config, backend=args.backend)
    backend = agent_registry().lookup(config.backend)  # PluginError lists the backends
    paths = [Path(p) for p in [args.spec] + ([args.spec2] if args.spec2 else [])]
    parents = [read_design(p) for p in paths]
    for path, parent in zip(paths, parents):
        report = check(parent, list(config.scales), file=str(path))
        if not report.ok:
            print(report.render(), file=sys.stderr)
            print(f"genesys: error: {path} does not check clean at {', '.join(config.scales)}; "
                  "fix it before proposing from it", file=sys.stderr)
            return EXIT_PROBLEMS
    archive = [read_design(p) for p in find_specs(args.archive)] if args.archive else []
    try:
        client = backend.create(config.backend_config(args.model))
    except AgentError:
        raise
    except Exception as err:  # noqa: BLE001 - a plugin's bug, reported with its name
        raise AgentError(f"agent backend '{backend.name}' (plugin {backend.plugin}) failed to start: "
                         f"{type(err).__name__}: {err}") from None
    result = run_round(parents, client, config.flow, seed=args.seed, backend=backend.name,
                       parent_names=[p.name for p in paths], siblings=archive,
                       archive_hashes=[canonical_hash(d) for d in archive])
    _write(result, paths, args, backend.name)
    if result.ok:
        return EXIT_OK
    print(f"genesys: no valid child: {result.status}: {result.reason}", file=sys.stderr)
    return EXIT_USAGE if result.status == "backend-error" else EXIT_PROBLEMS


def _write(result: RoundResult, parents: list[Path], args, backend: str) -> None:
    transcript = args.transcript or (transcript_path(args.output) if args.output not in (None, "-") else None)
    if result.child is not None:
        child = result.child.model_copy(deep=True)
        title = result.proposal.title if result.proposal else ""
        child.comments = [f"# proposed by {backend} from {', '.join(p.name for p in parents)} "
                          f"(seed {args.seed}): {' '.join(title.split())}"[:300]]
        child.comments += [f"#   {edit}" for edit in result.transcript.result.get("edits", [])]
        if transcript:
            child.comments.append(f"# transcript: {Path(transcript).name}")
        text = unparse(child)
        if args.output in (None, "-"):
            sys.stdout.write(text)
        else:
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"wrote {args.output}", file=sys.stderr)
    if transcript:
        result.transcript.write(transcript)
        print(f"wrote {transcript}", file=sys.stderr)
    else:
        print("transcript not written (give -o FILE or --transcript FILE)", file=sys.stderr)
    usage = result.transcript.to_dict()["usage"]
    for role, u in usage["by_role"].items():
        if u["requests"]:
            print(f"  {role}: {u['requests']} request(s), {u['prompt_tokens']}+{u['completion_tokens']} tokens, "
                  f"${u['cost']:.4f}", file=sys.stderr)
    if result.ok:
        print(f"  {result.status}: {result.reason}; units: "
              + ", ".join(f"{n} {s}" for n, s in result.units.items()), file=sys.stderr)


def prompts_command(args) -> int:
    roles = [args.role] if args.role else list(ROLES)
    for i, role in enumerate(roles):
        text = template_text(role)  # AgentError lists the roles
        if len(roles) > 1:
            print(("\n" if i else "") + f"==> {role} ({template(role).label}) <==")
        print(text, end="" if text.endswith("\n") else "\n")
    return EXIT_OK
