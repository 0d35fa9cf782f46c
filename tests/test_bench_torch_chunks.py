"""benchmarks/sweep_torch_chunks.py, which chose the torch scans' CPU chunk sizes: it finds
every chunked mixer call of a seed, and its stand-in for the previous chunk sizes changes
what the model computes with and then leaves the model exactly as it was."""

import re

import pytest
import torch
from paths import load_script


@pytest.fixture(scope="module")
def sweep():
    yield from load_script("sweep_torch_chunks")


def test_the_sweep_times_each_chunked_call_and_step(sweep, capsys):
    assert sweep.main(["--seeds", "retnet", "rwkv6", "--shapes", "synthetic", "--chunks", "8", "32",
                       "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for seed, primitive in (("retnet", "retention"), ("rwkv6", "wkv6")):
        assert re.search(rf"^{seed} +synthetic +{primitive}( +[\d.]+){{4}} +[\d.]+x$", out, re.MULTILINE), out
        assert re.search(rf"^{seed} +synthetic +[\d.]+ +[\d.]+ +[\d.]+x$", out, re.MULTILINE), out


def test_previous_chunks_apply_inside_the_block_only(sweep):
    model = sweep.seed_model("hybrid", "cpu-xs")  # ssd, a module with a chunk_size attribute
    namespace = type(model).forward.__globals__
    before = dict(namespace)
    scans = [m for m in model.modules() if type(m).__name__ == "ssd"]
    assert scans and all(m.chunk_size is None for m in scans)
    ids = sweep.batch_ids("cpu-xs", 2, 40)[:, :-1]
    with torch.no_grad():
        now = model(ids)
        with sweep.previous_chunks(model):
            assert all(m.chunk_size == 64 for m in scans)
            previous = model(ids)
    assert all(m.chunk_size is None for m in scans) and namespace == before
    torch.testing.assert_close(previous, now, rtol=1e-4, atol=1e-4)  # the chunk changes rounding only
    assert not torch.equal(previous, now)  # but it did change what ran


def test_an_unknown_seed_is_named_with_the_ones_there_are(sweep, capsys):
    assert sweep.main(["--seeds", "mamba3"]) == 2
    err = capsys.readouterr().err
    assert "no seed 'mamba3' in specs/" in err and "mamba2" in err
