"""Write the local lm-evaluation-harness tasks' JSONL files, deterministically.

    python -m genesys_benchmarks.lm_eval_tasks.generate          # rewrite the .yaml and .jsonl files
    python -m genesys_benchmarks.lm_eval_tasks.generate --check  # exit 1 if they are stale

An item is {"context", "choices", "label"}: the model scores `context + choice` for each
choice and is right when the labelled one is the most likely; or, for tasks whose
choices are beginnings, {"choices", "continuation", "label"}: it scores the
continuation after each choice. The tasks are
written for tiny byte-level models trained on a few MB of English: each can be beaten
by knowing which letters, words and word orders are common, so a design that learns
more of English scores higher. The word lists and templates are the project's own
(same licence as genesys-dsl); nothing is copied from a dataset.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from typing import Callable

from . import LOCAL_TASKS, TASKS_DIR

SEED = 20250


def _item(context: str, right: str, wrong: list[str], rng: random.Random) -> dict:
    """One item with the right choice at a seeded position among the wrong ones."""
    choices = list(wrong)
    label = rng.randrange(len(choices) + 1)
    choices.insert(label, right)
    if len(set(choices)) != len(choices):
        raise ValueError(f"duplicate choices in {choices}")
    return {"context": context, "choices": choices, "label": label}


# ------------------------------------------------------------------ word order

NOUNS = ["man", "woman", "dog", "cat", "child", "horse", "bird", "king", "girl", "boy", "farmer", "doctor",
         "soldier", "teacher", "sailor", "captain", "mother", "father", "friend", "stranger"]
ADJECTIVES = ["old", "young", "tall", "little", "happy", "tired", "poor", "kind", "strange", "quiet"]
PLACES = ["house", "river", "garden", "church", "village", "forest", "station", "market", "door", "window",
          "road", "sea", "hill", "field", "town"]
THINGS = ["letter", "book", "box", "key", "coat", "bread", "money", "horse", "ship", "picture", "lamp", "chair"]
NAMES = ["John", "Mary", "Henry", "Alice", "Thomas", "Emma", "George", "Anne", "William", "Jane"]
MOTION = ["walked", "ran", "went", "came", "hurried", "turned"]
PREPS = ["to", "towards", "into", "from"]
TRANSITIVE = ["found", "saw", "took", "opened", "carried", "brought", "wanted", "lost"]
PRONOUNS = ["He", "She", "They", "We", "I"]
BASE_VERBS = ["see", "find", "take", "open", "want", "know", "like", "hear"]
TIMES = ["yesterday", "today", "again", "at once", "that night", "in the morning"]

WORD_ORDER_TEMPLATES: list[Callable[[random.Random], str]] = [
    lambda r: f"The {r.choice(ADJECTIVES)} {r.choice(NOUNS)} {r.choice(MOTION)} {r.choice(PREPS)} the "
              f"{r.choice(PLACES)}.",
    lambda r: f"{r.choice(NAMES)} {r.choice(TRANSITIVE)} the {r.choice(ADJECTIVES)} {r.choice(THINGS)} in the "
              f"{r.choice(PLACES)}.",
    lambda r: f"{r.choice(PRONOUNS)} did not {r.choice(BASE_VERBS)} the {r.choice(THINGS)} {r.choice(TIMES)}.",
    lambda r: f"There was a {r.choice(ADJECTIVES)} {r.choice(NOUNS)} near the {r.choice(PLACES)}.",
    lambda r: f"{r.choice(PRONOUNS)} {r.choice(TRANSITIVE)} that the {r.choice(NOUNS)} was very "
              f"{r.choice(ADJECTIVES)}.",
    lambda r: f"When the {r.choice(NOUNS)} {r.choice(MOTION)} home, it was {r.choice(['late', 'dark', 'cold'])}.",
]


def word_order(rng: random.Random, n: int = 120) -> list[dict]:
    """The sentence's first word is given; which continuation keeps English word order?
    Wrong choices are the same words shuffled, so every choice has the same bytes."""
    items, seen = [], set()
    while len(items) < n:
        sentence = rng.choice(WORD_ORDER_TEMPLATES)(rng)
        if sentence in seen:
            continue
        seen.add(sentence)
        first, *rest = sentence[:-1].split(" ")
        right = " " + " ".join(rest) + "."
        wrong: list[str] = []
        while len(wrong) < 3:
            words = rest[:]
            rng.shuffle(words)
            candidate = " " + " ".join(words) + "."
            if candidate != right and candidate not in wrong:
                wrong.append(candidate)
        items.append(_item(first, right, wrong, rng))
    return items


# ------------------------------------------------------------------ spelling

WORDS = """
garden letter mother father window people little before between through children water
money morning evening country friend hundred thousand nothing something another whether
always almost answer believe brother certain change church course daughter enough family
follow heard himself history husband important kitchen himself journey knowledge language
market matter minute moment mountain number office orange pocket police possible present
public question rather reason remember second several silver simple sister soldier
spirit spring station stood strange street strong summer table thought together toward
trouble village voice wonder world written yellow animal beautiful bottle breakfast bridge
captain castle chapter chicken circle company corner cousin danger dinner doctor dream
early earth engine farmer feather field flower forest forward garden gentle ground happen
health heavy island judge kingdom ladder laugh leather light little master meadow middle
mirror nature night ocean paper parent pencil picture plain pleasure power prince promise
quiet river school season shadow shoulder silence slowly smile speak stone story sudden
teacher thunder travel under upon weather winter woman wooden young""".split()


def _scrambles(word: str, rng: random.Random, k: int, real: set[str]) -> list[str]:
    """`k` different misspellings keeping the first letter: the rest shuffled."""
    out: list[str] = []
    for _ in range(1000):
        tail = list(word[1:])
        rng.shuffle(tail)
        candidate = word[0] + "".join(tail)
        if candidate != word and candidate not in real and candidate not in out:
            out.append(candidate)
            if len(out) == k:
                return out
    raise ValueError(f"cannot scramble '{word}' {k} ways")


def spelling(rng: random.Random) -> list[dict]:
    """Which is the English word: the word or three shuffles of its letters (first
    letter kept)? Every choice has the same letters and length."""
    words = list(dict.fromkeys(w for w in WORDS if len(w) >= 5))  # unique, in order
    real = set(words)
    return [_item("The word was", f" {w}.", [f" {s}." for s in _scrambles(w, rng, 3, real)], rng) for w in words]


# ------------------------------------------------------------------ phrases

PHRASE_TEXT = """
once upon a time | in the morning | late at night | the king and the queen | bread and butter
black and white | ladies and gentlemen | brothers and sisters | my lord and master | the sun and the moon
heaven and earth | life and death | flesh and blood | day and night | war and peace | salt and pepper
fire and water | the rich and the poor | young and old | more or less | sooner or later | here and there
now and then | up and down | over and over | far and wide | safe and sound | first and last
the end of the world | at the end of the day | by the light of the moon | the sound of the sea
with all my heart | as white as snow | as black as night | as cold as ice | as old as the hills
as good as gold | as quiet as a mouse | as busy as a bee | as free as a bird | a cup of tea
a glass of water | a piece of bread | a pair of shoes | a loaf of bread | a bottle of wine
the top of the hill | the bottom of the sea | the middle of the night | the door of the house
the light of day | the face of the earth | out of the question | on the other hand | in the first place
for the first time | from time to time | at the same time | by the way | all the way | on the way home
good morning | good night | thank you very much | how do you do | I do not know | I beg your pardon
what is your name | where are you going | the queen of England | the kings of France | the son of God
the word of God | the house of the Lord | the wind and the rain | the sword and the shield
the horse and the cart | the cat and the mouse | the bow and the arrow | the needle and the thread
knife and fork | cup and saucer | lock and key | pen and ink | hand in hand | face to face
side by side | one by one | step by step | little by little | day by day | year after year
"""
PHRASES = [p.strip() for p in re.split(r"[|\n]", PHRASE_TEXT) if p.strip()]


def phrases(rng: random.Random) -> list[dict]:
    """Complete a common phrase ("the king and the" -> " queen"); the wrong choices
    are last words of other phrases with the same number of letters."""
    split = [phrase.strip().rsplit(" ", 1) for phrase in PHRASES]
    by_length: dict[int, list[str]] = {}
    for _, last in split:
        by_length.setdefault(len(last), [])
        if last not in by_length[len(last)]:
            by_length[len(last)].append(last)
    items = []
    for context, last in split:
        others = [w for w in by_length[len(last)] if w != last]
        if len(others) >= 3:
            items.append(_item(context, f" {last}", [f" {w}" for w in rng.sample(others, 3)], rng))
    return items


# ------------------------------------------------------------------ agreement

SUBJECT_PAIRS = [("He", "They"), ("She", "We"), ("It", "They"), ("The man", "The men"), ("The woman", "The women"),
                 ("The dog", "The dogs"), ("The child", "The children"), ("The king", "The kings"),
                 ("My friend", "My friends")]
VERBS = [("is", "are"), ("was", "were"), ("has", "have"), ("does", "do"), ("goes", "go"), ("says", "say"),
         ("knows", "know"), ("lives", "live"), ("wants", "want"), ("comes", "come"), ("likes", "like"),
         ("sees", "see")]
COMPLEMENTS = {"is": ["very old", "here now", "in the garden", "ready"], "was": ["there before", "very quiet", "lost"],
               "has": ["gone away", "come back", "no money"], "does": ["not know", "not care", "well"],
               "goes": ["to church", "home early"], "says": ["nothing", "so"], "knows": ["the way", "it well"],
               "lives": ["in the town", "near the sea"], "wants": ["more bread", "to go home"],
               "comes": ["every day", "back soon"], "likes": ["the sea", "to walk"], "sees": ["the ship", "it all"]}


def agreement(rng: random.Random, n: int = 150) -> list[dict]:
    """Which subject agrees with the verb after it: "He" or "They" before " are here
    now."? Both subjects are scored by the likelihood of the same continuation, so how
    common a subject is on its own does not count."""
    cases = [(pair, verbs, rest) for pair in SUBJECT_PAIRS for verbs in VERBS for rest in COMPLEMENTS[verbs[0]]]
    items = []
    for (singular, plural), (sg_verb, pl_verb), rest in rng.sample(cases, n):
        verb, right, wrong = (sg_verb, singular, plural) if rng.random() < 0.5 else (pl_verb, plural, singular)
        item = _item("", right, [wrong], rng)
        items.append({"choices": item["choices"], "continuation": f" {verb} {rest}.", "label": item["label"]})
    return items


# ------------------------------------------------------------------ writing

GENERATORS: dict[str, Callable[[random.Random], list[dict]]] = {
    "word_order": word_order, "spelling": spelling, "agreement": agreement, "phrases": phrases}

YAML = """\
# {summary}
# Written by generate.py (genesys-dsl, same licence); edit the catalogue in __init__.py, not this file.
task: {name}
custom_dataset: !function loader.load
dataset_kwargs:
  data_file: {stem}.jsonl
output_type: multiple_choice
test_split: test
num_fewshot: 0
{fields}
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


FIELDS = {  # how lm-eval reads an item in each mode (see LocalTask.mode)
    "continuation": 'doc_to_text: "{{context}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: label',
    # an int from doc_to_text tells lm-eval the choices are contexts and which is right
    "context": 'doc_to_text: "{{label}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{continuation}}"',
}


def task_files() -> dict[str, str]:
    """File name -> text, for every task in the catalogue. Each task has its own
    seeded generator, so adding a task never changes another's items."""
    files = {}
    for offset, task in enumerate(LOCAL_TASKS, 1):
        items = GENERATORS[task.stem](random.Random(SEED + offset))
        wrong = [i for i, item in enumerate(items) if len(item["choices"]) != task.num_choices]
        if wrong:
            raise ValueError(f"{task.name}: items {wrong[:5]} do not have {task.num_choices} choices")
        files[f"{task.stem}.jsonl"] = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        files[f"{task.stem}.yaml"] = YAML.format(name=task.name, stem=task.stem, fields=FIELDS[task.mode],
                                                 summary=task.summary[0].upper() + task.summary[1:])
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in task_files().items():
        path = TASKS_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {name}")
    if stale:
        print(f"stale: {', '.join(stale)} (run python -m genesys_benchmarks.lm_eval_tasks.generate)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
