"""The `custom_dataset` of the local task YAMLs: a task's JSONL file as a test split.

lm-eval imports this file by path (`!function loader.load` beside the YAML), so it
imports nothing from genesys-dsl. The data are parsed as JSON and checked, never
executed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def read_items(path: Path) -> list[dict[str, Any]]:
    """The items of one JSONL file, each checked to be a well-formed choice item: a
    string "context" or "continuation" (the choices continue the context, or precede
    the continuation), two or more non-empty string "choices", an integer "label"."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        item = json.loads(line)
        choices, label = item.get("choices"), item.get("label")
        shared = [key for key in ("context", "continuation") if isinstance(item.get(key), str)]
        if (len(shared) != 1 or not isinstance(choices, list) or len(choices) < 2
                or not all(isinstance(c, str) and c for c in choices)
                or isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices)):
            raise ValueError(f"{path}:{number}: an item needs a string 'context' or 'continuation', a list of "
                             f"two or more non-empty string 'choices' and an integer 'label' indexing them")
        items.append(item)
    return items


def load(data_file: str, **_metadata: Any):
    """A DatasetDict with one split, "test", from `data_file` beside this module.
    lm-eval also passes the task's metadata as keywords; they are not needed here."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(read_items(HERE / data_file))})
