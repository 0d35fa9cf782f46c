"""scripts/device_wheels.py picks the wheels a GPU machine without a package index needs
(docs/kernels.md): the project's dependencies it lacks, compiled ones included, at the
versions tested here, and nothing its image has."""

import importlib.util
from importlib import metadata

import pytest

from paths import ROOT

spec = importlib.util.spec_from_file_location("device_wheels", ROOT / "scripts" / "device_wheels.py")
device_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_wheels)


def test_the_wheels_cover_what_the_machine_lacks_at_the_versions_tested_here():
    pins = device_wheels.closure()
    # direct dependencies, the fla extra, and what they pull in, compiled wheels included
    for name in ("lark", "lark-cython", "pydantic", "pydantic-core", "jsonschema", "rpds-py",
                 "flash-linear-attention", "fla-core"):
        assert pins[name] == metadata.version(name)
    # what the image has, and extras the checks do not use, stay behind
    assert not {"torch", "triton", "numpy", "transformers", "pluggy", "rich", "lm-eval", "ray"} & set(pins)


def test_a_dependency_missing_here_is_named():
    with pytest.raises(SystemExit, match="'no-such-dist' is needed"):
        device_wheels.closure(["pydantic>=2", "no-such-dist>=1"])
