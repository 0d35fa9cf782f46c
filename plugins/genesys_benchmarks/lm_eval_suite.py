"""The lm_eval suite: lm-evaluation-harness tasks scored on the pretrained design.

Its own tasks are the project's small multiple-choice tasks in lm_eval_tasks/ (offline,
no download), loaded by a TaskManager that indexes only that folder: indexing
lm-eval's thousands of built-in task YAMLs takes seconds to tens of seconds, and these
tasks need none of them.

Any other lm-eval task name (hellaswag, arc_easy, lambada_openai, ...) works too, for
users who have its data (a network, or the Hugging Face cache): such a name is looked
up in lm-eval's full index (built once per process) and its TaskInfo is provisional,
since the random-guess score of a multiple-choice task depends on its items. The
TaskScore of a run carries the real one: the mean of 1 / choices over the items
scored. Groups and tags (mmlu) are refused with the names of their tasks; perplexity
tasks belong to the perplexity suite.

Options (ctx.suite_options("lm_eval")): limit (items per task, default all),
batch_size (default 16), num_fewshot (default: each task's own, 0 for local tasks),
max_gen_toks (generation tasks, default 256), bootstrap_iters (stderr of metrics that
lm-eval bootstraps, default 1000; accuracies have a closed form).
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import islice
from typing import TYPE_CHECKING, Any, Iterator, Sequence
from unittest import mock

from genesys_dsl.evaluate import BenchmarkSuite, EvalContext, EvaluationError, TaskInfo, TaskScore

from .lm_eval_tasks import LOCAL_TASKS, TASKS_DIR

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

SUITE = "lm_eval"
INSTALL_HINT = "pip install 'genesys-dsl[eval]'"
DEFAULTS: dict[str, int | None] = {"limit": None, "batch_size": 16, "num_fewshot": None, "max_gen_toks": 256,
                                   "bootstrap_iters": 1000}
MULTIPLE_CHOICE = "multiple_choice"
PREFERRED_METRICS = ("acc_norm", "acc", "exact_match")  # those with a known best score (1) and direction

LOCAL = {t.name: TaskInfo(t.name, t.metric, random_score=1 / t.num_choices, best_score=1.0, summary=t.summary)
         for t in LOCAL_TASKS}


@dataclass(frozen=True)
class LmEvalSuite(BenchmarkSuite):
    """A suite whose task names reach beyond its own: any lm-eval task name is accepted."""

    def task(self, name: str) -> TaskInfo:
        return task_info(name)

    def chosen(self, names: Sequence[str] | None) -> list[TaskInfo]:
        _require_lm_eval()  # before anything trains
        return super().chosen(names)


def suites() -> list[BenchmarkSuite]:
    return [LmEvalSuite(name=SUITE, summary="lm-evaluation-harness tasks on the pretrained design (the project's "
                                            "offline tasks, or any lm-eval task whose data you have)",
                        tasks=tuple(LOCAL.values()), run=run)]


def run(ctx: EvalContext, task_names: Sequence[str]) -> list[TaskScore]:
    from lm_eval import simple_evaluate

    from genesys_dsl.evaluate.lm_eval_model import GenesysLM

    options = _options(ctx)
    infos = [task_info(name) for name in task_names]
    manager = local_task_manager() if all(n in LOCAL for n in task_names) else full_task_manager()
    pretrained = ctx.pretrained()
    lm = GenesysLM(pretrained.model, pretrained.tokenizer, context_length=pretrained.context_length,
                   batch_size=options["batch_size"], max_gen_toks=options["max_gen_toks"], device=ctx.device,
                   progress=ctx.progress)
    started = time.perf_counter()
    with _quiet(ctx.progress):
        tasks = _load_tasks(manager, task_names)
        randoms = {name: random_guess_score(tasks[name], options["limit"]) for name in task_names}
        results = simple_evaluate(
            model=lm, tasks=[tasks[name] for name in task_names], task_manager=manager, limit=options["limit"],
            num_fewshot=options["num_fewshot"], bootstrap_iters=options["bootstrap_iters"], log_samples=False,
            # the evaluation's seed picks few-shot examples; lm-eval must not reseed the process's generators
            random_seed=None, numpy_random_seed=None, torch_random_seed=None, fewshot_random_seed=ctx.seed)
    seconds = round(time.perf_counter() - started, 3)
    scores = []
    for name, info in zip(task_names, infos):
        row = results["results"][name]
        score, stderr = _metric(row, info.metric, name)
        details = {"items": results["n-samples"][name]["effective"], "stderr": stderr,
                   "num_fewshot": results.get("n-shot", {}).get(name), "tokenizer": pretrained.tokenizer.name,
                   "pretrain_tokens": pretrained.tokens, "seconds": seconds}
        details |= {m: row[f"{m},none"] for m in ("acc", "acc_norm") if f"{m},none" in row and m != info.metric}
        scores.append(TaskScore(suite=SUITE, task=name, metric=info.metric, score=score,
                                random_score=randoms[name], best_score=info.best_score, details=details))
    return scores


# ------------------------------------------------------------------ finding tasks


def task_info(name: str) -> TaskInfo:
    """A local task's TaskInfo, else lm-eval's task of that name (provisional)."""
    if name in LOCAL:
        return LOCAL[name]
    _require_lm_eval()
    return external_task_info(name)


def local_task_manager() -> TaskManager:
    """lm-eval's TaskManager over the project's tasks only: lm-eval's own are not indexed."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


@lru_cache(maxsize=1)
def full_task_manager() -> TaskManager:
    """lm-eval's TaskManager over all its built-in tasks and the project's (slow: it
    reads every task YAML lm-eval ships; built once per process)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR))


def external_task_info(name: str) -> TaskInfo:
    """A provisional TaskInfo for an lm-eval task that is not one of the project's,
    or an EvaluationError naming the local tasks (and the closest lm-eval names)."""
    from lm_eval.tasks._index import Kind

    manager = full_task_manager()
    entry = manager.task_index.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(dict.fromkeys([*LOCAL, *manager.all_tasks])), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise EvaluationError(f"suite '{SUITE}' has no task '{name}' and lm-eval knows no task of that name{hint} "
                              f"Local tasks: {', '.join(LOCAL)}; any lm-eval task name also works "
                              f"(see `lm-eval ls tasks`)")
    if entry.kind in (Kind.GROUP, Kind.TAG):
        members = sorted(entry.tags) if entry.kind is Kind.TAG else _group_members(entry.cfg)
        listed = ", ".join(members[:8]) + (f" ... ({len(members)} in all)" if len(members) > 8 else "")
        raise EvaluationError(f"lm-eval '{name}' is a {entry.kind.name.lower()} of tasks; suite '{SUITE}' scores "
                              f"single tasks, name them instead: {listed}")
    config = entry.cfg or {}
    output_type = config.get("output_type", MULTIPLE_CHOICE)
    if output_type == "loglikelihood_rolling":
        raise EvaluationError(f"lm-eval task '{name}' measures perplexity; use the 'perplexity' suite, or give "
                              f"your text with --corpus")
    return TaskInfo(name, _choose_metric(name, output_type, _listed_metrics(config)), random_score=0.0,
                    best_score=1.0, summary=f"lm-eval task ({output_type}); random-guess score measured on its "
                                            f"items when run")


def _group_members(config: dict[str, Any] | None) -> list[str]:
    members = (config or {}).get("task", [])
    return [m if isinstance(m, str) else str(m.get("task", m.get("group", "?"))) for m in members]


def _listed_metrics(config: dict[str, Any]) -> list[str]:
    return [m["metric"] for m in config.get("metric_list") or [] if isinstance(m, dict) and "metric" in m]


def _choose_metric(name: str, output_type: str, listed: list[str]) -> str:
    if output_type == MULTIPLE_CHOICE and not listed:
        return "acc"  # lm-eval's default for multiple choice
    for metric in PREFERRED_METRICS:
        if metric in listed:
            return metric
    raise EvaluationError(f"lm-eval task '{name}' reports {', '.join(listed) or 'no metric'}; suite '{SUITE}' "
                          f"scores tasks that report one of {', '.join(PREFERRED_METRICS)}")


def _load_tasks(manager: TaskManager, names: Sequence[str]) -> dict[str, Any]:
    """The lm-eval Task objects (this reads their data: a download for an external task)."""
    try:
        return manager.load(list(names))["tasks"]
    except Exception as err:  # lm-eval and datasets raise many types for missing or unreachable data
        raise EvaluationError(f"lm-eval could not load task(s) {', '.join(names)}: {type(err).__name__}: {err} "
                              f"(tasks other than the local ones need their dataset: a network, or the "
                              f"Hugging Face cache)") from None


def random_guess_score(task: Any, limit: int | None) -> float:
    """What a uniform guesser scores on the items that will be scored: the mean of
    1 / choices for a multiple-choice task (lm-eval scores the first `limit` items),
    0 for generation and single-continuation tasks."""
    if task.get_config("output_type") != MULTIPLE_CHOICE:
        return 0.0
    docs = list(islice(task.eval_docs, limit))  # limit None: all
    return sum(1 / len(task.doc_to_choice(doc)) for doc in docs) / len(docs)


def _metric(row: dict[str, Any], metric: str, task: str) -> tuple[float, float | None]:
    """The value of `metric` in lm-eval's results for a task (the first filter's, for
    generation tasks with several), and its stderr when lm-eval computed one."""
    for key, value in row.items():
        base, _, filter_name = key.partition(",")
        if base == metric and filter_name:
            stderr = row.get(f"{metric}_stderr,{filter_name}")
            return float(value), (float(stderr) if isinstance(stderr, (int, float)) else None)
    raise EvaluationError(f"lm-eval reported no '{metric}' for task '{task}'; it reported: "
                          f"{', '.join(k for k in row if ',' in k)}")


# ------------------------------------------------------------------ settings


def _require_lm_eval() -> None:
    if importlib.util.find_spec("lm_eval") is None:
        raise EvaluationError(f"suite '{SUITE}' needs lm-evaluation-harness, which is not installed: {INSTALL_HINT}")


def _options(ctx: EvalContext) -> dict[str, int | None]:
    given = dict(ctx.suite_options(SUITE))
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise EvaluationError(f"suite '{SUITE}' has no option {', '.join(map(repr, unknown))}; "
                              f"its options: {', '.join(DEFAULTS)}")
    options = DEFAULTS | given
    for name, value in options.items():
        allowed_zero = name in ("num_fewshot", "bootstrap_iters")
        if value is None and DEFAULTS[name] is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allowed_zero else 1):
            kind = "a non-negative" if allowed_zero else "a positive"
            raise EvaluationError(f"suite '{SUITE}' option {name} must be {kind} integer, got {value!r}")
    return options


@contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """lm-eval logs every task it builds and draws a progress bar per task; keep the
    console for errors unless progress was asked for."""
    if progress:
        yield
        return
    import lm_eval.api.task
    from tqdm import tqdm

    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        # lm-eval's request-building bar has no switch; its module-level tqdm is swapped for a silent one
        with mock.patch.object(lm_eval.api.task, "tqdm", partial(tqdm, disable=True)):
            yield
    finally:
        logger.setLevel(level)
