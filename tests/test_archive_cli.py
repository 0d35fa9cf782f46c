"""`genesys archive RUN top|show|lineage|export` on an archive built through the
Store API (no training), and its one-line errors."""

import csv
import io
import json

import pytest

import genesys_dsl as g
from genesys_dsl.cli import main
from genesys_dsl.evaluate import TaskScore
from genesys_dsl.evolve.sqlite_store import SQLiteStore
from genesys_dsl.evolve.store import DesignRecord, EvaluationResult
from genesys_dsl.gp import crossover, mutate
from paths import SPECS

TRANSFORMER = g.parse_file(SPECS / "transformer.gab")
LLAMA = g.parse_file(SPECS / "llama.gab")


def evaluate(store, design_id, rung, seed, accuracy, ppl_score):
    e = store.queue_evaluation(design_id, rung, seed)
    store.start_evaluation(e)
    store.finish_evaluation(e, EvaluationResult("ok", tokens=4000, wall_seconds=3.0, scores=[
        TaskScore("synthetic", "mqar", "accuracy", accuracy, 0.0, 1.0).to_dict(),
        TaskScore("perplexity", "heldout", "bits_per_byte", ppl_score, 8.0, 0.0).to_dict()]))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two seeds, a mutation of one, a crossover of the mutation and the other seed,
    a design that failed; fitness at cpu-xs for all scored, cpu-s for the best."""
    folder = tmp_path_factory.mktemp("run")
    with SQLiteStore.open(folder) as store:
        seeds = [DesignRecord.from_design(d) for d in (TRANSFORMER, LLAMA)]
        for rec in seeds:
            store.add_design(rec)
        mutant = mutate(TRANSFORMER, seed=1)
        child = DesignRecord.from_design(mutant.design, name="mutant", parents=[seeds[0].id], origin="mutation",
                                         operator=mutant.operator, edits=mutant.edits, generation=1)
        store.add_design(child)
        cross = crossover(mutant.design, LLAMA, seed=2)
        grandchild = DesignRecord.from_design(cross.design, name="hybrid", parents=[child.id, seeds[1].id],
                                              origin="crossover", operator=cross.operator, edits=cross.edits,
                                              generation=2)
        store.add_design(grandchild)
        failed = DesignRecord.from_design(mutate(LLAMA, seed=5).design, name="doomed", parents=[seeds[1].id],
                                          origin="mutation", operator="op", generation=1)
        store.add_design(failed)
        store.add_report(child.id, "check", True, {"diagnostics": []})
        for rec, base in zip([*seeds, child, grandchild], (0.40, 0.45, 0.50, 0.60)):
            for seed in range(3):
                evaluate(store, rec.id, "cpu-xs", seed, base + 0.01 * seed, 4.0 - base)
            store.set_fitness(rec.id, "cpu-xs", base, base - 0.05, base + 0.05)
        e = store.queue_evaluation(failed.id, "cpu-xs", 0)
        store.start_evaluation(e)
        store.finish_evaluation(e, EvaluationResult.failed("timeout", "ran past 60 s"))
        store.set_status(failed.id, "failed", "timeout")
        evaluate(store, grandchild.id, "cpu-s", 0, 0.7, 3.0)
        store.set_fitness(grandchild.id, "cpu-s", 0.3, 0.2, 0.4)
        ids = {"transformer": seeds[0].id, "llama": seeds[1].id, "mutant": child.id, "hybrid": grandchild.id,
               "doomed": failed.id, "mutant_edits": mutant.edits, "hybrid_edits": cross.edits}
    return folder, ids


def cli(capsys, *argv):
    code = main(["archive", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ top


def test_top_ranks_by_highest_rung_then_fitness(run, capsys):
    folder, ids = run
    code, out, _ = cli(capsys, folder, "top")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["rank", "id", "name", "rung"]
    names = [line.split()[2] for line in lines[2:]]
    assert names == ["hybrid", "mutant", "llama", "transformer"]
    assert "cpu-s" in lines[2] and "+0.3000 [+0.2000, +0.4000]" in lines[2] and "crossover by" in lines[2]


def test_top_json_at_one_rung_with_a_limit(run, capsys):
    folder, ids = run
    code, out, _ = cli(capsys, folder, "top", "--rung", "cpu-xs", "-n", "2", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [(r["rank"], r["name"], r["rung"], r["mean"]) for r in rows] == [
        (1, "hybrid", "cpu-xs", 0.6), (2, "mutant", "cpu-xs", 0.5)]
    assert rows[0]["id"] == ids["hybrid"] and set(rows[0]["fitness"]) == {"cpu-xs", "cpu-s"}


def test_top_of_an_archive_without_fitness_says_so(tmp_path, capsys):
    with SQLiteStore.open(tmp_path) as store:
        store.add_design(DesignRecord.from_design(TRANSFORMER))
    assert cli(capsys, tmp_path, "top")[:2] == (0, "no design has a fitness yet (1 designs archived)\n")


# ------------------------------------------------------------------ show


def test_show_gives_spec_scores_with_intervals_lineage_and_diffs(run, capsys):
    folder, ids = run
    code, out, _ = cli(capsys, folder, "show", ids["hybrid"][:10])
    assert code == 0
    assert out.startswith(f"design {ids['hybrid']}\n  name hybrid, crossover by ")
    assert f"parents: {ids['mutant'][:12]} (mutant), {ids['llama'][:12]} (llama)" in out
    assert "cpu-xs  +0.6000 [+0.5500, +0.6500]" in out and "cpu-s   +0.3000 [+0.2000, +0.4000]" in out
    # the three seeds' accuracies 0.60, 0.61, 0.62: mean and a bootstrap interval inside their range
    mqar = next(line for line in out.splitlines() if "cpu-xs" in line and "synthetic/mqar" in line)
    assert "accuracy" in mqar and " 3 " in mqar and "+0.6100 [+0.6" in mqar
    assert "evaluations: 4 ok" in out
    assert f"diff from parent {ids['mutant'][:12]} (mutant)" in out
    assert f"diff from parent {ids['llama'][:12]} (llama)" in out
    spec = out.split("\nspec\n", 1)[1]
    assert g.same_design(g.parse("\n".join(line[2:] for line in spec.splitlines()), filename="shown"),
                         g.parse(DesignRecord.from_design(crossover(mutate(TRANSFORMER, seed=1).design, LLAMA,
                                                                        seed=2).design).text, filename="x"))


def test_show_json_and_the_diff_to_the_parent_is_the_structural_diff(run, capsys):
    folder, ids = run
    code, out, _ = cli(capsys, folder, "show", "mutant", "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["design"]["id"] == ids["mutant"]
    assert info["diff"] == {ids["transformer"]: ids["mutant_edits"]} and ids["mutant_edits"]
    assert info["children"] == [ids["hybrid"]] and info["reports"][0]["kind"] == "check"
    task = next(t for t in info["tasks"] if t["task"] == "mqar")
    assert task["seeds"] == [0, 1, 2] and task["score"]["mean"] == pytest.approx(0.51)
    assert task["score"]["ci_low"] <= 0.51 <= task["score"]["ci_high"]


def test_show_a_failed_design(run, capsys):
    folder, ids = run
    code, out, _ = cli(capsys, folder, "show", "doomed")
    assert code == 0 and "status failed (timeout)" in out and "evaluations: 1 failed (timeout)" in out
    assert "fitness\n  none yet" in out


# ------------------------------------------------------------------ lineage


def test_lineage_is_a_tree_of_ancestors_with_operators_and_edits(run, capsys):
    folder, ids = run
    code, out, _ = cli(capsys, folder, "lineage", "hybrid")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{ids['hybrid'][:12]} hybrid  [crossover by ")
    assert lines[0].endswith("cpu-s +0.3000 [+0.2000, +0.4000]")
    mutant = next(i for i, line in enumerate(lines) if f"{ids['mutant'][:12]} mutant" in line)
    assert lines[mutant].startswith("├─ ") and "[mutation by" in lines[mutant]
    assert any(line.startswith("│  └─ " + ids["transformer"][:12]) and "[seed, gen 0]" in line for line in lines)
    assert lines[-1].startswith("└─ " + ids["llama"][:12])
    for edit in ids["mutant_edits"]:
        assert any(line.endswith(edit) and line.startswith("│  │") for line in lines)


def test_lineage_json_nests_parents(run, capsys):
    folder, ids = run
    code, out, _ = cli(capsys, folder, "lineage", ids["hybrid"], "--format", "json")
    tree = json.loads(out)
    assert [p["name"] for p in tree["parents"]] == ["mutant", "llama"]
    assert tree["parents"][0]["parents"][0]["id"] == ids["transformer"]
    assert tree["parents"][0]["edits"] == ids["mutant_edits"] and tree["parents"][1]["parents"] == []


# ------------------------------------------------------------------ export


def test_export_json_has_every_design_with_fitness_and_scores(run, capsys, tmp_path):
    folder, ids = run
    target = tmp_path / "out.json"
    code, out, err = cli(capsys, folder, "export", "--format", "json", "-o", target)
    assert code == 0 and out == "" and f"wrote {target} (5 designs)" in err
    data = json.loads(target.read_text())
    assert data["rungs"] == ["cpu-xs", "cpu-s"]
    by_name = {d["name"]: d for d in data["designs"]}
    assert set(by_name) == {TRANSFORMER.name, LLAMA.name, "mutant", "hybrid", "doomed"}
    assert by_name["hybrid"]["fitness"]["cpu-s"] == {"mean": 0.3, "ci_low": 0.2, "ci_high": 0.4}
    assert len(by_name["hybrid"]["scores"]) == 8 and by_name["doomed"]["scores"] == []


def test_export_csv_is_one_row_per_design(run, capsys):
    folder, ids = run
    code, out, _ = cli(capsys, folder, "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 5
    hybrid = next(r for r in rows if r["name"] == "hybrid")
    assert float(hybrid["fitness@cpu-s"]) == 0.3 and float(hybrid["synthetic/mqar@cpu-xs"]) == pytest.approx(0.61)
    assert hybrid["parents"] == f"{ids['mutant']} {ids['llama']}"
    doomed = next(r for r in rows if r["name"] == "doomed")
    assert (doomed["status"], doomed["fitness@cpu-xs"]) == ("failed", "")


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("argv, message", [
    (["{missing}", "top"], "{missing}: no such run folder"),
    (["{empty}", "top"], "{empty}: no archive in this folder (store 'sqlite')"),
    (["{run}", "show", "nobody"], "no design 'nobody' in"),
    (["{run}", "show", "mutnt"], "did you mean 'mutant'?"),
    (["{run}", "lineage", ""], "an empty design id"),
    (["{run}", "top", "--rung", "gpu-xl"], "no rung 'gpu-xl' in this run; its rungs: cpu-xs, cpu-s"),
    (["{run}", "--store", "postgres", "top"], "unknown store 'postgres'"),
])
def test_mistakes_are_one_line_and_exit_2(run, tmp_path, capsys, argv, message):
    folder, _ = run
    (tmp_path / "empty").mkdir()
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "run": folder}
    code, out, err = cli(capsys, *[a.format(**names) for a in argv])
    assert code == 2 and out == ""
    assert err.startswith("genesys: error: ") and message.format(**names) in err and err.count("\n") == 1
    assert not (tmp_path / "empty" / "archive.sqlite").exists()  # reading never creates an archive


def test_an_ambiguous_id_lists_the_candidates(tmp_path, capsys):
    with SQLiteStore.open(tmp_path) as store:
        for i in range(40):  # 40 ids over 16 first hex digits: some share a first character
            store.add_design(DesignRecord(id=f"{i % 16:x}{i:063x}", name=f"d{i}", text=""))
    code, _, err = cli(capsys, tmp_path, "show", "0")
    assert code == 2 and "design '0' is ambiguous: 3 designs match by id prefix" in err and "(d16, seed)" in err
