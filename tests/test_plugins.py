"""Plugins: loading, selection, isolation of broken plugins, `genesys plugins`, and the
example plugin installed through a real entry point."""

import ast
import inspect
import json
import os
import random
import re
import shutil
import subprocess
import sys
import types

import pytest

import genesys_dsl as g
from genesys_dsl import hookimpl, plugins
from genesys_dsl.cli import main
from genesys_dsl.gp.operator import NotApplicable, Operator, OperatorError
from genesys_dsl.gp.safety import OperatorFailure, apply_operator
from genesys_dsl.ops import primitive
from genesys_dsl.plugins import (
    PluginError, PluginFailure, build_operator_registry, build_primitive_registry, make_plugin_manager,
)
from paths import ROOT, SPECS

EXAMPLE = ROOT / "examples" / "genesys-plugin-example"
TRANSFORMER = g.parse_file(SPECS / "transformer.gab")


def activation(name: str):
    return primitive(f"{name}(x: seq[*S]) -> seq[*S]", family="activation", temporal="pointwise", summary=name)


def keep(parents, rng):
    return g.strip_spans(parents[0])


class Primitives:
    """A test plugin contributing the given primitives."""

    def __init__(self, *names):
        self.names = names

    @hookimpl
    def register_primitives(self, register):
        for name in self.names:
            register(activation(name))


class Operators:
    """A test plugin contributing one mutation operator per (name, function)."""

    def __init__(self, **functions):
        self.functions = functions

    @hookimpl
    def register_operators(self, register):
        for name, function in self.functions.items():
            register(Operator(name, arity=1, weight=1.0, function=function))


class Raising:
    """Registers one thing, then raises: a plugin with a bug."""

    @hookimpl
    def register_primitives(self, register):
        register(activation("half_done"))
        raise RuntimeError("boom")

    @hookimpl
    def register_operators(self, register):
        raise KeyError("missing")


# ------------------------------------------------------------------ registries


def test_contributions_are_stamped_with_the_plugin_name():
    pm = make_plugin_manager({"mine": Primitives("act_a"), "ops": Operators(keep=keep)})
    assert build_primitive_registry(pm).get("act_a").plugin == "mine"
    operators = build_operator_registry(pm)
    assert list(operators) == ["keep"] and operators["keep"].plugin == "ops"
    assert operators.of_arity(1) == [operators["keep"]] and operators.of_arity(2) == []


def test_duplicate_primitive_names_are_refused_naming_both_plugins():
    pm = make_plugin_manager({"first": Primitives("twice"), "second": Primitives("twice")})
    with pytest.raises(PluginError, match="primitive 'twice' is already registered by") as err:
        build_primitive_registry(pm)
    assert "first" in str(err.value) and "second" in str(err.value)


def test_duplicate_operator_names_are_refused_naming_both_plugins():
    pm = make_plugin_manager({"first": Operators(keep=keep), "second": Operators(keep=keep)})
    with pytest.raises(PluginError, match="operator 'keep' is already registered by") as err:
        build_operator_registry(pm)
    assert "first" in str(err.value) and "second" in str(err.value)


def test_a_raising_plugin_is_recorded_and_the_others_are_kept():
    pm = make_plugin_manager({"good": Primitives("act_a"), "bad": Raising(), "ops": Operators(keep=keep)})
    primitives, operators = build_primitive_registry(pm), build_operator_registry(pm)
    assert "act_a" in primitives and "half_done" not in primitives  # nothing from a plugin that failed
    assert primitives.failures == [PluginFailure("bad", "register_primitives", "RuntimeError: boom")]
    assert list(operators) == ["keep"]
    assert operators.failures == [PluginFailure("bad", "register_operators", "KeyError: 'missing'")]
    assert str(primitives.failures[0]) == "plugin 'bad' failed in register_primitives: RuntimeError: boom"


def test_registering_something_that_is_not_a_primitive_is_a_failure_of_that_plugin():
    class Wrong:
        @hookimpl
        def register_primitives(self, register):
            register("swish")

    registry = build_primitive_registry(make_plugin_manager({"wrong": Wrong()}))
    (failure,) = registry.failures
    assert failure.plugin == "wrong" and "takes a genesys_dsl.ops.Primitive, got str" in failure.message


def test_an_unknown_hook_name_fails_loudly_with_a_suggestion():
    class Typo:
        @hookimpl
        def register_primitive(self, register):  # missing "s": would silently never run
            pass

    with pytest.raises(PluginError, match="plugin 'typo' implements unknown hook 'register_primitive'; "
                                          "did you mean 'register_primitives'"):
        make_plugin_manager({"typo": Typo()})


def test_a_hook_with_wrong_arguments_fails_loudly_naming_the_plugin():
    class WrongArgs:
        @hookimpl
        def register_operators(self, add):
            pass

    with pytest.raises(PluginError, match="plugin 'wrong_args'"):
        make_plugin_manager({"wrong_args": WrongArgs()})


def test_plugin_objects_are_named_after_themselves():
    import genesys_primitives

    pm = make_plugin_manager([genesys_primitives])
    assert pm.has_plugin("genesys_primitives")


# ------------------------------------------------------------------ loading installed plugins


def test_the_default_manager_loads_the_builtins_through_entry_points():
    summaries = {s.name: s for s in plugins.plugin_summaries()}
    assert summaries["primitives"].origin.startswith("built-in (genesys-dsl ")
    assert "Linear" in summaries["primitives"].primitives
    assert plugins.plugin_failures() == []


def test_genesys_plugins_selects_by_entry_point_name(monkeypatch):
    monkeypatch.setenv("GENESYS_PLUGINS", "primitives")
    pm = make_plugin_manager()
    assert [name for name, _ in pm.list_name_plugin()] == ["primitives"]


def test_an_unknown_name_in_genesys_plugins_fails_listing_the_available(monkeypatch):
    monkeypatch.setenv("GENESYS_PLUGINS", "primitives, primitivs")
    with pytest.raises(PluginError, match="unknown plugin.*primitivs; available: .*primitives"):
        make_plugin_manager()


def test_a_plugin_that_cannot_be_imported_is_recorded_not_fatal(monkeypatch):
    monkeypatch.setitem(plugins.BUILTIN_PLUGINS, "missing", "genesys_no_such_module")
    pm = make_plugin_manager()
    (failure,) = pm.load_failures
    assert (failure.plugin, failure.hook) == ("missing", "load") and "genesys_no_such_module" in failure.message
    assert "Linear" in build_primitive_registry(pm)


# ------------------------------------------------------------------ genesys plugins


def test_cli_lists_plugins_with_origin_and_contributions(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "primitives: built-in (genesys-dsl " in out
    assert "Linear" in out
    assert main(["plugins", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    builtin = next(p for p in data["plugins"] if p["name"] == "primitives")
    assert "RMSNorm" in builtin["primitives"] and data["failures"] == []


def test_cli_reports_failing_plugins(monkeypatch, capsys):
    pm = make_plugin_manager({"good": Primitives("act_a"), "bad": Raising()})
    monkeypatch.setattr(plugins, "plugin_manager", lambda: pm)
    monkeypatch.setattr(plugins, "primitive_registry", lambda: build_primitive_registry(pm))
    monkeypatch.setattr(plugins, "registry_for", lambda hook: plugins.build_registry(pm, hook))
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert "good: registered directly\n  1 primitive: act_a\n  0 operators" in out
    assert "warning: plugin 'bad' failed in register_primitives: RuntimeError: boom" in out
    assert main(["plugins", "--format", "json"]) == 1
    failures = json.loads(capsys.readouterr().out)["failures"]
    assert {f["hook"] for f in failures} == {"register_primitives", "register_operators"}


# ------------------------------------------------------------------ operators from plugins


def operator(function, plugin="third_party"):
    return Operator("op", arity=1, weight=1.0, function=function, plugin=plugin)


def test_apply_operator_returns_a_valid_child():
    child = apply_operator(operator(keep), [TRANSFORMER], random.Random(0))
    assert g.same_design(child, TRANSFORMER)


def test_not_applicable_is_not_a_failure():
    def nothing(parents, rng):
        raise NotApplicable("nothing to edit")

    with pytest.raises(NotApplicable):
        apply_operator(operator(nothing), [TRANSFORMER], random.Random(0))


def test_wrong_number_of_parents_is_the_callers_error():
    with pytest.raises(OperatorError, match="takes 1 parent"):
        apply_operator(operator(keep), [TRANSFORMER, TRANSFORMER], random.Random(0))


def _drop_block(parents, rng):
    child = g.strip_spans(parents[0])
    child.units = [u for u in child.units if not u.is_block]
    return child


def _rename_a_call(parents, rng):
    child = g.strip_spans(parents[0])
    child.block.body[0].value.right.func = "NoSuchUnit"
    return child


def _edit_parent(parents, rng):
    parents[0].description = "changed"
    return g.strip_spans(parents[0])


@pytest.mark.parametrize("function, reason", [
    (lambda parents, rng: 1 / 0, "raised ZeroDivisionError"),
    (lambda parents, rng: "design t ...", "returned str, not a Design"),
    (_drop_block, "returned a design with"),
    (_rename_a_call, "returned a design with"),
    (_edit_parent, "changed its parents in place"),
])
def test_a_bad_operator_is_reported_with_its_plugin(function, reason):
    parent = g.strip_spans(TRANSFORMER)
    with pytest.raises(OperatorFailure, match=reason) as err:
        apply_operator(operator(function), [parent], random.Random(0))
    assert err.value.plugin == "third_party" and err.value.operator == "op"
    assert "operator 'op' (plugin third_party) failed" in str(err.value)


# ------------------------------------------------------------------ the example plugin, installed


SWISHY = """design swishy
block(x: seq[D]) -> seq[D] {
    return x + Linear(swish_beta(Linear(x, D), beta=2.0), D)
}
"""

PROBE = """
import json, random, torch
import genesys_dsl as g
from genesys_dsl.plugins import operator_registry, primitive_registry
from genesys_dsl.gp.safety import apply_operator

out = {"primitive": "swish_beta" in primitive_registry(), "operators": sorted(operator_registry())}
if out["primitive"]:
    design = g.parse(SWISHY, filename="swishy.gab")
    out["ok"] = g.check(design).ok
    out["compiled"] = "def swish_beta(" in g.compile_source(design, "cpu-xs")
    model = g.build(design, "cpu-xs", seed=0)
    out["shape"] = list(model(torch.zeros(1, 8, dtype=torch.long)).shape)[:2]
    op = operator_registry()["scale_float"]
    parent = g.parse_file(TRANSFORMER)
    child = apply_operator(op, [parent], random.Random(0))
    out["operator"] = [op.plugin, g.same_design(child, parent)]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """The example plugin pip-installed (offline) into its own folder."""
    work = tmp_path_factory.mktemp("example")
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                    "--target", str(site), str(source)], check=True, capture_output=True)
    return site


def run_with(site, argv, selection=None):
    """Python with the example's folder first on the path, so importlib.metadata sees its entry point."""
    env = {k: v for k, v in os.environ.items() if k != "GENESYS_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *sys.path])
    if selection is not None:
        env["GENESYS_PLUGINS"] = selection
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=300)


def test_example_plugin_is_listed_with_its_version(example_site):
    result = run_with(example_site, ["-m", "genesys_dsl.cli", "plugins", "--format", "json"])
    assert result.returncode == 0, result.stderr
    example = next(p for p in json.loads(result.stdout)["plugins"] if p["name"] == "example")
    assert example == {"name": "example", "origin": "genesys-plugin-example 0.1.0",
                       "primitives": ["swish_beta"], "operators": ["scale_float"], "benchmark_suites": [],
                       "agent_backends": [], "stores": [], "executors": []}


def test_example_plugin_primitive_builds_and_operator_applies(example_site):
    probe = f"SWISHY = {SWISHY!r}\nTRANSFORMER = {str(SPECS / 'transformer.gab')!r}\n{PROBE}"
    result = run_with(example_site, ["-c", probe])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["primitive"] and out["ok"] and out["compiled"] and out["shape"] == [1, 8]
    assert "scale_float" in out["operators"] and out["operator"] == ["example", False]


def test_genesys_plugins_can_leave_the_example_out(example_site):
    result = run_with(example_site, ["-m", "genesys_dsl.cli", "plugins", "--format", "json"],
                      selection="primitives")
    assert result.returncode == 0, result.stderr
    assert [p["name"] for p in json.loads(result.stdout)["plugins"]] == ["primitives"]


# ------------------------------------------------------------------ every hook documented and tested


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_code_in_docs_plugins_runs_and_registers():
    namespace: dict = {}
    for block in python_blocks((ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")):
        own: dict = {}  # each block runs on its own, as the file it shows would
        exec(compile(block, "docs/plugins.md", "exec"), own)
        namespace.update(own)
    pm = make_plugin_manager({"docs": types.SimpleNamespace(**namespace)})
    primitives, operators = build_primitive_registry(pm), build_operator_registry(pm)
    assert primitives.get("swish_beta").plugin == "docs" and not primitives.failures
    assert "swish_beta" in namespace["IMPLEMENTATIONS"]
    child = apply_operator(operators["scale_float"], [TRANSFORMER], random.Random(0))
    assert not g.same_design(child, TRANSFORMER)



def hook_names() -> list[str]:
    tree = ast.parse((ROOT / "genesys_dsl" / "hookspecs.py").read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d) == "hookspec" for d in node.decorator_list)]


def markdown_headings(text: str) -> list[str]:
    """Lines starting with '#' outside fenced code (where '#' starts a comment)."""
    headings, fenced = [], False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("#"):
            headings.append(line)
    return headings


def test_every_hook_has_a_documentation_heading_and_a_test():
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    headings = markdown_headings(docs)
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    tests = tests.replace(inspect.getsource(test_every_hook_has_a_documentation_heading_and_a_test), "")
    hooks = hook_names()
    assert len(hooks) >= 2, "hookspecs.py no longer parses as expected"
    undocumented = [h for h in hooks if not any(h in heading for heading in headings)]
    untested = [h for h in hooks if h not in tests]
    assert not undocumented, f"give these hooks a heading in docs/plugins.md: {undocumented}"
    assert not untested, f"test these hooks in a file under tests/: {untested}"
