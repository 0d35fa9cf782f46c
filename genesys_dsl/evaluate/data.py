"""The text designs are pretrained and measured on, as token streams, and the batches
the trainer draws from them.

`load_corpus(DataConfig)` gives a `Corpus`: a train and a held-out token stream plus
their sizes in bytes. The default is the corpus bundled with genesys-dsl (Shakespeare's
works, public domain; the held-out part is two whole plays, see corpus/README.md). A
user corpus is a list of text files and folders, each document split at a line
boundary so its last `heldout_fraction` is held out; `hf:NAME[:CONFIG]` reads a
Hugging Face dataset (needs the `datasets` package and a network).

`lm_batches(tokens, ...)` is the trainer's BatchSource for language modelling: random
windows of the stream, drawn from (seed, step) alone, so a resumed run sees the same data.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig
from .suite import EvaluationError
from .tokenizers import Tokenizer, get_tokenizer
from .trainer import BatchSource

CORPUS_PACKAGE = "genesys_dsl.evaluate.corpus"
BUNDLED_NAME = "shakespeare"
BUNDLED_FILES = {"train": "shakespeare.train.txt.xz", "heldout": "shakespeare.heldout.txt.xz"}
TEXT_SUFFIXES = (".txt", ".text", ".md")  # what a folder contributes
HF_PREFIX = "hf:"
DOCUMENT_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Corpus:
    name: str
    tokenizer: Tokenizer
    train: torch.Tensor  # int32 token ids [n]
    heldout: torch.Tensor  # int32 token ids [m]
    train_bytes: int  # UTF-8 bytes the streams were encoded from
    heldout_bytes: int

    @property
    def heldout_bytes_per_token(self) -> float:
        return self.heldout_bytes / max(1, len(self.heldout))

    def describe(self) -> str:
        return (f"{self.name} ({self.tokenizer.name} tokens: {len(self.train):,} train, "
                f"{len(self.heldout):,} held out)")


@lru_cache(maxsize=4)
def load_corpus(config: DataConfig) -> Corpus:
    """Read, split and tokenize the corpus `config` names (cached: suites share it)."""
    tokenizer = get_tokenizer(config.tokenizer)
    if not config.corpus:
        name, (train, heldout) = BUNDLED_NAME, bundled_texts()
    elif len(config.corpus) == 1 and config.corpus[0].startswith(HF_PREFIX):
        name, (train, heldout) = config.corpus[0], _hf_texts(config.corpus[0][len(HF_PREFIX):],
                                                             config.heldout_fraction)
    else:
        name = ", ".join(config.corpus)
        train, heldout = split_documents(_read_documents(config.corpus), config.heldout_fraction)
    return Corpus(name=name, tokenizer=tokenizer,
                  train=torch.from_numpy(tokenizer.encode(train)), heldout=torch.from_numpy(tokenizer.encode(heldout)),
                  train_bytes=len(train.encode("utf-8")), heldout_bytes=len(heldout.encode("utf-8")))


def lm_batches(tokens: torch.Tensor, batch_size: int, context_length: int, seed: int) -> BatchSource:
    """Next-token batches of `batch_size` windows of `context_length` tokens, at offsets
    drawn from (seed, step): the same step always gives the same batch."""
    span = context_length + 1
    if len(tokens) < span:
        raise EvaluationError(f"the corpus has {len(tokens)} training tokens, fewer than one window of "
                              f"{span} (context length {context_length} + 1); give a longer corpus")
    positions = torch.arange(span)

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([seed, step])
        starts = torch.from_numpy(rng.integers(0, len(tokens) - span + 1, size=batch_size))
        windows = tokens[starts[:, None] + positions].long()
        return windows[:, :-1], windows[:, 1:]

    return batch


def split_documents(documents: list[str], heldout_fraction: float) -> tuple[str, str]:
    """Hold out the last `heldout_fraction` of each document, cut at a line boundary
    where there is one, so both parts keep the corpus's mix of documents."""
    train, heldout = [], []
    for text in documents:
        cut = round(len(text) * (1 - heldout_fraction))
        newline = text.rfind("\n", 0, cut + 1)  # the last line end at or before the cut
        if 0 < newline < len(text) - 1:  # ... unless that would hold out nothing
            cut = newline + 1
        train.append(text[:cut])
        heldout.append(text[cut:])
    return DOCUMENT_SEPARATOR.join(t for t in train if t), DOCUMENT_SEPARATOR.join(h for h in heldout if h)


def bundled_texts() -> tuple[str, str]:
    """The bundled corpus's (train, held-out) text."""
    folder = resources.files(CORPUS_PACKAGE)
    texts = []
    for part in ("train", "heldout"):
        path = folder.joinpath(BUNDLED_FILES[part])
        try:
            texts.append(lzma.decompress(path.read_bytes()).decode("utf-8"))
        except FileNotFoundError:
            raise EvaluationError(f"the bundled corpus file {path} is missing from this installation of "
                                  f"genesys-dsl; reinstall it, or give your own text with --corpus") from None
    return texts[0], texts[1]


def _read_documents(paths: tuple[str, ...]) -> list[str]:
    """The text of every file named, and of every text file under every folder named."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
            if not found:
                raise EvaluationError(f"corpus folder {path} has no text files (looked for "
                                      f"{', '.join('*' + s for s in TEXT_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise EvaluationError(f"corpus path {path} does not exist; give text files or folders of them, "
                                  f"or no corpus for the bundled one ({BUNDLED_NAME})")
    documents = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise EvaluationError(f"corpus file {path} is not UTF-8 text (byte {err.start}: {err.reason})") from None
        except OSError as err:
            raise EvaluationError(f"corpus file {path} cannot be read: {err.strerror}") from None
        if text.strip():
            documents.append(text)
    if not documents:
        raise EvaluationError(f"the corpus {', '.join(paths)} is empty: its files hold no text")
    return documents


def _hf_texts(spec: str, heldout_fraction: float) -> tuple[str, str]:
    """A Hugging Face dataset's "text" column: its validation (or test) split held out
    when it has one, else the last fraction of each document of its train split."""
    try:
        import datasets
    except ImportError:
        raise EvaluationError(f"corpus '{HF_PREFIX}{spec}' needs the Hugging Face `datasets` package: "
                              f"pip install datasets") from None
    name, _, subset = spec.partition(":")
    try:
        loaded = datasets.load_dataset(name, subset or None)
    except Exception as err:  # network, unknown dataset, bad config: datasets raises many kinds
        raise EvaluationError(f"corpus '{HF_PREFIX}{spec}': cannot load the dataset ({err})") from None
    if "train" not in loaded or "text" not in loaded["train"].column_names:
        raise EvaluationError(f"corpus '{HF_PREFIX}{spec}' needs a 'train' split with a 'text' column; "
                              f"it has splits {', '.join(loaded)}")
    train = [t for t in loaded["train"]["text"] if t.strip()]
    for split in ("validation", "test"):
        if split in loaded:
            return "\n".join(train), "\n".join(t for t in loaded[split]["text"] if t.strip())
    return split_documents(train, heldout_fraction)
