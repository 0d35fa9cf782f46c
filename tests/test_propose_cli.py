"""`genesys propose` and `genesys prompts` through the CLI's main(): files written,
exit codes, and one-line errors."""

import json

from genesys_dsl.check import check
from genesys_dsl.cli import main
from genesys_dsl.gp import canonical_hash
from genesys_dsl.syntax.files import read_design
from paths import SPECS

LLAMA, MAMBA2 = str(SPECS / "llama.gab"), str(SPECS / "mamba2.gab")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def fast_config(tmp_path, extra=""):
    path = tmp_path / "agents.toml"
    path.write_text('verify = "off"\nreference = false\n' + extra)
    return str(path)


def test_propose_writes_a_valid_child_and_its_transcript(tmp_path, capsys):
    out_path = tmp_path / "child.gab"
    code, _, err = run(capsys, "propose", LLAMA, "--seed", "3", "-o", str(out_path))
    assert code == 0, err
    child = read_design(out_path)
    assert check(child, ["cpu-xs"]).ok and canonical_hash(child) != canonical_hash(read_design(LLAMA))
    text = out_path.read_text()
    assert text.startswith("# proposed by gp from llama.gab (seed 3):")
    assert "# transcript: child.transcript.json" in text
    transcript = json.loads((tmp_path / "child.transcript.json").read_text())
    assert transcript["format"] == "genesys-transcript/1" and transcript["backend"] == "gp"
    assert transcript["result"]["status"] == "ok"
    assert transcript["result"]["child_hash"] == canonical_hash(child)
    assert {e["role"] for e in transcript["events"]} == {"proposer", "reviewer", "implementer"}
    assert set(transcript["usage"]["by_role"]) == {"proposer", "reviewer", "implementer"}
    assert "wrote" in err and "implementer: 1 request(s)" in err


def test_propose_with_two_specs_is_a_crossover_and_repeats_per_seed(tmp_path, capsys):
    config = fast_config(tmp_path)
    first = run(capsys, "propose", LLAMA, MAMBA2, "--seed", "1", "--config", config)
    again = run(capsys, "propose", LLAMA, MAMBA2, "--seed", "1", "--config", config)
    assert first[0] == 0 and first[1] == again[1]
    assert "proposed by gp from llama.gab, mamba2.gab" in first[1]
    assert "transcript not written" in first[2]


def test_a_child_already_in_the_archive_is_no_valid_child(tmp_path, capsys):
    config = fast_config(tmp_path, "max_revisions = 0\n")
    known = tmp_path / "known.gab"
    assert run(capsys, "propose", LLAMA, "--seed", "5", "--config", config, "-o", str(known))[0] == 0
    out = tmp_path / "again.gab"
    code, _, err = run(capsys, "propose", LLAMA, "--seed", "5", "--config", config, "--archive", str(known),
                       "-o", str(out))
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("genesys: no valid child: rejected: the reviewer rated")
    assert not out.exists()
    transcript = json.loads((tmp_path / "again.transcript.json").read_text())
    assert transcript["result"]["status"] == "rejected"


def test_usage_mistakes_are_one_line_errors_with_exit_2(tmp_path, capsys):
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("max_repair = 2\n")
    cases = [
        (["propose", str(tmp_path / "missing.gab")], "missing.gab: no such file"),
        (["propose", LLAMA, "--backend", "nope"], "unknown agent backend 'nope'"),
        (["propose", LLAMA, "--config", str(bad_config)], "unknown setting 'max_repair'"),
        (["propose", LLAMA, "--config", str(tmp_path / "none.toml")], "no such config file"),
        (["prompts", "critic"], "unknown role 'critic'; roles: proposer, reviewer, implementer"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("genesys: error:") and message in err and len(err.strip().splitlines()) == 1
    assert "Available: gp" in run(capsys, "propose", LLAMA, "--backend", "nope")[2]


def test_a_parent_that_does_not_check_is_refused_with_exit_1(tmp_path, capsys):
    broken = tmp_path / "broken.gab"
    broken.write_text("design broken\nblock(x: seq[D]) -> seq[D] {\n    return x + Linear(x, 2 * D)\n}\n")
    code, _, err = run(capsys, "propose", str(broken))
    assert code == 1 and "shape-mismatch" in err and "does not check clean" in err


def test_prompts_shows_every_template_or_one(capsys):
    code, out, _ = run(capsys, "prompts")
    assert code == 0
    for role in ("proposer", "reviewer", "implementer"):
        assert f"==> {role} ({role}/1) <==" in out
    code, out, _ = run(capsys, "prompts", "implementer")
    assert code == 0 and out.startswith("version: 1") and "=== repair ===" in out and "==>" not in out
