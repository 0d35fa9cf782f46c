"""Python names for things in a design: classes, submodules, locals.

Names in a spec are already identifiers (the IR enforces it); here they are kept
readable and made safe: a name that is a Python keyword, a builtin the generated
code relies on, or a top-level name of the generated file gets a trailing `_`.
"""

from __future__ import annotations

import builtins
import keyword
import re

# Top-level names every generated file defines or imports.
FILE_NAMES = frozenset({"math", "torch", "nn", "F", "self", "build_model", "LanguageModel", "SIZE_FUNCTIONS"})


def snake(name: str) -> str:
    """CamelCase or mixedCase -> snake_case: GatedMLP -> gated_mlp, RMSNorm -> rms_norm."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def camel(name: str) -> str:
    """A class name for a unit: block -> Block; names already capitalised stay."""
    return name[:1].upper() + name[1:]


class Namespace:
    """Hands out unique, safe names within one scope (a class's attributes, a file)."""

    def __init__(self, taken: set[str] | frozenset[str] = frozenset()):
        self.taken = set(taken)

    def claim(self, wanted: str) -> str:
        name = safe(wanted)
        candidate, n = name, 2
        while candidate in self.taken:
            candidate = f"{name}_{n}"
            n += 1
        self.taken.add(candidate)
        return candidate


def safe(name: str, reserved: frozenset[str] | set[str] = FILE_NAMES) -> str:
    """`name`, or `name_` when Python would read it as something else."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in reserved or hasattr(builtins, name):
        return name + "_"
    return name
