"""The project's own lm-evaluation-harness tasks: small multiple-choice tasks that run
offline. Each has a YAML config (lm-eval's task format) and a JSONL file of items,
both written by `generate.py` from the catalogue below; lm-eval reads the items
through `loader.load` (no Hugging Face download or cache).

The catalogue is plain Python so that listing the tasks needs neither lm-eval nor a
YAML parser (the benchmark plugin registers them at start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TASKS_DIR = Path(__file__).parent


@dataclass(frozen=True)
class LocalTask:
    name: str  # the lm-eval task name (prefixed so it never shadows one of lm-eval's)
    stem: str  # its files: <stem>.yaml and <stem>.jsonl
    metric: str  # what the genesys suite reports: "acc" (choices of equal length), else "acc_norm"
    num_choices: int  # in every item, so a uniform guess scores 1 / num_choices
    summary: str
    # "continuation": each choice continues the item's context ({"context", "choices", "label"});
    # "context": the choices are alternative beginnings, scored by how likely each makes the item's
    # shared "continuation" (lm-eval's partial scoring, as in winogrande), so no choice is favoured
    # for being common on its own
    mode: str = "continuation"


LOCAL_TASKS = (
    LocalTask("genesys_word_order", "word_order", "acc", 4,
              "the first word is given: pick the continuation in English word order (the others are its "
              "words shuffled)"),
    LocalTask("genesys_spelling", "spelling", "acc", 4,
              "pick the English word among shuffles of its letters (first letter kept)"),
    LocalTask("genesys_phrases", "phrases", "acc", 4,
              "complete a common phrase (the king and the ... queen); the other choices are last words of "
              "other phrases with as many letters"),
    LocalTask("genesys_agreement", "agreement", "acc", 2,
              "which subject agrees with the verb that follows (He / They + are here now.)", mode="context"),
)
