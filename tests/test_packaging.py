"""The wheel carries the grammar, the seeds and the built-in plugin, and works anywhere."""

import json
import subprocess
import sys
import zipfile

import pytest

from paths import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out),
         str(ROOT)],
        check=True, capture_output=True,
    )
    (path,) = out.glob("genesys_dsl-*.whl")
    return path


def test_wheel_contains_grammar_seeds_and_plugin(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "genesys_dsl/grammar/gab.lark" in names
    assert "genesys_dsl/specs/scales.toml" in names
    assert "genesys_dsl/specs/transformer.gab" in names
    assert "genesys_dsl/specs/baselines/mlp_only.gab" in names
    assert "genesys_primitives/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[genesys_dsl]" in text and "primitives = genesys_primitives" in text
    assert "genesys = genesys_dsl.cli:main" in text


def test_wheel_installed_elsewhere_finds_its_grammar(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    probe = (
        "import json, genesys_dsl as g\n"
        "from genesys_dsl.syntax.files import find_specs, read_design\n"
        "from importlib import resources\n"
        "specs = resources.files('genesys_dsl.specs')\n"
        "d = g.parse(specs.joinpath('llama.gab').read_text(), 'llama.gab')\n"
        "print(json.dumps({'file': g.__file__, 'ok': g.check(d).ok, 'scales': list(g.scales())}))\n"
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=work,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["file"].startswith(str(target)), "imported the source tree, not the installed wheel"
    assert out["ok"] and out["scales"][0] == "cpu-xs"
