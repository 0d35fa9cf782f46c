"""The evolution loop, in-process with a scripted suite (nothing trains): proposals,
deduplication, the ladder's promotions, failures, determinism, resume."""

from __future__ import annotations

import pytest

from genesys_dsl.evaluate import BenchmarkSuite, EvaluationFailed, TaskInfo, TaskScore
from genesys_dsl.evaluate import run as run_module
from genesys_dsl.evolve.config import parse_evolve_config
from genesys_dsl.evolve.loop import Evolution
from genesys_dsl.plugins import NamedRegistry
from genesys_dsl.scales import ConfigError

from paths import SPECS

SEEDS = [str(SPECS / "transformer.gab"), str(SPECS / "llama.gab"), str(SPECS / "gla.gab")]
TASK = TaskInfo("recall", "accuracy", 0.0, 1.0)


def scripted_run(ctx, tasks):
    """A deterministic score from the design's text: different designs, different scores."""
    if "fail" in ctx.design.name:
        raise EvaluationFailed("nonfinite", "loss became NaN")
    text = ctx.design.model_dump_json()
    value = (sum(map(ord, text)) % 997) / 997
    return [TaskScore("scripted", t, "accuracy", value, 0.0, 1.0, {"train_tokens": 10}) for t in tasks]


@pytest.fixture(autouse=True)
def scripted_suite(monkeypatch):
    registry = NamedRegistry(kind="benchmark suite")
    registry.add(BenchmarkSuite("scripted", "test suite", (TASK,), scripted_run, plugin="tests"))
    monkeypatch.setattr(run_module, "benchmark_registry", lambda: registry)


def config(**run):
    raw = {
        "run": {"seeds": SEEDS, "max_designs": 8, "minutes": 10, **run},
        "evaluation": {"suites": ["scripted"], "verify": False, "budgets": {"cpu-xs": 12, "cpu-s": 2, "cpu-m": 1}},
        "executor": {"name": "inprocess"},
    }
    return parse_evolve_config(raw, "test")


def evolve(run_dir, cfg=None, **kwargs):
    evolution = Evolution(cfg or config(), run_dir, **kwargs)
    try:
        evolution.run()
        return evolution
    finally:
        evolution.close()


def archive(run_dir):
    from genesys_dsl.plugins import store_registry

    return store_registry().lookup("sqlite").open(str(run_dir))


def test_a_run_archives_seeds_and_children_and_climbs_the_ladder(tmp_path):
    evolution = evolve(tmp_path)
    assert evolution.stop_reason == "every rung budget spent"
    store = archive(tmp_path)
    designs = store.designs()
    seeds = [d for d in designs if d.origin == "seed"]
    children = [d for d in designs if d.origin != "seed"]
    assert len(seeds) == 3 and children
    for child in children:
        assert child.parents and child.operator and child.proposal["search"]["kind"] == child.origin
        assert all(store.has_design(p) for p in child.parents)
    assert len({d.id for d in designs}) == len(designs)
    # every valid design was scored at the lowest rung; the best quarter climbed, within budget
    low = [d for d in designs if "cpu-xs" in store.fitness(d.id)]
    promoted = [d for d in designs if "cpu-s" in store.fitness(d.id)]
    assert len(low) == len([d for d in designs if d.status != "invalid"])
    assert len(promoted) == min(2, len(low) // 4) and len(promoted) >= 1
    # steady state: a design climbs when it is in the best quarter of those scored so far
    first_promoted = store.events("promoted")[0]["payload"]["design"]
    assert first_promoted in {d.id for d in promoted}
    assert {e.status for e in store.evaluations()} == {"ok"}
    store.close()


def test_the_same_seed_makes_the_same_run(tmp_path):
    first = [d.id for d in (evolve(tmp_path / "a"), archive(tmp_path / "a"))[1].designs()]
    second = [d.id for d in (evolve(tmp_path / "b"), archive(tmp_path / "b"))[1].designs()]
    other = [d.id for d in (evolve(tmp_path / "c", config(seed=1)), archive(tmp_path / "c"))[1].designs()]
    assert first == second and first != other


def test_an_interrupted_run_resumes_to_the_same_archive(tmp_path):
    updates = {"n": 0}

    def interrupt(_):
        updates["n"] += 1
        if updates["n"] == 4:
            raise KeyboardInterrupt

    stopped = evolve(tmp_path / "resumed", on_update=interrupt)
    assert stopped.stop_reason.startswith("interrupted")
    evolve(tmp_path / "resumed", None)  # resume: no config needed
    evolve(tmp_path / "whole")
    resumed, whole = archive(tmp_path / "resumed"), archive(tmp_path / "whole")
    assert [d.id for d in resumed.designs()] == [d.id for d in whole.designs()]
    assert ([(e.design_id, e.rung, e.status) for e in resumed.evaluations()]
            == [(e.design_id, e.rung, e.status) for e in whole.evaluations()])
    assert [e["kind"] for e in resumed.events("started")] and len(resumed.events("started")) == 2


def test_resuming_with_another_config_is_refused(tmp_path):
    evolve(tmp_path)
    with pytest.raises(ConfigError, match="was started with another configuration"):
        Evolution(config(seed=5), tmp_path)


def test_a_failing_evaluation_is_recorded_and_the_run_goes_on(tmp_path):
    failing = tmp_path / "fail.gab"
    text = (SPECS / "transformer.gab").read_text().replace("design transformer", "design fail_me", 1)
    failing.write_text(text.replace("heads: int = 8", "heads: int = 4"))  # not a duplicate of the transformer
    cfg = parse_evolve_config({**config().model_dump(), "run": {**config().run.model_dump(),
                                                                 "seeds": SEEDS + [str(failing)]}}, "test")
    evolution = evolve(tmp_path / "run", cfg)
    store = archive(tmp_path / "run")
    failed = [d for d in store.designs() if d.status == "failed"]
    assert [d.name for d in failed] == ["fail_me"] and failed[0].reason == "nonfinite"
    assert evolution.tally.failures["nonfinite"] == 1
    assert any(d.origin != "seed" for d in store.designs())


def test_bad_config_keys_are_named():
    with pytest.raises(ConfigError, match="search.mutaton: Extra inputs are not permitted"):
        parse_evolve_config({"search": {"mutaton": 0.5}}, "evolve.toml")


def test_the_command_starts_resumes_and_extends_the_budget(tmp_path, capsys):
    from genesys_dsl.cli import main

    cfg = tmp_path / "run.toml"
    seeds = ", ".join(f'"{s}"' for s in SEEDS)
    cfg.write_text(f'[run]\nseeds = [{seeds}]\nmax_designs = 3\n\n[evaluation]\nsuites = ["scripted"]\n'
                   f'verify = false\n\n[executor]\nname = "inprocess"\n')
    run_dir = tmp_path / "run"
    assert main(["evolve", "--config", str(cfg), "--run", str(run_dir), "--minutes", "0.00001", "--quiet"]) == 0
    assert "stopped: time budget spent" in capsys.readouterr().out
    assert main(["evolve", "--run", str(run_dir), "--quiet"]) == 0  # the recorded config and budget
    assert "stopped: time budget spent" in capsys.readouterr().out
    assert main(["evolve", "--run", str(run_dir), "--minutes", "10", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "stopped: every rung budget spent" in out and f"genesys archive {run_dir} top" in out
    assert "report: " in out and (run_dir / "report" / "index.html").exists()


def test_the_command_names_config_mistakes(tmp_path, capsys):
    from genesys_dsl.cli import main

    cfg = tmp_path / "run.toml"
    cfg.write_text('[run]\nladder = "cpux"\n')
    assert main(["evolve", "--config", str(cfg), "--run", str(tmp_path / "r"), "--quiet"]) == 2
    assert "unknown ladder 'cpux'" in capsys.readouterr().err
    assert main(["evolve", "--config", str(tmp_path / "missing.toml"), "--quiet"]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_unknown_names_in_the_config_fail_before_a_run_folder_is_made(tmp_path, capsys):
    from genesys_dsl.cli import main

    for body, message in (('[run]\nbackend = "gpx"\n', "unknown agent backend 'gpx'"),
                          ('[executor]\nname = "subproces"\n', "unknown executor 'subproces'"),
                          ('[evaluation]\nsuites = ["scripted:recal"]\n', "has no task 'recal'")):
        cfg = tmp_path / "run.toml"
        cfg.write_text(body)
        assert main(["evolve", "--config", str(cfg), "--run", str(tmp_path / "r"), "--quiet"]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "r").exists()
