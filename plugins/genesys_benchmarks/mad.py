"""Seeded generators for the synthetic token-manipulation tasks.

The six tasks of MAD (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures"; reference code athms/mad-lab) and multi-query associative recall
(Arora et al. 2023, "Zoology"; HazyResearch/zoology). Each generator is

    task(num_examples, seq_len, vocab_size, ..., seed=) -> (inputs, targets)

with inputs [num_examples, seq_len] int64 token ids in [0, vocab_size) and targets
of the same shape: at position i, the token the model must output having read
inputs[: i + 1], or -100 where nothing is scored. The same arguments give the same
tensors; a different seed gives different examples.

Vocabularies and scored positions follow the references (multi-query form, as MAD's
benchmark configs use it). Where they differ, it is said at the function. Sizes that
cannot make the task raise ValueError naming the size and what it must satisfy.
"""

from __future__ import annotations

import numpy as np
import torch

IGNORE = -100
Batch = tuple[torch.Tensor, torch.Tensor]


def in_context_recall(num_examples: int, seq_len: int, vocab_size: int, *, seed: int,
                      noise_vocab_size: int = 0, frac_noise: float = 0.0) -> Batch:
    """Key-value pairs `k v k v ...`; a key keeps its value within a sequence. Scored:
    the value after every key that appeared earlier. Keys are the lower half of the
    non-noise vocabulary, values the upper half, noise tokens (if any) the top
    `noise_vocab_size` ids; with frac_noise > 0 that fraction of pairs is replaced by
    two noise tokens. The last pair always repeats an earlier key, so every example
    has at least one scored value (MAD's final probe)."""
    _check_common(num_examples, seq_len, vocab_size)
    n_keys, n_values = _recall_vocab(vocab_size, noise_vocab_size)
    if not 0.0 <= frac_noise < 1.0:
        raise ValueError(f"frac_noise={frac_noise} must be in [0, 1)")
    if frac_noise > 0 and noise_vocab_size < 1:
        raise ValueError("frac_noise > 0 needs noise_vocab_size >= 1")
    if seq_len < 4:
        raise ValueError(f"seq_len={seq_len} must be at least 4 (two key-value pairs)")
    rng = np.random.default_rng(seed)
    n = num_examples
    rows = np.arange(n)
    # Generate whole pairs covering seq_len + 1 tokens, dropping a leading token when the
    # count is odd, so the sequence ends on the probe's value whatever seq_len is.
    pairs = (seq_len + 2) // 2
    drop = 2 * pairs - (seq_len + 1)
    first = drop  # first pair whose key is visible
    keys = rng.integers(0, n_keys, size=(n, pairs))
    table = rng.integers(n_keys, n_keys + n_values, size=(n, n_keys))  # each key's value, per example
    noise = rng.random((n, pairs)) < frac_noise
    noise[:, first] = False
    noise[:, -1] = False
    # the probe: the key of a random earlier non-noise pair (pair `first` always is one)
    candidates = ~noise[:, first:-1]
    pick = rng.random((n, pairs - 1 - first)) * candidates
    keys[:, -1] = keys[rows, first + pick.argmax(axis=1)]
    values = table[rows[:, None], keys]
    tokens = np.stack([keys, values], axis=2).reshape(n, 2 * pairs)
    scored = np.zeros((n, 2 * pairs), dtype=bool)
    seen = np.zeros((n, n_keys), dtype=bool)
    for j in range(first, pairs):
        live = ~noise[:, j]
        scored[:, 2 * j + 1] = live & seen[rows, keys[:, j]]
        seen[rows[live], keys[live, j]] = True
    if noise.any():
        noise_tokens = rng.integers(n_keys + n_values, n_keys + n_values + noise_vocab_size, size=(n, 2 * pairs))
        noisy = np.repeat(noise, 2, axis=1)
        tokens[noisy] = noise_tokens[noisy]
    return _shifted(tokens[:, drop:], scored[:, drop:])


def noisy_in_context_recall(num_examples: int, seq_len: int, vocab_size: int, *, seed: int,
                            noise_vocab_size: int = 16, frac_noise: float = 0.2) -> Batch:
    """In-context recall with `frac_noise` of the pairs replaced by noise tokens."""
    return in_context_recall(num_examples, seq_len, vocab_size, seed=seed,
                             noise_vocab_size=noise_vocab_size, frac_noise=frac_noise)


def fuzzy_in_context_recall(num_examples: int, seq_len: int, vocab_size: int, *, seed: int,
                            k_motif_size: int = 3, v_motif_size: int = 3, test: bool = False) -> Batch:
    """Recall where keys and values are motifs of 1..k_motif_size and 1..v_motif_size
    distinct tokens, written without separators (keys and values come from disjoint
    halves of the vocabulary; the top id pads sequences on the left). Scored: every
    token of the value that follows a key seen earlier. A probe pair is placed at a
    random point and repeated at the end. As in MAD, `test` sets use keys of the
    full motif size only."""
    _check_common(num_examples, seq_len, vocab_size)
    n_keys, n_values = _recall_vocab(vocab_size - 1, 0)  # the top id is padding
    pad = vocab_size - 1
    if k_motif_size < 1 or v_motif_size < 1:
        raise ValueError("k_motif_size and v_motif_size must be at least 1")
    if k_motif_size > n_keys or v_motif_size > n_values:
        raise ValueError(f"motifs of {k_motif_size} key / {v_motif_size} value tokens need that many distinct "
                         f"ones; vocab_size={vocab_size} gives {n_keys} key and {n_values} value tokens")
    longest_pair = k_motif_size + v_motif_size
    if seq_len + 1 < 3 * longest_pair:
        raise ValueError(f"seq_len={seq_len} is too short for motifs of {k_motif_size}+{v_motif_size} tokens "
                         f"(needs at least {3 * longest_pair - 1})")
    rng = np.random.default_rng(seed)
    key_sizes = [k_motif_size] if test else list(range(1, k_motif_size + 1))
    length = seq_len + 1
    tokens = np.full((num_examples, length), pad, dtype=np.int64)
    scored = np.zeros((num_examples, length), dtype=bool)

    def motif(sizes: list[int], low: int, count: int) -> tuple[int, ...]:
        return tuple(int(t) + low for t in rng.permutation(count)[:sizes[rng.integers(len(sizes))]])

    for row in range(num_examples):
        probe_key = motif(key_sizes, 0, n_keys)
        table = {probe_key: motif(list(range(1, v_motif_size + 1)), n_keys, n_values)}
        probe_len = len(probe_key) + len(table[probe_key])
        probe_at = int(rng.integers(length - 2 * probe_len))
        out: list[int] = []
        mask: list[bool] = []
        presented: set[tuple[int, ...]] = set()

        def emit(key: tuple[int, ...]) -> None:
            value = table.setdefault(key, motif(list(range(1, v_motif_size + 1)), n_keys, n_values))
            out.extend(key + value)
            mask.extend([False] * len(key) + [key in presented] * len(value))
            presented.add(key)

        # room is kept for the longest pair, the probe if not yet shown, and its repeat
        while len(out) + longest_pair + probe_len * (1 + (probe_key not in presented)) <= length:
            if probe_key not in presented and len(out) >= probe_at:
                emit(probe_key)
            else:
                emit(motif(key_sizes, 0, n_keys))
        if probe_key not in presented:
            emit(probe_key)
        emit(probe_key)
        tokens[row, length - len(out):] = out
        scored[row, length - len(out):] = mask
    return _shifted(tokens, scored)


def selective_copying(num_examples: int, seq_len: int, vocab_size: int, *, seed: int,
                      num_tokens_to_copy: int = 16) -> Batch:
    """`num_tokens_to_copy` content tokens scattered among blanks, a copy token, then
    as many blanks: at each of those final blanks the model must output the content
    tokens in order (scored). Content is ids 0..vocab_size-3, blank vocab_size-2, copy
    vocab_size-1. (MAD places blanks with an unseeded generator; here the seed does.)"""
    _check_common(num_examples, seq_len, vocab_size, special=2)
    n = num_tokens_to_copy
    if n < 1:
        raise ValueError(f"num_tokens_to_copy={n} must be at least 1")
    if seq_len < 2 * n + 2:
        raise ValueError(f"seq_len={seq_len} must be at least 2 x num_tokens_to_copy + 2 = {2 * n + 2}")
    rng = np.random.default_rng(seed)
    blank, copy = vocab_size - 2, vocab_size - 1
    spread = seq_len - n - 1  # where the content is scattered
    content = rng.integers(0, vocab_size - 2, size=(num_examples, n))
    # n distinct positions of the first `spread`, in order: argsort of uniforms is a random permutation
    where = np.sort(np.argsort(rng.random((num_examples, spread)), axis=1)[:, :n], axis=1)
    inputs = np.full((num_examples, seq_len), blank, dtype=np.int64)
    np.put_along_axis(inputs, where, content, axis=1)
    inputs[:, spread] = copy
    targets = np.full((num_examples, seq_len), IGNORE, dtype=np.int64)
    targets[:, spread + 1:] = content
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def compression(num_examples: int, seq_len: int, vocab_size: int, *, seed: int) -> Batch:
    """seq_len - 1 random tokens (ids 0..vocab_size-2) and a compression token
    (vocab_size-1). Targets are the inputs themselves: the model must reconstruct
    every token from its state at the compression token (the suite puts a bottleneck
    decoder on that last position, as MAD's autoencoder does). The compression token's
    own position is not scored (MAD scores it; it is trivially predictable)."""
    _check_common(num_examples, seq_len, vocab_size, special=1)
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len} must be at least 2")
    rng = np.random.default_rng(seed)
    inputs = np.full((num_examples, seq_len), vocab_size - 1, dtype=np.int64)
    inputs[:, :-1] = rng.integers(0, vocab_size - 1, size=(num_examples, seq_len - 1))
    targets = inputs.copy()
    targets[:, -1] = IGNORE
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def memorization_map(vocab_size: int, map_seed: int) -> np.ndarray:
    """The fixed fact table of `memorization`: value of key k at index k. Keys are ids
    0..(V-1)//2 - 1, values distinct ids from the upper half (V-1 excluded: it is the
    insert token)."""
    n_keys, n_values = _recall_vocab(vocab_size - 1, 0)
    rng = np.random.default_rng(map_seed)
    return n_keys + rng.permutation(n_values)[:n_keys]


def memorization(num_examples: int, seq_len: int, vocab_size: int, *, seed: int, map_seed: int) -> Batch:
    """Pairs `key insert` with keys drawn at random; at each insert token the model must
    output the key's value from one table fixed by `map_seed` for the whole task (train
    and test share it), so the facts are stored in the weights, not read from context.
    Scored: every insert position."""
    _check_common(num_examples, seq_len, vocab_size, special=1)
    if seq_len < 2 or seq_len % 2:
        raise ValueError(f"seq_len={seq_len} must be even and at least 2 (key, insert pairs)")
    table = memorization_map(vocab_size, map_seed)
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, len(table), size=(num_examples, seq_len // 2))
    inputs = np.stack([keys, np.full_like(keys, vocab_size - 1)], axis=2).reshape(num_examples, seq_len)
    targets = np.stack([np.full_like(keys, IGNORE), table[keys]], axis=2).reshape(num_examples, seq_len)
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def mqar(num_examples: int, seq_len: int, vocab_size: int, *, seed: int, num_kv_pairs: int = 8,
         power_a: float = 0.01, random_non_queries: bool = True) -> Batch:
    """Zoology's multi-query associative recall: `num_kv_pairs` pairs with distinct keys
    (ids 1..V/2-1) and distinct values (ids V/2..V-1) first, then every key queried
    once at even offsets, spaced by a power law (power_a; 1.0 is uniform) so most
    queries come soon after the context. Scored: at each query the key's value. Other
    positions hold random tokens (random_non_queries) or 0."""
    _check_common(num_examples, seq_len, vocab_size)
    p = num_kv_pairs
    if p < 1:
        raise ValueError(f"num_kv_pairs={p} must be at least 1")
    if p > vocab_size // 2 - 1 or p > vocab_size - vocab_size // 2:
        raise ValueError(f"num_kv_pairs={p} needs {p} distinct keys and values; vocab_size={vocab_size} "
                         f"has {vocab_size // 2 - 1} keys")
    if 4 * p > seq_len:
        raise ValueError(f"seq_len={seq_len} must be at least 4 x num_kv_pairs = {4 * p} "
                         f"(the pairs, then a query slot per key)")
    if power_a <= 0:
        raise ValueError(f"power_a={power_a} must be positive")
    rng = np.random.default_rng(seed)
    n, context = num_examples, 2 * p
    keys = 1 + np.argsort(rng.random((n, vocab_size // 2 - 1)), axis=1)[:, :p]
    values = vocab_size // 2 + np.argsort(rng.random((n, vocab_size - vocab_size // 2)), axis=1)[:, :p]
    space = (seq_len - context) // 2
    weights = power_a * np.arange(1, space + 1, dtype=float) ** (power_a - 1)
    # p slots drawn without replacement in proportion to `weights`: Gumbel top-k
    gumbel = np.log(weights) - np.log(-np.log(rng.random((n, space))))
    gaps = np.argsort(-gumbel, axis=1)[:, :p]
    inputs = np.zeros((n, seq_len), dtype=np.int64)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    np.put_along_axis(inputs, context + 2 * gaps, keys, axis=1)
    targets = np.full((n, seq_len), IGNORE, dtype=np.int64)
    np.put_along_axis(targets, context + 2 * gaps, values, axis=1)
    if random_non_queries:
        filler = rng.integers(0, vocab_size, size=(n, seq_len))
        empty = inputs == 0
        inputs[empty] = filler[empty]
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def value_vocab_size(vocab_size: int, noise_vocab_size: int = 0) -> int:
    """How many value tokens a recall task with these sizes guesses among."""
    return _recall_vocab(vocab_size, noise_vocab_size)[1]


# -- shared ------------------------------------------------------------------------------------

def _check_common(num_examples: int, seq_len: int, vocab_size: int, special: int = 0) -> None:
    if num_examples < 1:
        raise ValueError(f"num_examples={num_examples} must be at least 1")
    if seq_len < 1:
        raise ValueError(f"seq_len={seq_len} must be at least 1")
    if vocab_size < special + 2:
        raise ValueError(f"vocab_size={vocab_size} must be at least {special + 2}")


def _recall_vocab(vocab_size: int, noise_vocab_size: int) -> tuple[int, int]:
    """(keys, values) of a recall vocabulary: the non-noise ids split in half."""
    if noise_vocab_size < 0:
        raise ValueError(f"noise_vocab_size={noise_vocab_size} must not be negative")
    usable = vocab_size - noise_vocab_size
    if usable < 2:
        raise ValueError(f"vocab_size={vocab_size} leaves {usable} ids for keys and values "
                         f"after {noise_vocab_size} noise ids; at least 2 are needed")
    return usable // 2, usable - usable // 2


def _shifted(tokens: np.ndarray, scored: np.ndarray) -> Batch:
    """Next-token form of a sequence of seq_len + 1 tokens: inputs are all but the last,
    the target at i is token i + 1 where that token is scored."""
    inputs = tokens[:, :-1]
    targets = np.where(scored[:, 1:], tokens[:, 1:], IGNORE)
    return torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.int64)), torch.from_numpy(targets.astype(np.int64))
