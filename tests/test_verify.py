"""Functional verification: seeds pass; leaks, dead parameters, infs, crashes and budgets are found."""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn as nn

import genesys_dsl as g
from genesys_dsl.cli import main
from genesys_dsl.ops import Registry, primitive, registry
from genesys_dsl.verify import VerifyReport, verify
from genesys_dsl.verify.causality import cut_points
from genesys_dsl.verify.memory import LiveBytes
from genesys_primitives.torch_ops import TorchImpl
from paths import SPECS, seed_paths

# ---------------------------------------------------------------- test-only primitives
# This module serves as their torch implementation module (Primitive.torch): the
# compiler copies these functions into the generated model like any other.


def future_shift(x):
    """The next token's features: declared causal below, but it reads the future."""
    return torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)


def chunk_leak(x):
    """Causal, except that the last position of each 64-token chunk also sees the next token
    (the bug of a chunked scan that takes one token too many); invisible below 65 tokens."""
    ahead = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)
    last = (torch.arange(x.shape[1], device=x.device) % 64 == 63).to(x.dtype)
    return x + ahead * last.view(1, -1, *([1] * (x.dim() - 2)))


def overflow(x):
    """x times infinity: inf (and NaN downstream) in any precision."""
    return x * float("inf")


class lookahead(nn.Module):
    """x + g * (the next token's features), with a learned gain g: a leak inside a learned primitive."""

    def __init__(self, W):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(W))

    def forward(self, x):
        return x + self.gain * torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)


def broken(x):
    """A shape error at run time."""
    return x @ x


def interrupted(x):
    raise KeyboardInterrupt


IMPLEMENTATIONS = {name: TorchImpl(f"{__name__}:{name}", "function")
                   for name in ("future_shift", "chunk_leak", "overflow", "broken", "interrupted")}
IMPLEMENTATIONS["lookahead"] = TorchImpl(f"{__name__}:lookahead", "module")


@pytest.fixture(scope="module")
def lying_registry():
    """The built-in primitives plus the ones above; the three leaky ones falsely declared causal."""
    reg = Registry(dict(registry().primitives))
    for name in IMPLEMENTATIONS:
        temporal = "causal" if name in ("future_shift", "chunk_leak", "lookahead") else "pointwise"
        shape = "W" if name == "lookahead" else "*S"
        prim = primitive(f"{name}(x: seq[{shape}]) -> seq[{shape}]", family="test", temporal=temporal,
                         summary=name, params=(lambda b: b["W"]) if name == "lookahead" else lambda b: 0)
        reg.register(replace(prim, torch=__name__))
    return reg


def design_calling(primitive_name: str) -> g.Design:
    """A block whose unit Mixer calls the primitive between two projections."""
    return g.parse(f"""design uses_{primitive_name}
block(x: seq[D]) -> seq[D] {{
    x = x + Mixer(RMSNorm(x))
    return x + Linear(x, D)
}}

unit Mixer(x: seq[D]) -> seq[D] {{
    return Linear({primitive_name}(Linear(x, D)), D)
}}
""")


def only(report: VerifyReport, code: str):
    found = [d for d in report.diagnostics if d.code == code]
    assert len(found) == 1, report.render()
    return found[0]


# ---------------------------------------------------------------- the seeds

@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_seed_verifies_clean(path):
    # default CPU thresholds: time only warns there (see Thresholds.for_device)
    report = verify(g.parse_file(path), "cpu-xs", efficiency_steps=2)
    assert report.errors == [], report.render()
    assert {d.code for d in report.warnings} <= {"verify-param-budget", "verify-time", "verify-memory"}
    causality, efficiency = report.figures["causality"], report.figures["efficiency"]
    assert causality["cuts"] >= 15 and causality["max_change"] <= 1e-12
    assert report.figures["gradients"]["without_gradient"] == []
    assert 0 < efficiency["time_ratio"] < 10 and efficiency["memory_bytes"] > 0  # a sanity bound only


def test_the_transformer_costs_what_the_transformer_costs():
    report = verify(g.parse_file(SPECS / "transformer.gab"), "cpu-xs", efficiency_steps=2)
    assert report.ok and all(d.code == "verify-time" for d in report.diagnostics), report.render()
    efficiency = report.figures["efficiency"]
    assert efficiency["memory_ratio"] == pytest.approx(1.0, abs=0.01)  # the same design: the same bytes
    assert 0.3 < efficiency["time_ratio"] < 3


def test_live_bytes_counts_each_new_storage_once():
    with LiveBytes() as meter:
        a = torch.ones(1000)  # 4000 bytes
        b = a * 2  # 8000 live
        del a  # 4000
        b.view(10, 100).add_(1)  # a view and an in-place update allocate nothing
        c = torch.ones(500)  # 6000
    assert (meter.peak, meter.now) == (8000, 6000)
    del b, c


# ---------------------------------------------------------------- causality


def test_cut_points_straddle_chunk_boundaries():
    assert cut_points(165) == [0, 15, 16, 31, 32, 63, 64, 82, 127, 128, 163]


def test_a_leaky_primitive_is_caught_and_located(lying_registry):
    design = design_calling("future_shift")
    assert g.check(design, ["cpu-xs"], registry=lying_registry).ok  # the static check believes the lie
    report = verify(design, "cpu-xs", registry=lying_registry, checks=("causality",))
    d = only(report, "verify-causality")
    assert d.is_error and "blocks.0.mixer: future_shift() (primitive future_shift)" in d.message
    leak = report.figures["causality"]["leak"]
    assert (leak["cut"], leak["module"]) == (0, "blocks.0.mixer: future_shift()")


def test_a_leak_at_chunk_boundaries_is_caught(lying_registry):
    report = verify(design_calling("chunk_leak"), "cpu-xs", registry=lying_registry, checks=("causality",))
    only(report, "verify-causality")
    leak = report.figures["causality"]["leak"]
    assert leak["cut"] == 63 and leak["module"] == "blocks.0.mixer: chunk_leak()"


def test_a_leak_in_a_learned_primitive_names_the_module(lying_registry):
    report = verify(design_calling("lookahead"), "cpu-xs", registry=lying_registry, checks=("causality",))
    assert "blocks.0.mixer.lookahead (primitive lookahead)" in only(report, "verify-causality").message


# ---------------------------------------------------------------- gradients, finiteness, crashes

UNUSED = """design unused
block(x: seq[D]) -> seq[D] {
    _unused = Linear(x, D)
    return x + Linear(x, D)
}
"""


def test_a_parameter_without_gradient_is_named():
    report = verify(g.parse(UNUSED), "cpu-xs", checks=("gradients",))
    d = only(report, "verify-gradient")
    assert "blocks.0._unused.weight" in d.message and "blocks.1._unused.weight" in d.message
    assert report.figures["gradients"]["without_gradient"] == ["blocks.0._unused.weight", "blocks.1._unused.weight"]


def test_zero_initialised_layers_are_not_mistaken_for_dead_ones():
    # Scale(init=0.0) zeroes the branch at initialisation, so the Linear before it gets a zero gradient
    design = g.parse("design gated\nblock(x: seq[D]) -> seq[D] {\n    return x + Scale(Linear(x, D), init=0.0)\n}\n")
    report = verify(design, "cpu-xs", checks=("gradients",))
    assert report.ok and not report.diagnostics, report.render()


def test_non_finite_outputs_are_reported_where_they_appear(lying_registry):
    report = verify(design_calling("overflow"), "cpu-xs", registry=lying_registry,
                    checks=("causality", "gradients"))
    d = only(report, "verify-nonfinite")
    assert d.is_error and "blocks.0.mixer: overflow()" in d.message
    assert "skipped" in report.figures["causality"]  # no leak is claimed from NaN


def test_a_crashing_model_gives_a_report_not_an_exception(lying_registry):
    report = verify(design_calling("broken"), "cpu-xs", registry=lying_registry)
    crashes = [d for d in report.diagnostics if d.code == "verify-crash"]
    assert {d.message.split(" check")[0] for d in crashes} == {"the causality", "the gradients", "the efficiency"}
    assert "RuntimeError" in crashes[0].message and not report.ok


def test_keyboard_interrupt_is_not_swallowed(lying_registry):
    with pytest.raises(KeyboardInterrupt):
        verify(design_calling("interrupted"), "cpu-xs", registry=lying_registry, checks=("gradients",))


def test_a_design_that_fails_check_gets_check_errors():
    design = g.parse("design bad\nblock(x: seq[D]) -> seq[D] {\n    return split_heads(x, 3)\n}\n")
    report = verify(design, "cpu-xs")
    assert not report.ok and report.errors[0].code in ("return-type", "dim-not-integer", "shape-mismatch")
    assert report.figures == {}


# ---------------------------------------------------------------- budget


def test_a_design_off_budget_gets_a_fitted_scale():
    design = g.parse("design thin\nblock(x: seq[D]) -> seq[D] {\n    return x + Linear(x, D)\n}\n")
    report = verify(design, "cpu-xs", checks=("budget",))
    d = only(report, "verify-param-budget")
    assert d.severity == "warning" and "d_model=184, n_layers=2" in d.message
    fit = report.figures["budget"]["fit"]
    assert (fit["changed"], fit["d_model"], fit["n_layers"]) == ("width", 184, 2)
    assert fit["params"] == g.stats(design, {"d_model": 184, "n_layers": 2, "vocab_size": 256,
                                             "context_length": 128}).params


def test_depth_is_fitted_before_width():
    report = verify(g.parse_file(SPECS / "baselines" / "mlp_only.gab"), "cpu-xs", checks=("budget",))
    fit = report.figures["budget"]["fit"]
    assert (fit["changed"], fit["d_model"], fit["n_layers"]) == ("depth", 64, 3) and report.ok


def test_a_design_no_fit_can_rescue_is_an_error():
    design = g.parse("design tiny\nblock(x: seq[D]) -> seq[D] {\n    return x + Scale(x)\n}\n")
    report = verify(design, "cpu-xs", checks=("budget",))
    assert only(report, "verify-param-budget").is_error and "fit" not in report.figures["budget"]


# ---------------------------------------------------------------- command line


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verify_json(capsys):
    code, out, _ = run(capsys, "verify", str(SPECS / "transformer.gab"), "--scale", "cpu-xs", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["scale"] == "cpu-xs"
    assert set(data["figures"]) == {"budget", "causality", "gradients", "efficiency"}


def test_cli_verify_reports_problems_with_exit_1(tmp_path, capsys):
    spec = tmp_path / "unused.gab"
    spec.write_text(UNUSED)
    code, out, _ = run(capsys, "verify", str(spec), "--scale", "cpu-xs", "--seed", "3")
    assert code == 1
    assert f"{spec}: error[verify-gradient]" in out and "blocks.0._unused.weight" in out
    assert "verified unused at cpu-xs: 1 error" in out


def test_cli_verify_usage_errors_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, "verify", str(SPECS / "transformer.gab"), "--scale", "cpu-xxs")
    assert code == 2 and "unknown scale" in err and "Traceback" not in err
    code, _, err = run(capsys, "verify", str(tmp_path / "missing.gab"), "--scale", "cpu-xs")
    assert code == 2 and "Traceback" not in err


def test_cli_verify_json_for_a_spec_that_does_not_parse(tmp_path, capsys):
    spec = tmp_path / "syntax.gab"
    spec.write_text("design s\nblock(x: seq[D]) -> seq[D] {\n    return x +\n}\n")
    code, out, _ = run(capsys, "verify", str(spec), "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["diagnostics"][0]["code"] == "syntax"
