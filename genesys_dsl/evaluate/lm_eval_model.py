"""A compiled design as an lm-evaluation-harness model, registered as "genesys".

`GenesysLM(model, tokenizer)` wraps any module mapping input_ids [B, L] to logits
[B, L, V] with a genesys tokenizer (`encode`, `decode`), and answers lm-eval's three
request types:

* loglikelihood(context, continuation): the summed log-probability of the
  continuation's tokens and whether greedy decoding would produce them;
* loglikelihood_rolling(text): the log-probability of the whole text, each token
  predicted with as much left context as fits (rolling windows);
* generate_until(context, {until, max_gen_toks}): greedy decoding until a stop string
  or the token limit.

Inputs longer than the model's context length are cut from the left, so every scored
token keeps the most recent context. Requests are batched by length. Batches are
padded on the right, which changes nothing before the padding because designs are
causal (checked before they compile), so no attention mask is needed.

Genesys corpora have no end-of-text token: documents are joined by a blank line. The
token that ends that separator is what precedes every document in training, so it is
the context of a request with an empty one and the first token of rolling windows.

From lm-eval's own entry points (`lm_eval.simple_evaluate(model="genesys",
model_args={"spec": "specs/gpt2.gab", "scale": "cpu-xs"})`) the model is built fresh
from a spec; the genesys `lm_eval` suite passes the pretrained model instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import lm_eval.models  # noqa: F401 - lm-eval's own model names, which get_model() only adds to an empty registry
import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import normalize_gen_kwargs
from tqdm import tqdm

from .data import DOCUMENT_SEPARATOR
from .suite import EvaluationError

MODEL_NAME = "genesys"
DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's default when a task sets none


class TextTokenizer(Protocol):
    name: str
    vocab_size: int

    def encode(self, text: str) -> Sequence[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class Window:
    """One forward pass's worth of a request: `inputs` are fed to the model and its
    last `n_targets` positions predict `targets`."""

    request: int
    inputs: list[int]
    targets: list[int]


def scoring_windows(request: int, tokens: list[int], n_scored: int, max_length: int) -> list[Window]:
    """Windows that score the last `n_scored` of `tokens`, each from at most `max_length`
    inputs. Targets go in chunks of `max_length` from the first scored one; each chunk
    sees the `max_length` tokens before its last target (cut from the left), so one
    window holds a whole continuation of up to `max_length` tokens."""
    if n_scored >= len(tokens):
        raise ValueError("the first token has nothing to condition on; prefix the tokens")
    windows = []
    for first in range(len(tokens) - n_scored, len(tokens), max_length):
        end = min(first + max_length, len(tokens))  # targets tokens[first:end]
        start = max(0, end - 1 - max_length)
        windows.append(Window(request, tokens[start:end - 1], tokens[first:end]))
    return windows


@register_model(MODEL_NAME)
class GenesysLM(TemplateLM):
    """lm-eval's view of a genesys language model (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, tokenizer: TextTokenizer, *, context_length: int | None = None,
                 batch_size: int | str = DEFAULT_BATCH_SIZE, max_gen_toks: int = DEFAULT_MAX_GEN_TOKS,
                 device: str | torch.device | None = None, progress: bool = False) -> None:
        super().__init__()
        self._device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self._device).eval()
        self.tokenizer = tokenizer
        self._max_length = int(context_length or model.context_length)
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.max_gen_toks = _positive_int(max_gen_toks, "max_gen_toks")
        self.progress = progress
        separator = self.tok_encode(DOCUMENT_SEPARATOR)
        self._prefix_token_id = separator[-1]

    # ------------------------------------------------------------------ construction from lm-eval

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None):
        """Build a fresh model from a spec: spec (path), scale (default cpu-xs), seed
        (default 0), tokenizer (default byte), plus the keywords of __init__."""
        from ..compile import build
        from ..syntax.files import read_design
        from .tokenizers import get_tokenizer

        args = {**arg_dict, **{k: v for k, v in (additional_config or {}).items() if v is not None}}
        if "spec" not in args:
            raise EvaluationError("the 'genesys' lm-eval model needs model_args spec=PATH to a .gab file "
                                  "(and optionally scale=, seed=, tokenizer=, batch_size=, device=)")
        design = read_design(str(args.pop("spec")))
        tokenizer = get_tokenizer(str(args.pop("tokenizer", "byte")))
        model = build(design, str(args.pop("scale", "cpu-xs")), seed=int(args.pop("seed", 0)))
        known = {"context_length", "batch_size", "max_gen_toks", "device", "progress"}
        unknown = set(args) - known
        if unknown:
            raise EvaluationError(f"unknown model_args for the 'genesys' lm-eval model: {', '.join(sorted(unknown))}; "
                                  f"known: spec, scale, seed, tokenizer, {', '.join(sorted(known))}")
        return cls(model, tokenizer, **args)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict[str, Any] | None = None):
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    # ------------------------------------------------------------------ what lm-eval asks about

    @property
    def eot_token_id(self) -> int:
        return self._prefix_token_id

    @property
    def prefix_token_id(self) -> int:
        return self._prefix_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return [int(i) for i in self.tokenizer.encode(string)]

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(tokens)

    # ------------------------------------------------------------------ scoring

    def loglikelihood(self, requests, disable_tqdm: bool | None = None) -> list[tuple[float, bool]]:
        return super().loglikelihood(requests, disable_tqdm=not self.progress if disable_tqdm is None else disable_tqdm)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        windows = [w for i, (_, context, continuation) in enumerate(requests)
                   for w in scoring_windows(i, context + continuation, len(continuation), self.max_length)]
        results = self._score(windows, len(requests), disable_tqdm, "loglikelihood")
        for (key, _, _), result in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", key, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool | None = None) -> list[float]:
        disable = not self.progress if disable_tqdm is None else disable_tqdm
        windows = []
        for i, request in enumerate(requests):
            (text,) = request.args
            tokens = self.tok_encode(text)
            windows += scoring_windows(i, [self.prefix_token_id, *tokens], len(tokens), self.max_length)
        results = [logprob for logprob, _ in self._score(windows, len(requests), disable, "loglikelihood_rolling")]
        for request, result in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, result)
        return results

    @torch.inference_mode()
    def _score(self, windows: list[Window], n_requests: int, disable_tqdm: bool, what: str
               ) -> list[tuple[float, bool]]:
        """Sum of target log-probabilities and all-greedy, per request (a request with
        no window, the empty text, scores 0 and counts as greedy)."""
        logprob = [0.0] * n_requests
        greedy = [True] * n_requests
        order = sorted(range(len(windows)), key=lambda k: -len(windows[k].inputs))  # similar lengths batch together
        for batch in tqdm(_chunks(order, self.batch_size), disable=disable_tqdm, desc=what,
                          total=-(-len(order) // self.batch_size)):
            logits = self._forward([windows[k].inputs for k in batch])
            for row, k in enumerate(batch):
                w = windows[k]
                n_in, n_tgt = len(w.inputs), len(w.targets)
                scores = F.log_softmax(logits[row, n_in - n_tgt:n_in].float(), dim=-1)
                targets = torch.tensor(w.targets, device=scores.device)
                logprob[w.request] += scores.gather(-1, targets[:, None]).sum().item()
                greedy[w.request] &= bool((scores.argmax(-1) == targets).all())
        return list(zip(logprob, greedy))

    def _forward(self, sequences: list[list[int]]) -> torch.Tensor:
        """Logits [B, longest, V] of right-padded sequences (each at most max_length)."""
        longest = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), longest), self.prefix_token_id, dtype=torch.long)
        for row, s in enumerate(sequences):
            ids[row, :len(s)] = torch.tensor(s, dtype=torch.long)
        return self.model(ids.to(self.device))

    # ------------------------------------------------------------------ generation

    @torch.inference_mode()
    def generate_until(self, requests, disable_tqdm: bool | None = None) -> list[str]:
        disable = not self.progress if disable_tqdm is None else disable_tqdm
        jobs = []
        for request in requests:
            context, gen_kwargs = request.args
            kwargs = normalize_gen_kwargs(gen_kwargs or {}, default_max_gen_toks=self.max_gen_toks)
            if kwargs.get("do_sample"):
                raise EvaluationError(f"the 'genesys' lm-eval model decodes greedily; this task asks for "
                                      f"sampling ({gen_kwargs}); set do_sample=False in its generation_kwargs")
            until = [s for s in kwargs["until"] if s]
            jobs.append((self.tok_encode(context) or [self.prefix_token_id], until, kwargs["max_gen_toks"]))
        outputs = [""] * len(jobs)
        order = sorted(range(len(jobs)), key=lambda k: -len(jobs[k][0]))
        for batch in tqdm(_chunks(order, self.batch_size), disable=disable, desc="generate_until",
                          total=-(-len(order) // self.batch_size)):
            for k, text in zip(batch, self._generate([jobs[k] for k in batch])):
                outputs[k] = text
        for request, text in zip(requests, outputs):
            self.cache_hook.add_partial("generate_until", request.args, text)
        return outputs

    def _generate(self, jobs: list[tuple[list[int], list[str], int]]) -> list[str]:
        """Greedy continuations of one batch; a job stops at its first stop string
        (which is cut off) or after its token limit."""
        generated: list[list[int]] = [[] for _ in jobs]
        texts = [""] * len(jobs)
        running = [max_new > 0 for _, _, max_new in jobs]
        while any(running):
            active = [k for k, on in enumerate(running) if on]
            windows = [(jobs[k][0] + generated[k])[-self.max_length:] for k in active]
            logits = self._forward(windows)
            for row, k in enumerate(active):
                generated[k].append(int(logits[row, len(windows[row]) - 1].argmax()))
                texts[k] = self.tok_decode(generated[k])
                stops = [texts[k].find(s) for s in jobs[k][1] if s in texts[k]]
                if stops:
                    texts[k] = texts[k][:min(stops)]
                    running[k] = False
                elif len(generated[k]) >= jobs[k][2]:
                    running[k] = False
        return texts


def _chunks(items: list[int], size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _positive_int(value: int | str, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise EvaluationError(f"the 'genesys' lm-eval model takes a positive integer {what}, got {value!r}")
    return number
