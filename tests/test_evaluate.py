"""Evaluating designs: rung placement, suite choice, seeds, resume, fitness and the
`eval` / `compare` commands — with a scripted suite, so nothing here trains."""

from __future__ import annotations

import json

import pytest

from genesys_dsl import plugins
from genesys_dsl.cli import main
from genesys_dsl.evaluate import BenchmarkSuite, EvaluationError, EvaluationFailed, TaskInfo, TaskScore
from genesys_dsl.evaluate import run as run_module
from genesys_dsl.evaluate.fitness import bootstrap, fitness, paired_bootstrap
from genesys_dsl.evaluate.ladder import place, train_config
from genesys_dsl.evaluate.run import evaluate
from genesys_dsl.scales import get_ladder
from genesys_dsl.syntax.files import read_design
from genesys_dsl.syntax.parse import parse

from paths import SPECS

TRANSFORMER = SPECS / "transformer.gab"
MLP_ONLY = SPECS / "baselines" / "mlp_only.gab"


class ScriptedSuite:
    """Scores from the design's name and the seed; counts calls; fails on request."""

    def __init__(self, fail_seeds=(), crash=False):
        self.calls = []
        self.fail_seeds = set(fail_seeds)
        self.crash = crash

    def run(self, ctx, tasks):
        self.calls.append((ctx.design.name, ctx.seed, tuple(tasks)))
        if self.crash:
            raise RuntimeError("bug in the suite")
        if ctx.seed in self.fail_seeds:
            raise EvaluationFailed("nonfinite", f"loss became NaN at step 3 (seed {ctx.seed})")
        good = 0.9 if ctx.design.name == "transformer" else 0.3
        scores = {"recall": good + 0.01 * ctx.seed, "bpb": 8 * (1 - good)}
        return [TaskScore("scripted", t, INFO[t].metric, scores[t], INFO[t].random_score, INFO[t].best_score,
                          {"train_tokens": 100}) for t in tasks]

    def suite(self) -> BenchmarkSuite:
        return BenchmarkSuite("scripted", "a suite for tests", tuple(INFO.values()), self.run, plugin="tests")


INFO = {"recall": TaskInfo("recall", "accuracy", 0.1, 1.0), "bpb": TaskInfo("bpb", "bits_per_byte", 8.0, 0.0)}


def registry_with(suite: BenchmarkSuite) -> plugins.NamedRegistry:
    registry = plugins.NamedRegistry(kind="benchmark suite")
    registry.add(suite)
    return registry


@pytest.fixture
def scripted(monkeypatch):
    suite = ScriptedSuite()
    monkeypatch.setattr(run_module, "benchmark_registry", lambda: registry_with(suite.suite()))
    return suite


# ------------------------------------------------------------------ rungs


def test_a_design_near_the_target_trains_at_the_rung_scale():
    placement = place(read_design(TRANSFORMER), "cpu")
    assert placement.rung.name == "cpu-xs" and placement.fitted is None
    assert placement.scale == placement.scale.model_copy()  # the configured scale itself
    assert abs(placement.params / placement.scale.param_target - 1) <= 0.2


def test_a_design_far_from_the_target_is_fitted_to_it():
    wide = parse(TRANSFORMER.read_text().replace("ratio: float = 2.667", "ratio: float = 8.0"))
    placement = place(wide, "cpu", "cpu-xs")
    assert placement.fitted is not None
    assert abs(placement.params / placement.scale.param_target - 1) <= 0.2


def test_a_rung_whose_target_the_design_cannot_meet_is_an_error():
    huge = parse(TRANSFORMER.read_text().replace("ratio: float = 2.667 in 1.0..8.0",
                                                 "ratio: float = 4000.0 in 1.0..5000.0"))
    with pytest.raises(EvaluationError, match="cannot meet the parameter target of rung 'cpu-xs'"):
        place(huge, "cpu")


def test_unknown_ladder_and_rung_name_what_exists():
    design = read_design(TRANSFORMER)
    with pytest.raises(EvaluationError, match="no rung 'cpu-xl'.*Its rungs: cpu-xs, cpu-s, cpu-m"):
        place(design, "cpu", "cpu-xl")
    with pytest.raises(EvaluationError, match="unknown ladder 'cpux'.*Known ladders"):
        evaluate(design, ladder="cpux")


def test_training_settings_come_from_the_rung_then_overrides():
    placement = place(read_design(TRANSFORMER), "cpu")
    config = train_config(placement)
    assert config.tokens == int(get_ladder("cpu").rung().tokens_per_param * placement.scale.param_target)
    assert train_config(placement, {"lr": 1e-3}).lr == 1e-3
    with pytest.raises(EvaluationError, match="rung 'cpu-xs': lrr: Extra inputs"):
        train_config(placement, {"lrr": 1e-3})


# ------------------------------------------------------------------ suites, seeds, resume


def test_unknown_suite_and_task_names_list_what_exists(scripted):
    design = read_design(TRANSFORMER)
    with pytest.raises(EvaluationError, match="unknown benchmark suite 'scriptd'; did you mean 'scripted'"):
        evaluate(design, suites=["scriptd"])
    with pytest.raises(EvaluationError, match="suite 'scripted' has no task 'recal'; did you mean 'recall'"):
        evaluate(design, suites=["scripted:recal"])
    assert scripted.calls == []  # nothing ran


def test_scores_per_seed_with_a_fitness_interval(scripted):
    result = evaluate(read_design(TRANSFORMER), suites=["scripted"], seeds=3, base_seed=5)
    assert sorted(result.runs) == [5, 6, 7] and result.ok
    data = result.to_dict()
    assert data["per_task"]["scripted/recall"]["n"] == 3
    assert data["per_task"]["scripted/recall"]["std"] > 0
    fit = data["fitness"]
    assert fit["ci_low"] <= fit["mean"] <= fit["ci_high"] and fit["n"] == 3
    assert data["params"] == result.placement.params and data["tokens"] == 3 * 2 * 100


def test_an_interrupted_evaluation_resumes_without_redoing_finished_suites(scripted, tmp_path):
    design = read_design(TRANSFORMER)
    first = evaluate(design, suites=["scripted"], seeds=2, work_dir=tmp_path)
    assert len(scripted.calls) == 2
    again = evaluate(design, suites=["scripted"], seeds=3, work_dir=tmp_path)
    assert [c[1] for c in scripted.calls] == [0, 1, 2]  # only the new seed ran
    assert again.to_dict()["runs"]["0"] == first.to_dict()["runs"]["0"]
    evaluate(read_design(MLP_ONLY), suites=["scripted"], seeds=1, work_dir=tmp_path)
    assert scripted.calls[-1][0] == "mlp_only"  # another design never reuses these files


def test_a_failing_seed_is_recorded_and_the_others_still_run(monkeypatch):
    suite = ScriptedSuite(fail_seeds={1})
    monkeypatch.setattr(run_module, "benchmark_registry", lambda: registry_with(suite.suite()))
    result = evaluate(read_design(TRANSFORMER), suites=["scripted"], seeds=3)
    assert sorted(result.runs) == [0, 2] and not result.ok
    assert result.failures[1]["reason"] == "nonfinite"


def test_a_crashing_suite_fails_the_evaluation_naming_its_plugin(monkeypatch):
    suite = ScriptedSuite(crash=True)
    monkeypatch.setattr(run_module, "benchmark_registry", lambda: registry_with(suite.suite()))
    result = evaluate(read_design(TRANSFORMER), suites=["scripted"])
    assert result.failures[0]["reason"] == "error"
    assert "plugin 'tests'" in result.failures[0]["message"] and "bug in the suite" in result.failures[0]["message"]


# ------------------------------------------------------------------ fitness


def score(task, value, random, best, suite="s"):
    return TaskScore(suite, task, "m", value, random, best)


def test_normalisation_points_up_whichever_way_the_metric_does():
    assert score("acc", 0.55, 0.1, 1.0).normalized == pytest.approx(0.5)
    assert score("bpb", 2.0, 8.0, 0.0).normalized == pytest.approx(0.75)


def test_fitness_weighs_suites_equally_whatever_their_task_count():
    scores = [score("a", 1.0, 0, 1, "big"), score("b", 1.0, 0, 1, "big"), score("c", 1.0, 0, 1, "big"),
              score("d", 0.0, 0, 1, "small")]
    assert fitness(scores) == pytest.approx(0.5)
    assert fitness(scores, {"big": 3.0}) == pytest.approx(0.75)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = [0.1, 0.4, 0.35, 0.2, 0.5]
    first, second = bootstrap(values, seed=3), bootstrap(values, seed=3)
    assert first == second and first.ci_low < first.mean < first.ci_high


def test_paired_bootstrap_sees_a_consistent_difference_and_none_between_equals():
    a = {k: [score("x", 0.6 + 0.1 * k, 0, 1), score("y", 0.5, 0, 1)] for k in range(4)}
    b = {k: [score("x", 0.4 + 0.1 * k, 0, 1), score("y", 0.3, 0, 1)] for k in range(4)}
    diff = paired_bootstrap(a, b)
    assert diff.mean == pytest.approx(0.2) and diff.ci_low > 0
    same = paired_bootstrap(a, a)
    assert (same.mean, same.ci_low, same.ci_high) == (0, 0, 0)


# ------------------------------------------------------------------ commands


def test_eval_writes_a_results_json(scripted, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["eval", str(TRANSFORMER), "--suite", "scripted", "--seeds", "2", "--work", str(tmp_path / "w"),
                 "-o", str(out), "--quiet"])
    assert code == 0
    data = json.loads(out.read_text())
    assert {"per_task", "fitness", "tokens", "wall_seconds", "params", "flops_per_token", "runs"} <= set(data)
    assert "fitness" in capsys.readouterr().out


def test_eval_user_mistakes_are_one_line_errors(scripted, tmp_path, capsys):
    assert main(["eval", str(TRANSFORMER), "--suite", "nope", "--quiet", "--work", str(tmp_path)]) == 2
    assert "genesys: error: unknown benchmark suite 'nope'" in capsys.readouterr().err
    assert main(["eval", str(TRANSFORMER), "--suite", "scripted", "--train", "lr", "--quiet"]) == 2
    assert "--train takes KEY=VALUE" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.gab"), "--quiet"]) == 2


def test_compare_prints_the_paired_difference_as_json(scripted, tmp_path, capsys):
    code = main(["compare", str(TRANSFORMER), str(MLP_ONLY), "--suite", "scripted", "--seeds", "3",
                 "--work", str(tmp_path), "--format", "json", "--quiet"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["diff"]) == {"mean", "ci_low", "ci_high"}
    assert report["diff"]["ci_low"] > 0  # the scripted transformer is better on every task and seed
    assert set(report["per_task"]) == {"scripted/recall", "scripted/bpb"}
    assert report["a"]["design"] == "transformer" and report["b"]["design"] == "mlp_only"
