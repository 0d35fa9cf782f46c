"""The register_benchmarks hook: a third-party suite (the one docs/plugins.md shows) is
found and runs; a suite plugin that raises is reported by name, the others stay."""

import re
import types

import pytest
import torch

from genesys_dsl import hookimpl
from genesys_dsl.evaluate import BenchmarkSuite, EvalContext, EvaluationError, TaskInfo, TaskScore, TrainConfig
from genesys_dsl.plugins import PluginError, PluginFailure, build_registry, make_plugin_manager
from genesys_dsl.scales import get_scale
from genesys_dsl.syntax.files import read_design
from paths import ROOT, SPECS

torch.set_num_threads(1)


def documented_plugin() -> types.ModuleType:
    """The example under the register_benchmarks heading of docs/plugins.md, as a module."""
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = docs.split("## `register_benchmarks(register)`", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    module = types.ModuleType("heldout_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)
    return module


class Broken:
    @hookimpl
    def register_benchmarks(self, register):
        raise RuntimeError("no data here")


class NotASuite:
    @hookimpl
    def register_benchmarks(self, register):
        register({"name": "dict-suite"})


def test_the_documented_suite_registers_and_runs():
    registry = build_registry(make_plugin_manager({"heldout": documented_plugin()}), "register_benchmarks")
    suite = registry.lookup("heldout")
    assert isinstance(suite, BenchmarkSuite) and suite.plugin == "heldout"
    assert [t.name for t in suite.chosen(None)] == ["top1"]
    ctx = EvalContext(design=read_design(SPECS / "transformer.gab"), scale=get_scale("cpu-xs"), seed=0,
                      device=torch.device("cpu"), train=TrainConfig(tokens=4 * 8 * 32, batch_size=8,
                                                                    context_length=32))
    (score,) = suite.run(ctx, ["top1"])
    assert (score.suite, score.task, score.metric) == ("heldout", "top1", "accuracy")
    assert 0.0 <= score.score <= 1.0 and score.random_score == pytest.approx(1 / 256)


def test_a_suite_plugin_that_raises_is_reported_by_name():
    registry = build_registry(make_plugin_manager({"heldout": documented_plugin(), "broken": Broken()}),
                              "register_benchmarks")
    assert registry.failures == [PluginFailure("broken", "register_benchmarks", "RuntimeError: no data here")]
    assert list(registry) == ["heldout"]  # the other plugin's suite stays


def test_registering_something_that_is_not_a_suite_is_reported():
    registry = build_registry(make_plugin_manager({"wrong": NotASuite()}), "register_benchmarks")
    (failure,) = registry.failures
    assert failure.plugin == "wrong" and "BenchmarkSuite" in failure.message and "dict" in failure.message


def test_unknown_suites_and_tasks_name_what_exists():
    registry = build_registry(make_plugin_manager({"heldout": documented_plugin()}), "register_benchmarks")
    with pytest.raises(PluginError, match=r"unknown benchmark suite 'heldot'; did you mean 'heldout'\?"):
        registry.lookup("heldot")
    with pytest.raises(EvaluationError, match=r"suite 'heldout' has no task 'top2'.*Its tasks: top1"):
        registry.lookup("heldout").chosen(["top2"])


def test_task_scores_normalise_against_random_and_best():
    info = TaskInfo("bpb", "bits_per_byte", random_score=8.0, best_score=0.0)
    score = TaskScore("s", info.name, info.metric, 2.0, info.random_score, info.best_score)
    assert score.normalized == pytest.approx(0.75)  # lower is better here, still 0 = random, 1 = best
