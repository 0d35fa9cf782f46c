"""Every kernel of the built-in Triton implementations compiles for a GPU, on the CPU.

The interpreter tests (tests/test_triton_*.py) check what the kernels compute, but the
interpreter accepts code the real compiler rejects (a tl.dot shape or dtype it cannot lower,
shared memory it cannot fit, a ptxas error). Here each kernel goes through triton's front
end, its NVIDIA backend and ptxas for sm_90 (H100) and sm_80 (A100), with no GPU, at the
constants the host code launches it with for the seed designs at the 14M and 125M scales:
`genesys_primitives.triton_ops.launches` runs the implementations' host code on meta tensors
and records the launches. The kernels are found through the registry (each Triton
implementation's `uses`), so a new kernel is covered as soon as a seed calls its primitive.
Compiled kernels are cached on disk by triton (~/.triton/cache): about 40 s cold, a few warm.
"""

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install -c constraints.txt -e '.[triton]')")

from genesys_primitives.triton_ops import launches

ARCHS = (90, 80)
missing = launches.ptxas_missing()
pytestmark = pytest.mark.skipif(missing is not None, reason=f"cannot compile for a GPU here: {missing}")


@pytest.fixture(scope="module")
def seed_launches():
    return launches.seed_launches(launches.SCALES)


def test_every_kernel_is_launched_by_a_seed(seed_launches):
    """Else the compile test below would not see it: a kernel whose primitive no seed calls at
    these scales, or one the host code never launches."""
    kernels = launches.kernels_of_implementations()
    assert kernels, "no Triton kernels found through the registry"
    launched = {launch.name for launch in seed_launches}
    assert not set(kernels) - launched, f"kernels no seed launches at {launches.SCALES}: {set(kernels) - launched}"


def test_launches_are_those_of_the_host_code(seed_launches):
    """The constants are the host code's choices at the seeds' sizes (not made up): GLA at
    125M (K = 96, V = 192 per head) by K tiles of 32 and V tiles of 64."""
    gla = [x for x in seed_launches if x.name == "_gla_fwd_h_kernel" and "at 125M" in x.site]
    assert len(gla) == 1 and gla[0].site.startswith("gla (H=4, K=96, V=192) in gla")
    assert {k: gla[0].constants[k] for k in ("K", "V", "BK", "BV")} == {"K": 96, "V": 192, "BK": 32, "BV": 64}


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"sm_{a}")
def test_every_launch_compiles_through_ptxas(seed_launches, arch):
    failures = []
    for launch in seed_launches:
        try:
            compiled = launches.compile_launch(launch, arch)
        except Exception as err:  # noqa: BLE001 - triton raises many kinds; each is reported below
            failures.append(f"{launch.name} {launch.constants} ({launch.site}): "
                            f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
            continue
        assert compiled.asm["cubin"], f"{launch.name}: no cubin"
    assert not failures, f"{len(failures)} of {len(seed_launches)} launches do not compile for sm_{arch}:\n" + \
        "\n".join(failures)
