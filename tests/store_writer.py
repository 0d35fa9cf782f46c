"""A process that writes to an archive as an evolution run does, until it is killed.

    python store_writer.py RUN_DIR SEED

Each start resumes: interrupted evaluations are requeued, queued ones are run, then
new designs are added (with one evaluation per seed), forever. The crash-safety test
kills it with SIGKILL at random points and checks the archive after each kill.
"""

import hashlib
import random
import sys
import time

from genesys_dsl.evolve.sqlite_store import SQLiteStore
from genesys_dsl.evolve.store import DesignRecord, EvaluationResult

SEEDS = (0, 1)
TASKS = ("recall", "copy")


def design_id(i: int) -> str:
    return hashlib.sha256(f"design {i}".encode()).hexdigest()


def task_score(task: str, score: float) -> dict:
    return {"suite": "synthetic", "task": task, "metric": "accuracy", "score": score, "random_score": 0.0,
            "best_score": 1.0, "normalized": score, "details": {"tokens": 1000}}


def evaluate(store: SQLiteStore, rng: random.Random) -> None:
    for evaluation in store.pending_evaluations():
        store.start_evaluation(evaluation.id)
        time.sleep(rng.uniform(0, 0.01))  # the work: most kills land while an evaluation runs
        if rng.random() < 0.2:
            result = EvaluationResult.failed("diverged", "loss went up")
        else:
            result = EvaluationResult("ok", scores=[task_score(t, rng.random()) for t in TASKS], tokens=1000,
                                      wall_seconds=0.01)
        with store.transaction():  # the outcome and its event: one state change
            store.finish_evaluation(evaluation.id, result)
            store.log_event("evaluated", {"evaluation": evaluation.id, "status": result.status})


def main(run_dir: str, seed: int) -> None:
    store = SQLiteStore.open(run_dir)
    store.requeue_running()
    print("resumed", flush=True)  # the test kills it only after this
    rng = random.Random(seed)
    while True:
        evaluate(store, rng)
        i = store.get_meta("next", 0)
        parents = [design_id(rng.randrange(i))] if i else []
        record = DesignRecord(id=design_id(i), name=f"d{i}", text=f"design d{i}\n", parents=parents,
                              origin="mutation" if i else "seed", generation=i)
        with store.transaction():
            assert store.add_design(record)
            store.set_meta("next", i + 1)
        assert not store.add_design(DesignRecord(id=design_id(rng.randrange(i + 1)), name="again", text=""))
        for s in SEEDS:
            store.queue_evaluation(record.id, "cpu-xs", s)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
