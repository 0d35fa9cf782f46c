"""The `genesys` command: outputs, exit codes, and no tracebacks for user mistakes."""

import io
import json
import subprocess
import sys

import jsonschema
import pytest

from genesys_dsl.cli import main
from paths import ROOT, SPECS

BROKEN = 'design broken\nblock(x: seq[D]) -> seq[D] {\n    return x + Linear(x, 2 * D)\n}\n'
UGLY = 'design ugly\nblock(x:seq[D])->seq[D]{return x+Linear(x,D)}\n'


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_seeds_clean(capsys):
    code, out, _ = run(capsys, "check", str(SPECS))
    assert code == 0
    assert out.strip().endswith("0 errors, 0 warnings")


def test_check_reports_errors_with_exit_1(tmp_path, capsys):
    spec = tmp_path / "broken.gab"
    spec.write_text(BROKEN)
    code, out, _ = run(capsys, "check", str(spec))
    assert code == 1
    assert f"{spec}:3:12: error[shape-mismatch]" in out and "^^^" in out


def test_check_json_format_for_machines(tmp_path, capsys):
    spec = tmp_path / "broken.gab"
    spec.write_text(BROKEN)
    code, out, _ = run(capsys, "check", "--format", "json", str(spec))
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    (d,) = data["diagnostics"]
    assert set(d) >= {"severity", "code", "message", "file", "line", "column", "end_line", "end_column", "hint"}
    assert (d["code"], d["line"], d["column"], d["file"]) == ("shape-mismatch", 3, 12, str(spec))


def test_check_json_includes_syntax_errors(tmp_path, capsys):
    spec = tmp_path / "syntax.gab"
    spec.write_text("design s\nblock(x: seq[D]) -> seq[D] {\n    return x +\n}\n")
    code, out, _ = run(capsys, "check", "--format", "json", str(spec))
    data = json.loads(out)
    assert code == 1 and data["diagnostics"][0]["code"] == "syntax" and data["diagnostics"][0]["line"] == 4


def test_strict_fails_on_warnings(tmp_path, capsys):
    spec = tmp_path / "warn.gab"
    spec.write_text("design w\nblock(x: seq[D]) -> seq[D] {\n    unused = x\n    return x\n}\n")
    assert run(capsys, "check", str(spec))[0] == 0
    assert run(capsys, "check", "--strict", str(spec))[0] == 1


@pytest.mark.parametrize("argv, message", [
    (["check", "no/such/file.gab"], "no such file or folder"),
    (["check", "--scale", "14m", "specs"], "did you mean '14M'"),
    (["stats", "specs/gpt2.gab", "--scale", "huge"], "unknown scale 'huge'"),
])
def test_usage_and_io_errors_exit_2_without_traceback(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err + out


def test_unwritable_output_is_a_usage_error_without_traceback(tmp_path, capsys):
    code, out, err = run(capsys, "compile", str(SPECS / "gpt2.gab"), "-o", str(tmp_path / "missing" / "m.py"))
    assert code == 2 and "No such file or directory" in err and "Traceback" not in err + out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["frobnicate"])
    assert exit.value.code == 2


def test_binary_file_is_a_located_error(tmp_path, capsys):
    spec = tmp_path / "binary.gab"
    spec.write_bytes(b"design b\n\xff\xfe\x00garbage")
    code, out, _ = run(capsys, "check", str(spec))
    assert code == 1 and "error[encoding]" in out and ":2:1:" in out


def test_fmt_rewrites_in_place_and_check_reports(tmp_path, capsys):
    spec = tmp_path / "ugly.gab"
    spec.write_text(UGLY)
    code, out, _ = run(capsys, "fmt", "--check", str(tmp_path))
    assert code == 1 and f"would reformat {spec}" in out
    assert spec.read_text() == UGLY
    assert run(capsys, "fmt", str(spec))[0] == 0
    assert spec.read_text() == "design ugly\n\nblock(x: seq[D]) -> seq[D] {\n    return x + Linear(x, D)\n}\n"
    assert run(capsys, "fmt", "--check", str(spec))[0] == 0


def test_fmt_leaves_a_file_with_syntax_errors_alone(tmp_path, capsys):
    spec = tmp_path / "bad.gab"
    spec.write_text("design bad\nblock(")
    code, _, err = run(capsys, "fmt", str(spec))
    assert code == 1 and "error[syntax]" in err
    assert spec.read_text() == "design bad\nblock("


def test_fmt_stdin_to_stdout(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(UGLY))
    code, out, _ = run(capsys, "fmt", "-")
    assert code == 0 and "    return x + Linear(x, D)\n" in out


def test_show_prints_the_unit_tree(capsys):
    code, out, _ = run(capsys, "show", str(SPECS / "llama.gab"))
    assert code == 0
    assert "├─ GroupedQueryAttention(heads=8, kv_heads=2)  [unit]" in out
    assert "causal_attention()  [qkv_mixer]" in out
    assert "SwiGLU(multiple=32)" in out


def test_stats_text_and_json(capsys):
    code, out, _ = run(capsys, "stats", str(SPECS / "gpt2.gab"), "--scale", "125M")
    assert code == 0 and "125,226,240" in out
    code, out, _ = run(capsys, "stats", str(SPECS / "gpt2.gab"), "--scale", "cpu-xs", "--scale", "125M",
                       "--format", "json")
    rows = json.loads(out)
    assert [r["scale"] for r in rows] == ["cpu-xs", "125M"]
    assert rows[1]["params"] == 125_226_240 and rows[1]["flops_per_token"] > 0


def test_schema_is_a_valid_json_schema(capsys):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_reference_lists_every_primitive(capsys):
    from genesys_dsl.ops import registry

    code, out, _ = run(capsys, "reference")
    assert code == 0
    for prim in registry():
        assert f"  {prim.name}(" in out


def test_console_script_runs_and_json_check_of_a_json_design(tmp_path):
    from genesys_dsl import ir, parse_file

    design_json = tmp_path / "llama.json"
    design_json.write_text(ir.dumps(parse_file(SPECS / "llama.gab")))
    result = subprocess.run([sys.executable, "-m", "genesys_dsl.cli", "check", "--format", "json", str(design_json)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "diagnostics": []}


def test_mutate_is_seeded_and_writes_a_valid_child(tmp_path, capsys):
    out_a, out_b = tmp_path / "a.gab", tmp_path / "b.gab"
    assert run(capsys, "mutate", str(SPECS / "llama.gab"), "--seed", "5", "-o", str(out_a))[0] == 0
    assert run(capsys, "mutate", str(SPECS / "llama.gab"), "--seed", "5", "-o", str(out_b))[0] == 0
    assert out_a.read_text() == out_b.read_text()
    assert out_a.read_text().startswith("# ")  # the operator and its edits
    assert run(capsys, "check", str(out_a))[0] == 0


def test_cross_and_diff(tmp_path, capsys):
    child = tmp_path / "child.gab"
    assert run(capsys, "cross", str(SPECS / "transformer.gab"), str(SPECS / "mamba2.gab"), "--seed", "2",
               "-o", str(child))[0] == 0
    code, out, _ = run(capsys, "diff", str(SPECS / "transformer.gab"), str(child), "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["edits"] and data["same_architecture"] is False
    code, out, _ = run(capsys, "diff", str(SPECS / "transformer.gab"), str(SPECS / "transformer.gab"))
    assert code == 0 and "no structural difference" in out


def test_unknown_operator_is_a_usage_error(capsys):
    code, _, err = run(capsys, "mutate", str(SPECS / "llama.gab"), "--seed", "1", "--op", "nope")
    assert code == 2 and "no operator 'nope'" in err and "Traceback" not in err
