"""lm-evaluation-harness: the model class for compiled designs against direct
computations with the model, the project's offline tasks through lm-eval's evaluator,
and the lm_eval suite (registration, task lookup, errors)."""

from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import genesys_dsl as g
from genesys_dsl.compile import build
from genesys_dsl.evaluate import EvalContext, EvaluationError, TrainConfig
from genesys_dsl.evaluate.lm_eval_model import GenesysLM, scoring_windows
from genesys_dsl.evaluate.tokenizers import ByteTokenizer
from genesys_dsl.scales import get_scale
from paths import SPECS

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: E402

from genesys_benchmarks import lm_eval_suite  # noqa: E402
from genesys_benchmarks.lm_eval_tasks import LOCAL_TASKS, TASKS_DIR, generate, loader  # noqa: E402

CONTEXT = 16  # short, so requests cross the context length
NEWLINE = ord("\n")  # what precedes every document in the corpus: the empty context
TRANSFORMER = g.parse_file(SPECS / "transformer.gab")


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    scale = get_scale("cpu-xs").model_copy(update={"context_length": CONTEXT})
    return build(TRANSFORMER, scale, seed=0).eval()


@pytest.fixture(scope="module")
def lm(model):
    return GenesysLM(model, ByteTokenizer(), batch_size=3)


def requests(kind: str, *arguments: tuple) -> list[Instance]:
    return [Instance(kind, {}, args, idx=i) for i, args in enumerate(arguments)]


def ids(text: str) -> list[int]:
    return list(text.encode("utf-8"))


@torch.no_grad()
def logprobs(model, inputs: list[int]) -> torch.Tensor:
    """log-softmax of the model's logits for one unpadded sequence, [len, V]."""
    return F.log_softmax(model(torch.tensor([inputs])).float()[0], dim=-1)


@torch.no_grad()
def by_hand(model, context: list[int], continuation: list[int]) -> tuple[float, bool]:
    """The continuation's log-probability from at most CONTEXT tokens, cut from the left."""
    inputs = (context + continuation)[-(CONTEXT + 1):][:-1]
    scores = logprobs(model, inputs)[-len(continuation):]
    targets = torch.tensor(continuation)
    return scores.gather(-1, targets[:, None]).sum().item(), bool((scores.argmax(-1) == targets).all())


class NextByte(torch.nn.Module):
    """A model that always predicts the byte after its input byte (a -> b): greedy
    decoding counts upwards, so generations are known exactly."""

    context_length = CONTEXT

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, input_ids):
        return F.one_hot((input_ids + 1) % 256, 256).float() * self.scale


# ------------------------------------------------------------------ the model class


def test_loglikelihood_is_the_sum_of_the_continuations_log_probabilities(lm, model):
    long_context = "It was the best of times, it was the worst of times"  # longer than CONTEXT
    pairs = [("The cat", " sat on the mat."), ("", "Hello"), (long_context, ","), ("A", " continuation longer than "
                                                                                       "the context length")]
    got = lm.loglikelihood(requests("loglikelihood", *pairs))
    for (context, continuation), (logprob, greedy) in zip(pairs, got):
        prefix = ids(context) if context else [NEWLINE]
        if len(ids(continuation)) <= CONTEXT:
            want, want_greedy = by_hand(model, prefix, ids(continuation))
        else:  # each CONTEXT-token chunk of the continuation is scored with the tokens before it
            tokens, first = prefix + ids(continuation), len(prefix)
            chunks = [by_hand(model, tokens[:start], tokens[start:start + CONTEXT])
                      for start in range(first, len(tokens), CONTEXT)]
            want, want_greedy = sum(c[0] for c in chunks), all(c[1] for c in chunks)
        assert logprob == pytest.approx(want, abs=1e-4)
        assert greedy == want_greedy


def test_loglikelihood_flags_greedy_continuations():
    lm = GenesysLM(NextByte(), ByteTokenizer())
    (_, greedy), (_, not_greedy) = lm.loglikelihood(requests("loglikelihood", ("abc", "def"), ("abc", "dxf")))
    assert greedy and not not_greedy


def test_loglikelihood_rolling_matches_lm_evals_rolling_windows(lm, model):
    texts = ["short", "A text of several windows: it is longer than the sixteen-byte context of this model.", ""]
    got = lm.loglikelihood_rolling(requests("loglikelihood_rolling", *[(t,) for t in texts]))
    for text, logprob in zip(texts, got):
        windows = get_rolling_token_windows(ids(text), prefix_token=NEWLINE, max_seq_len=CONTEXT, context_len=1)
        want = sum(by_hand(model, *make_disjoint_window(w))[0] for w in windows)
        assert logprob == pytest.approx(want, abs=1e-4)
    assert got[2] == 0.0


@given(st.integers(2, 60), st.data(), st.integers(1, 20))
@settings(max_examples=200, deadline=None)
def test_scoring_windows_score_each_token_once_within_the_context(n, data, max_length):
    n_scored = data.draw(st.integers(0, n - 1))
    tokens = list(range(n))
    windows = scoring_windows(0, tokens, n_scored, max_length)
    assert [t for w in windows for t in w.targets] == tokens[n - n_scored:]
    for w in windows:
        assert 1 <= len(w.inputs) <= max_length and len(w.targets) <= len(w.inputs)
        first = w.targets[0]
        assert w.inputs == tokens[first - len(w.inputs) + len(w.targets) - 1:first + len(w.targets) - 1]


def test_generate_until_is_greedy_decoding(lm, model):
    contexts = ["Once upon a time", "It was the best of times, it was the worst of times", "Q"]
    got = lm.generate_until(requests("generate_until", *[(c, {"until": [], "max_gen_toks": 6}) for c in contexts]))
    tokenizer = ByteTokenizer()
    for context, text in zip(contexts, got):
        tokens = ids(context)
        for _ in range(6):
            tokens.append(int(logprobs(model, tokens[-CONTEXT:])[-1].argmax()))
        assert text == tokenizer.decode(tokens[len(ids(context)):])


def test_generate_until_stops_at_the_first_stop_sequence_or_the_token_limit():
    lm = GenesysLM(NextByte(), ByteTokenizer(), batch_size=2, max_gen_toks=5)
    got = lm.generate_until(requests(
        "generate_until",
        ("abc", {"until": ["g"]}),  # stop string cut off
        ("abc", {"until": ["z", "ef"], "max_gen_toks": 50}),  # the earliest stop wins, whichever is listed first
        ("abc", {"until": ["z"], "max_gen_toks": 3}),
        ("abc", {"until": ["z"]}),  # the model's default limit
        ("x" * 40 + "abc", {"until": ["f"]}),  # a context longer than the model's is cut from the left
    ))
    assert got == ["def", "d", "def", "defgh", "de"]


def test_generate_until_refuses_sampling(lm):
    with pytest.raises(EvaluationError, match="greedily"):
        lm.generate_until(requests("generate_until", ("a", {"until": [], "do_sample": True, "temperature": 1.0})))


def test_the_model_is_registered_with_lm_eval_and_builds_from_a_spec():
    from lm_eval.api.registry import get_model, model_registry

    cls = get_model("genesys")
    assert cls is GenesysLM
    assert "hf" in model_registry.keys()  # lm-eval's own models stay reachable
    built = cls.create_from_arg_string(f"spec={SPECS / 'transformer.gab'},scale=cpu-xs,seed=1,batch_size=4")
    assert built.batch_size == 4 and built.max_length == 128
    with pytest.raises(EvaluationError, match="unknown model_args.*colour"):
        cls.create_from_arg_string(f"spec={SPECS / 'transformer.gab'},colour=red")


# ------------------------------------------------------------------ the project's tasks


def test_task_files_are_generated_deterministically_and_up_to_date():
    assert generate.main(["--check"]) == 0
    for task in LOCAL_TASKS:
        items = loader.read_items(TASKS_DIR / f"{task.stem}.jsonl")
        assert 50 <= len(items) <= 200
        assert all(len(item["choices"]) == task.num_choices for item in items)
        if task.mode == "continuation" and task.metric == "acc":  # raw likelihoods of equal-length strings
            assert all(len({len(c.encode()) for c in item["choices"]}) == 1 for item in items)
        assert len({(item.get("context"), item.get("continuation"), *item["choices"]) for item in items}) == len(items)


def test_malformed_task_items_are_rejected_with_their_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "", "choices": ["a", "b"], "label": 0}\n{"context": "", "choices": ["a"], '
                   '"label": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: an item needs"):
        loader.read_items(bad)


def test_local_tasks_load_without_indexing_lm_evals_own_tasks():
    from lm_eval.tasks import _index

    with mock.patch.object(_index, "load_yaml", wraps=_index.load_yaml) as read:
        manager = lm_eval_suite.local_task_manager()
    assert sorted(manager.all_tasks) == sorted(t.name for t in LOCAL_TASKS)
    read_paths = {Path(call.args[0]).resolve() for call in read.call_args_list}
    assert read_paths == {(TASKS_DIR / f"{t.stem}.yaml").resolve() for t in LOCAL_TASKS}


def test_a_local_task_runs_through_lm_evals_evaluator_near_chance(model):
    lm = GenesysLM(model, ByteTokenizer(), batch_size=32)  # untrained
    results = lm_eval.simple_evaluate(model=lm, tasks=["genesys_word_order"],
                                      task_manager=lm_eval_suite.local_task_manager(), bootstrap_iters=0,
                                      log_samples=False)
    accuracy = results["results"]["genesys_word_order"]["acc,none"]
    assert results["n-samples"]["genesys_word_order"]["effective"] == 120
    assert 0.0 <= accuracy <= 1.0
    assert abs(accuracy - 0.25) < 0.15  # 4 choices of the same bytes; 3.7 standard errors at 120 items


# ------------------------------------------------------------------ the suite


def context(model, **options) -> EvalContext:
    pretrained = SimpleNamespace(model=model, tokenizer=ByteTokenizer(), tokens=0, context_length=CONTEXT)
    return EvalContext(design=TRANSFORMER, scale=get_scale("cpu-xs"), seed=0, device=torch.device("cpu"),
                       train=TrainConfig(tokens=1), options={"lm_eval": options}, _pretrained=pretrained)


def test_the_suite_is_registered():
    from genesys_dsl.plugins import benchmark_registry

    suite = benchmark_registry().lookup("lm_eval")
    assert suite.plugin == "benchmarks"
    assert [t.name for t in suite.chosen(None)] == [t.name for t in LOCAL_TASKS]


def test_the_suite_scores_local_tasks_with_their_random_baselines(model):
    suite = lm_eval_suite.suites()[0]
    names = ["genesys_agreement", "genesys_phrases"]
    from lm_eval.tasks import _index

    with mock.patch.object(_index, "load_yaml", wraps=_index.load_yaml) as read:
        scores = suite.run(context(model, limit=20), names)
    assert all(Path(call.args[0]).resolve().parent == TASKS_DIR.resolve() for call in read.call_args_list)
    assert [s.task for s in scores] == names
    assert [(s.metric, s.random_score, s.best_score) for s in scores] == [("acc", 0.5, 1.0), ("acc", 0.25, 1.0)]
    for s in scores:
        assert 0.0 <= s.score <= 1.0 and s.details["items"] == 20
        assert s.random_score == suite.task(s.task).random_score


def test_suite_options_are_checked(model):
    suite = lm_eval_suite.suites()[0]
    with pytest.raises(EvaluationError, match="no option 'limt'; its options: limit"):
        suite.run(context(model, limt=5), ["genesys_spelling"])
    with pytest.raises(EvaluationError, match="limit must be a positive integer, got 0"):
        suite.run(context(model, limit=0), ["genesys_spelling"])


EXTERNAL_TASK = """\
task: mixed_choices
custom_dataset: !function loader.load
dataset_kwargs:
  data_file: mixed.jsonl
output_type: multiple_choice
test_split: test
doc_to_text: "{{context}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
"""


@pytest.fixture
def lm_eval_index(tmp_path):
    """lm-eval's full index, replaced by the local tasks plus a folder of stand-ins for
    lm-eval's own (a task with 2 or 3 choices per item, a group, a perplexity task and a
    task whose dataset is not there), so lookups beyond the local tasks run offline in
    milliseconds instead of indexing lm-eval's thousands of YAML files."""
    from lm_eval.tasks import TaskManager

    (tmp_path / "loader.py").write_text((TASKS_DIR / "loader.py").read_text())
    (tmp_path / "mixed.jsonl").write_text("".join(
        f'{{"context": "{c}", "choices": {choices}, "label": 0}}\n'
        for c, choices in [("a", '["b", "c"]'), ("b", '["c", "d", "e"]')] * 3))
    (tmp_path / "mixed.yaml").write_text(EXTERNAL_TASK)
    (tmp_path / "group.yaml").write_text("group: both\ntask:\n  - mixed_choices\n  - missing_data\n")
    (tmp_path / "ppl.yaml").write_text("task: rolling_text\ndataset_path: nowhere/text\n"
                                       "output_type: loglikelihood_rolling\ntest_split: test\ndoc_to_text: text\n"
                                       "doc_to_target: text\n")
    (tmp_path / "missing.yaml").write_text("task: missing_data\ndataset_path: /nonexistent/genesys-test-data\n"
                                           "output_type: multiple_choice\ntest_split: test\ndoc_to_text: q\n"
                                           "doc_to_choice: c\ndoc_to_target: 0\n")
    manager = TaskManager(include_path=[str(TASKS_DIR), str(tmp_path)], include_defaults=False)
    with mock.patch.object(lm_eval_suite, "full_task_manager", lambda: manager):
        yield manager


def test_unknown_task_names_name_the_local_tasks(lm_eval_index):
    suite = lm_eval_suite.suites()[0]
    with pytest.raises(EvaluationError) as err:
        suite.task("genesys_spelingg")
    message = str(err.value)
    assert "no task 'genesys_spelingg'" in message and "did you mean 'genesys_spelling'" in message
    assert all(t.name in message for t in LOCAL_TASKS)
    with pytest.raises(EvaluationError, match="'both' is a group of tasks.*name them instead: mixed_choices, "
                                              "missing_data"):
        suite.task("both")
    with pytest.raises(EvaluationError, match="'rolling_text' measures perplexity; use the 'perplexity' suite"):
        suite.task("rolling_text")


def test_other_lm_eval_tasks_are_scored_with_their_measured_random_baseline(lm_eval_index, model):
    suite = lm_eval_suite.suites()[0]
    info = suite.task("mixed_choices")
    assert (info.metric, info.best_score) == ("acc_norm", 1.0)
    (score,) = suite.run(context(model), ["mixed_choices"])
    assert score.random_score == pytest.approx((1 / 2 + 1 / 3) / 2)  # measured on its items
    assert score.metric == "acc_norm" and 0.0 <= score.score <= 1.0 and score.details["items"] == 6


def test_a_task_whose_data_is_missing_is_an_evaluation_error(lm_eval_index, model):
    suite = lm_eval_suite.suites()[0]
    with pytest.raises(EvaluationError, match="lm-eval could not load task.* missing_data"):
        suite.run(context(model), ["missing_data"])


@pytest.mark.slow
def test_names_are_looked_up_in_lm_evals_own_index():
    suite = lm_eval_suite.suites()[0]  # indexes every task YAML lm-eval ships (6-40 s, once)
    with pytest.raises(EvaluationError, match="no task 'genesys_spelingg'.*Local tasks: genesys_word_order"):
        suite.task("genesys_spelingg")
    with pytest.raises(EvaluationError, match="'mmlu' is a group of tasks.*name them instead: mmlu_"):
        suite.task("mmlu")
    hellaswag = suite.task("hellaswag")  # known without its data
    assert (hellaswag.metric, hellaswag.best_score) == ("acc_norm", 1.0)
