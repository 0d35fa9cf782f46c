"""Tokenizers that run offline: UTF-8 bytes, GPT-2 BPE from the vocabulary bundled with
genesys-dsl, or a user's own Hugging Face `tokenizer.json` file.

`get_tokenizer(name)` takes "byte", "gpt2", or a path to a tokenizer.json. Every
tokenizer also says how many UTF-8 bytes each of its tokens stands for, so bits per
byte can be measured exactly whatever the vocabulary.
"""

from __future__ import annotations

import json
import lzma
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from .suite import EvaluationError

VOCAB_PACKAGE = "genesys_dsl.evaluate.vocab"
GPT2_ENCODER = "gpt2.encoder.json.xz"  # token -> id, as OpenAI released it (encoder.json)
GPT2_MERGES = "gpt2.vocab.bpe.xz"  # BPE merges in rank order (vocab.bpe)
KNOWN = ("byte", "gpt2")
PIECE_CHARS = 16_384


class Tokenizer(Protocol):
    name: str
    vocab_size: int

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`, int32."""

    def decode(self, ids) -> str: ...

    def byte_lengths(self) -> np.ndarray:
        """UTF-8 bytes per token id, int64 [vocab_size]."""


class ByteTokenizer:
    """One token per UTF-8 byte: 256 symbols, nothing to load, nothing unknown."""

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def byte_lengths(self) -> np.ndarray:
        return np.ones(self.vocab_size, dtype=np.int64)


class HFTokenizer:
    """A byte-level BPE run by Hugging Face `tokenizers` (GPT-2's, or one from a file)."""

    def __init__(self, name: str, tokenizer) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        # One multi-MB string is encoded on one thread and slowly; pieces go in parallel.
        # A cut after a lone newline between two non-space characters is exact for GPT-2's
        # pre-tokeniser (that newline is a pre-token of its own either way, and BPE never
        # merges across pre-tokens); a cut inside a run of whitespace would not be.
        pieces = _pieces(text)
        encoded = self.tokenizer.encode_batch(pieces, add_special_tokens=False) if pieces else []
        return np.fromiter((i for e in encoded for i in e.ids), dtype=np.int32)

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def byte_lengths(self) -> np.ndarray:
        # A byte-level token spells each of its bytes as one character of a 256-character
        # alphabet; decoding it alone would turn a partial UTF-8 sequence into U+FFFD.
        from tokenizers.pre_tokenizers import ByteLevel

        alphabet = set(ByteLevel.alphabet())
        lengths = np.zeros(self.vocab_size, dtype=np.int64)
        for token, i in self.tokenizer.get_vocab(with_added_tokens=True).items():
            if i < self.vocab_size:
                lengths[i] = (len(token) if set(token) <= alphabet
                              else len(self.tokenizer.decode([i], skip_special_tokens=False).encode("utf-8")))
        return lengths


def _pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """`text` cut after newlines between non-space characters, about every `size` characters."""
    pieces, start = [], 0
    while start < len(text):
        end = start + size
        while end < len(text) and not (text[end - 1] == "\n" and not text[end].isspace()
                                       and not text[end - 2].isspace()):
            end += 1
        pieces.append(text[start:end])
        start = end
    return pieces


def get_tokenizer(name: str) -> Tokenizer:
    """The tokenizer called `name` ("byte", "gpt2") or stored at path `name` (a Hugging
    Face tokenizer.json). Unknown names and missing files raise EvaluationError."""
    if name == "byte":
        return ByteTokenizer()
    if name == "gpt2":
        return _gpt2()
    if name.endswith(".json") or "/" in name or "\\" in name:
        return _from_file(Path(name))
    raise EvaluationError(f"unknown tokenizer '{name}'; known tokenizers: {', '.join(KNOWN)}, "
                          f"or a path to a Hugging Face tokenizer.json file")


@lru_cache(maxsize=1)
def _gpt2() -> HFTokenizer:
    """GPT-2's byte-level BPE, built from OpenAI's encoder.json and vocab.bpe exactly as
    GPT-2 runs it: byte-level pre-tokenisation without a prefix space, no special-token
    parsing (the text "<|endoftext|>" is plain text, as in tiktoken's default)."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers

    encoder = json.loads(_bundled(GPT2_ENCODER))
    lines = _bundled(GPT2_MERGES).splitlines()
    merges = [tuple(line.split(" ")) for line in lines[1:] if line]  # first line: "#version: 0.2"
    backend = Backend(models.BPE(vocab=encoder, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return HFTokenizer("gpt2", backend)


def _bundled(filename: str) -> str:
    path = resources.files(VOCAB_PACKAGE).joinpath(filename)
    try:
        return lzma.decompress(path.read_bytes()).decode("utf-8")
    except FileNotFoundError:
        raise EvaluationError(f"tokenizer file {path} is missing from this installation of genesys-dsl; "
                              f"reinstall it, or use the 'byte' tokenizer (no files)") from None


def _from_file(path: Path) -> HFTokenizer:
    from tokenizers import Tokenizer as Backend

    if not path.is_file():
        raise EvaluationError(f"tokenizer file {path} does not exist; give a Hugging Face tokenizer.json, "
                              f"or one of the built-in tokenizers: {', '.join(KNOWN)}")
    try:
        backend = Backend.from_file(str(path))
    except Exception as err:  # tokenizers raises its own untyped Exception on bad JSON
        raise EvaluationError(f"{path}: not a Hugging Face tokenizer.json ({err})") from None
    return HFTokenizer(str(path), backend)
