"""`genesys evolve`: the main job, with a live view of the run."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from .config import EvolveConfig, load_evolve_config


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command("evolve", cmd_evolve, "evolve designs: propose children, score them up a ladder of scales, and "
                                      "keep everything in a crash-safe archive (resume with the same --run)")
    p.add_argument("--config", metavar="FILE", help="run configuration (TOML; docs/evolve.md). Default: "
                                                    "the bundled seeds, the gp backend, the cpu ladder, 15 minutes")
    p.add_argument("--run", metavar="DIR", help="run folder: a new one starts a run, an existing one resumes it "
                                                "(default: runs/DATE-TIME)")
    p.add_argument("--minutes", type=float, help="wall-clock budget, overriding the config's run.minutes")
    p.add_argument("--quiet", action="store_true", help="no live progress, only the final summary")
    p.add_argument("--executor", metavar="NAME", help="where evaluations run this session (inprocess, subprocess, "
                                                      "ray, ...; `genesys plugins` lists them), overriding the "
                                                      "config's executor.name")
    p.add_argument("--ray-address", metavar="ADDR", help="run evaluations on the Ray cluster at ADDR (implies "
                                                         "--executor ray; without it, ray starts a local instance)")


def cmd_evolve(args) -> int:
    from .loop import Evolution

    config = load_evolve_config(args.config) if args.config else None
    run_dir = Path(args.run or f"runs/{datetime.now():%Y%m%d-%H%M%S}")
    resuming = (run_dir / "archive.sqlite").exists()
    _check_executor_flags(args)
    view = None if args.quiet else LiveView()
    evolution = Evolution(config, run_dir, minutes=args.minutes, on_update=view.update if view else None)
    if args.executor or args.ray_address:  # this session only: not recorded in the run's config
        evolution.config = with_executor(evolution.config, args.executor, args.ray_address)
    print(f"genesys: {'resuming' if resuming else 'starting'} run {run_dir} "
          f"({evolution.config.run.minutes:g} min budget, ladder {evolution.ladder.name}, "
          f"backend {evolution.config.run.backend}, executor {evolution.config.executor.name})", file=sys.stderr)
    try:
        tally = evolution.run()
    finally:
        if view:
            view.stop()
        evolution.close()
    print(render(evolution, tally))
    print(f"archive: {run_dir / 'archive.sqlite'}  (genesys archive {run_dir} top)")
    try:  # the run is archived whatever happens here: a report that cannot be written only warns
        from ..report import write_report

        print(f"report: {write_report(run_dir)}  (genesys report {run_dir} --open)")
    except Exception as err:  # noqa: BLE001
        print(f"genesys: warning: no report written: {err}", file=sys.stderr)
    return 0


def _check_executor_flags(args) -> None:
    """Mistakes in --executor / --ray-address, caught before the run folder is made."""
    from ..cli import UsageError
    from ..plugins import executor_registry

    if args.ray_address and args.executor not in (None, "ray"):
        raise UsageError(f"--ray-address is a setting of the ray executor, not of '{args.executor}'; "
                         f"use --executor ray or leave --executor out")
    if args.executor:
        executor_registry().lookup(args.executor)  # an unknown name: PluginError with the names that exist


def with_executor(config: EvolveConfig, name: str | None, address: str | None) -> EvolveConfig:
    """`config` with the executor chosen on the command line; the settings of another
    executor are dropped (they would be unknown settings to this one)."""
    section = config.executor
    name = name or ("ray" if address else section.name)
    settings = dict(section.settings) if name == section.name else {}
    if address:
        settings["address"] = address
    return config.model_copy(update={"executor": section.model_copy(update={"name": name, "settings": settings})})


def status_lines(evolution, tally) -> list[str]:
    elapsed = tally.elapsed_before + time.monotonic() - tally.started
    budget = evolution.config.run.minutes * 60
    rungs = ", ".join(f"{r} {tally.evaluated[r]}/{evolution.budgets[r]}" for r in evolution.rungs)
    best = f"{tally.best[2]} {tally.best[0]:.4f} at {tally.best[1]}" if tally.best else "none yet"
    failures = ", ".join(f"{reason} {n}" for reason, n in tally.failures.most_common()) or "none"
    return [
        f"elapsed {elapsed / 60:.1f} of {budget / 60:.0f} min; proposed {tally.proposed} "
        f"(valid {tally.valid}, invalid {tally.invalid}, duplicates {tally.duplicates})",
        f"scored per rung (used/budget): {rungs}; {tally.designs_per_minute():.1f} designs/min",
        f"best: {best}",
        f"failures: {failures}",
    ]


def render(evolution, tally) -> str:
    return "\n".join([f"stopped: {evolution.stop_reason}", *status_lines(evolution, tally)])


class LiveView:
    """A live panel on a terminal; a status line every 30 s elsewhere (logs, CI)."""

    def __init__(self) -> None:
        self.live = None
        self.last = 0.0
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=2, transient=True)
            self.live.start()

    def update(self, evolution) -> None:
        lines = status_lines(evolution, evolution.tally)
        if self.live is not None:
            from rich.panel import Panel

            self.live.update(Panel("\n".join(lines), title="genesys evolve"))
        elif time.monotonic() - self.last > 30:
            self.last = time.monotonic()
            print("genesys: " + " | ".join(lines), file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
