"""Corpora, their train/held-out split, LM batches, and the tokenizers."""

import json
import lzma
from importlib import resources

import pytest
import torch

from genesys_dsl.evaluate import DataConfig, EvaluationError
from genesys_dsl.evaluate.data import bundled_texts, lm_batches, load_corpus, split_documents
from genesys_dsl.evaluate.pretrain import check_vocabulary
from genesys_dsl.evaluate.tokenizers import VOCAB_PACKAGE, ByteTokenizer, get_tokenizer

SAMPLE = "The quick brown fox jumps over the lazy dog.\nIt's 3.14 o'clock — naïve café, 東京!\n"


# ------------------------------------------------------------------ the bundled corpus


def test_the_bundled_corpus_holds_out_whole_plays():
    train, heldout = bundled_texts()
    assert 4_000_000 < len(train) < 5_000_000 and 250_000 < len(heldout) < 350_000
    assert "HAMLET, PRINCE OF DENMARK" in heldout and "HAMLET, PRINCE OF DENMARK" not in train
    assert "Friends, Romans, countrymen" in heldout and "Friends, Romans, countrymen" not in train
    assert "A MIDSUMMER NIGHT'S DREAM" in train.upper()


def test_the_bundled_corpus_as_byte_tokens():
    corpus = load_corpus(DataConfig())
    assert corpus.name == "shakespeare" and corpus.tokenizer.name == "byte"
    assert corpus.train.dtype == torch.int32
    assert len(corpus.train) == corpus.train_bytes and len(corpus.heldout) == corpus.heldout_bytes
    assert corpus.heldout_bytes_per_token == 1.0
    assert corpus.tokenizer.decode(corpus.heldout[:9].tolist()) == "HAMLET, P"


# ------------------------------------------------------------------ user corpora


def test_user_files_and_folders_are_read_and_split_per_document(tmp_path):
    lines = [f"line {i} of the first document" for i in range(20)]
    (tmp_path / "one.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    folder = tmp_path / "more"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "two.md").write_text("alpha\nbeta\ngamma\ndelta\n", encoding="utf-8")
    (folder / "weights.bin").write_bytes(b"\xff\xfe not text")  # not a text suffix: skipped
    corpus = load_corpus(DataConfig(corpus=(str(tmp_path / "one.txt"), str(folder)), heldout_fraction=0.25))
    train = corpus.tokenizer.decode(corpus.train.tolist())
    heldout = corpus.tokenizer.decode(corpus.heldout.tolist())
    assert "line 0 of" in train and "line 19 of" in heldout and "line 19 of" not in train
    assert "alpha" in train and "delta" in heldout  # each document gives its own tail
    assert "not text" not in train + heldout
    assert corpus.train_bytes + corpus.heldout_bytes == len((train + heldout).encode())


def test_split_documents_cuts_at_a_line_boundary():
    train, heldout = split_documents(["aaaa\nbbbb\ncccc\ndddd\n"], heldout_fraction=0.3)
    assert (train, heldout) == ("aaaa\nbbbb\ncccc\n", "dddd\n")


@pytest.mark.parametrize("make, message", [
    (lambda p: [str(p / "absent.txt")], r"corpus path .*absent\.txt does not exist"),
    (lambda p: [str(p)], r"corpus folder .* has no text files \(looked for \*\.txt"),
    (lambda p: [str(_write(p / "blank.txt", "  \n\n"))], r"the corpus .*blank\.txt is empty"),
    (lambda p: [str(_write(p / "latin1.txt", b"caf\xe9"))], r"latin1\.txt is not UTF-8 text"),
])
def test_bad_corpora_are_named(tmp_path, make, message):
    with pytest.raises(EvaluationError, match=message):
        load_corpus(DataConfig(corpus=tuple(make(tmp_path))))


def _write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# ------------------------------------------------------------------ batches


def test_lm_batches_are_shifted_windows_fixed_by_seed_and_step():
    tokens = torch.arange(1000, dtype=torch.int32)
    batches = lm_batches(tokens, batch_size=4, context_length=8, seed=1)
    inputs, targets = batches(3)
    assert inputs.shape == targets.shape == (4, 8) and inputs.dtype == torch.int64
    assert torch.equal(targets[:, :-1], inputs[:, 1:]) and torch.equal(targets[:, -1], inputs[:, -1] + 1)
    assert torch.equal(batches(3)[0], lm_batches(tokens, 4, 8, seed=1)(3)[0])  # same (seed, step)
    assert not torch.equal(batches(3)[0], batches(4)[0])
    assert not torch.equal(batches(3)[0], lm_batches(tokens, 4, 8, seed=2)(3)[0])


def test_a_corpus_shorter_than_one_window_is_named():
    with pytest.raises(EvaluationError, match="5 training tokens, fewer than one window of 9"):
        lm_batches(torch.arange(5), batch_size=2, context_length=8, seed=0)


# ------------------------------------------------------------------ tokenizers


def test_byte_tokenizer_round_trips_utf8():
    tok = get_tokenizer("byte")
    ids = tok.encode(SAMPLE)
    assert tok.vocab_size == 256 and len(ids) == len(SAMPLE.encode("utf-8"))
    assert tok.decode(ids) == SAMPLE


def test_gpt2_encodes_to_gpt2s_known_ids():
    tok = get_tokenizer("gpt2")
    assert tok.vocab_size == 50257
    assert tok.encode("Hello world").tolist() == [15496, 995]
    assert tok.encode(" The cat sat on the mat.").tolist() == [383, 3797, 3332, 319, 262, 2603, 13]
    assert tok.decode(tok.encode(SAMPLE)) == SAMPLE
    assert int(tok.byte_lengths()[tok.encode(SAMPLE)].sum()) == len(SAMPLE.encode("utf-8"))


def test_gpt2_matches_transformers_on_corpus_text(tmp_path):
    """Our pieces-in-parallel encoding equals the reference GPT-2 tokenizer on real text."""
    transformers = pytest.importorskip("transformers")
    folder = resources.files(VOCAB_PACKAGE)
    (tmp_path / "vocab.json").write_bytes(lzma.decompress(folder.joinpath("gpt2.encoder.json.xz").read_bytes()))
    (tmp_path / "merges.txt").write_bytes(lzma.decompress(folder.joinpath("gpt2.vocab.bpe.xz").read_bytes()))
    reference = transformers.GPT2TokenizerFast(vocab=str(tmp_path / "vocab.json"),
                                               merges=str(tmp_path / "merges.txt"))
    text = bundled_texts()[1][:60_000]  # several pieces of the parallel encoder
    assert get_tokenizer("gpt2").encode(text).tolist() == reference(text)["input_ids"]


def test_a_tokenizer_json_file_can_be_used(tmp_path):
    path = tmp_path / "tokenizer.json"
    get_tokenizer("gpt2").tokenizer.save(str(path))
    tok = get_tokenizer(str(path))
    assert tok.vocab_size == 50257 and tok.encode("Hello world").tolist() == [15496, 995]


def test_unknown_tokenizers_list_the_known_ones():
    with pytest.raises(EvaluationError, match=r"unknown tokenizer 'gtp2'; known tokenizers: byte, gpt2"):
        get_tokenizer("gtp2")


def test_a_missing_tokenizer_file_is_named(tmp_path):
    with pytest.raises(EvaluationError, match=r"tokenizer file .*nope\.json does not exist.*byte, gpt2"):
        get_tokenizer(str(tmp_path / "nope.json"))
    bad = _write(tmp_path / "bad.json", json.dumps({"not": "a tokenizer"}))
    with pytest.raises(EvaluationError, match=r"bad\.json: not a Hugging Face tokenizer\.json"):
        get_tokenizer(str(bad))


def test_a_vocabulary_larger_than_the_scale_is_refused():
    check_vocabulary(ByteTokenizer(), 256, "cpu-xs")
    with pytest.raises(EvaluationError, match=r"'gpt2' has 50,257 tokens but scale 'cpu-xs' has a vocabulary "
                                              r"of 256.*'byte' tokenizer"):
        check_vocabulary(get_tokenizer("gpt2"), 256, "cpu-xs")
