"""benchmarks/bench_kernels.py --check: the kernel benchmark's harness run once, small, on
the CPU under Triton's interpreter, so that a GPU session's few minutes are not lost to a
crash in it. Every case's implementations run forward and backward, triton's results are
held to torch's, fla's calls are bound to fla's signatures, and the seeds take a training
step with each backend. About 20 s. And benchmarks/profile_step.py, which shares a
training step out by primitive: it finds every primitive call and leaves the model as it was."""

import re

import pytest
import torch
from paths import ROOT, load_script

pytest.importorskip("triton", reason="triton is not installed (pip install -c constraints.txt -e '.[triton]')")


@pytest.fixture(scope="module")
def bench():
    yield from load_script("bench_kernels")


@pytest.fixture(scope="module")
def profiler():
    yield from load_script("profile_step")


def test_check_runs_every_case_and_seed_and_passes(bench, capsys):
    code = bench.main(["--check"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out
    for kernel in bench.KERNELS:
        assert re.search(rf"^ok +{kernel} torch +forward and backward", out, re.MULTILINE), kernel
        assert re.search(rf"^ok +{kernel} triton +matches torch", out, re.MULTILINE), kernel
    for kernel in ("rms_norm", "add_rms_norm", "causal_conv", "gla", "retention", "ssd"):  # fla has these
        assert re.search(rf"^ok +{kernel} fla +binds to fla\.", out, re.MULTILINE), kernel
    for seed in bench.STEP_SEEDS:
        for backend in ("torch", "triton"):
            assert re.search(rf"^ok +step {seed} {backend} +one AdamW step, loss \d", out, re.MULTILINE), (seed, backend)
    assert "check: everything passed" in out


def test_a_kernel_that_computes_wrong_fails_the_check_naming_it(bench, monkeypatch, capsys):
    right_cases = bench.KERNELS["rms_norm"]

    def wrong_cases(sc, batch, where):
        cases = right_cases(sc, batch, where)
        for case in cases:
            right = case.impls["triton"]
            case.impls["triton"] = lambda right=right: right() * 1.01
        return cases

    monkeypatch.setitem(bench.KERNELS, "rms_norm", wrong_cases)
    code = bench.main(["--check", "--kernels", "rms_norm", "head_rms_norm", "--no-steps"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert re.search(r"^FAIL +rms_norm triton +output 0 differs from torch", out, re.MULTILINE), out
    assert re.search(r"^ok +head_rms_norm triton +matches torch", out, re.MULTILINE), out
    assert "check: FAILED" in out


def test_an_fla_call_with_a_renamed_keyword_does_not_bind(bench):
    def chunk_op(q, k, v, scale=None, initial_state=None, **kwargs):  # as fla's functions are declared
        raise AssertionError("the probe must not run the function")

    probe = bench.binding_probe(chunk_op)
    with pytest.raises(bench.FlaCallBound):
        probe(1, 2, 3, scale=0.5)
    with pytest.raises(TypeError, match="has no parameter 'scael'"):  # swallowed by **kwargs otherwise
        probe(1, 2, 3, scael=0.5)
    with pytest.raises(TypeError, match="missing a required argument: 'v'"):
        probe(1, 2)


def test_the_step_profile_counts_every_primitive_call_of_the_design(profiler):
    import torch

    from genesys_dsl.scales import get_scale

    profile = profiler.profile_seed("transformer", get_scale("cpu-xs"), batch=1, length=24,
                                    device=torch.device("cpu"), backend="torch", repeats=1)
    calls = {row.label: row.calls for row in profile.rows}
    # 2 blocks: q, k, v, o and the MLP's three projections; two norms each and the final one
    assert calls == {"Linear": 14, "RMSNorm": 5, "causal_attention": 2, "rotary": 4, "split_heads": 6,
                     "merge_heads": 2, "embedding (scaffold)": 1, "LM head (scaffold)": 1,
                     "loss (cross-entropy)": 1, "optimizer (clip + AdamW)": 1}
    assert all(row.ms > 0 for row in profile.rows) and profile.step_ms > 0
    assert profile.rest_ms == pytest.approx(profile.step_ms - sum(row.ms for row in profile.rows))
    assert "transformer at cpu-xs" in profile.table() and "the rest" in profile.table()


def test_recording_leaves_the_model_as_it_was(profiler):
    import torch

    from genesys_dsl.compile import build
    from genesys_dsl.syntax.files import read_design

    model = build(read_design(ROOT / "specs" / "mamba2.gab"), "cpu-xs", seed=0, backend="torch")
    namespace = type(model).forward.__globals__
    before = dict(namespace)
    ids = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(0))
    expected = model(ids)
    recorder = profiler.Recorder()
    with profiler.recording(model, recorder):
        assert torch.equal(model(ids), expected)
    assert {call.label for call in recorder.calls.values()} >= {"ssd", "causal_conv", "Linear", "RMSNorm"}
    assert namespace == before
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    count = len(recorder.calls)
    model(ids)
    assert len(recorder.calls) == count and torch.equal(model(ids), expected)


@pytest.fixture(scope="module")
def conv_sweep():
    yield from load_script("sweep_conv_tiles")


def test_every_conv_tile_choice_of_the_sweep_matches_torch(conv_sweep, capsys):
    assert conv_sweep.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert f"ok: {2 * len(conv_sweep.configurations())} launch choices against torch" in out


def test_the_conv_sweep_check_fails_on_a_wrong_result(conv_sweep, monkeypatch, capsys):
    right = conv_sweep.torch_conv
    monkeypatch.setattr(conv_sweep, "torch_conv", lambda x, weight, bias: right(x, weight, bias) * 1.01)
    monkeypatch.setattr(conv_sweep, "configurations", lambda: [(16, 64, 4)])
    assert conv_sweep.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL fwd (16, 64, 4): output off by" in out and "FAIL: 2 launch choices" in out


def test_the_conv_sweep_times_every_choice_and_marks_the_shipped_one(conv_sweep, capsys):
    from genesys_dsl.compile.backends import interpreter

    calls = []

    def one_call(fn):  # a stand-in for do_bench: run once, count
        fn()
        calls.append(fn)
        return 1.0 + len(calls) / 1000

    with interpreter("genesys_primitives.triton_ops"):
        from genesys_primitives.triton_ops import convs
        conv_sweep.sweep(convs, 1, 40, 72, device="cpu", dtype=torch.float32, timer=one_call)
    out = capsys.readouterr().out
    assert len(calls) == 2 + 2 * len(conv_sweep.configurations())  # torch's two, then every choice both ways
    assert out.count("<- shipped") == 2 and "causal_conv B=1 L=40 W=72 K=4, float32" in out
    assert convs._causal_conv_launch.__name__ == "_causal_conv_launch"  # the shipped choice is back


def test_the_conv_sweep_names_an_unknown_scale(conv_sweep, capsys):
    assert conv_sweep.main(["--check", "--scales", "14m"]) == 2
    assert "sweep_conv_tiles: " in capsys.readouterr().err
