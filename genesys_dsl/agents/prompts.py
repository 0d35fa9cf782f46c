"""Prompt templates: one versioned file per role in genesys_dsl/agents/templates/.

A template file starts with `version: N`, may have `#` comment lines, and holds
sections introduced by `=== name ===` (`system`, `user`, and follow-ups such as
`revise`, `retry`, `repair`). Sections are rendered with `string.Template`:
`$name` is filled in, `$$` is a literal dollar. `genesys prompts [ROLE]` prints them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template

from .backend import ROLES, AgentError

PACKAGE = "genesys_dsl.agents"
FOLDER = "templates"
_SECTION = re.compile(r"^=== ([a-z_]+) ===$", re.M)


@dataclass(frozen=True)
class PromptTemplate:
    role: str
    version: str
    text: str  # the whole file, as `genesys prompts` shows it
    sections: dict[str, str]

    @property
    def label(self) -> str:
        """`role/version`, recorded in every transcript."""
        return f"{self.role}/{self.version}"

    def render(self, section: str, **values: object) -> str:
        if section not in self.sections:
            raise AgentError(f"prompt template {self.role} has no section '{section}'; "
                             f"it has {', '.join(self.sections)}")
        try:
            return Template(self.sections[section]).substitute({k: str(v) for k, v in values.items()})
        except KeyError as err:
            raise AgentError(f"prompt template {self.role}, section {section}: no value for ${err.args[0]}") from None


def template_text(role: str) -> str:
    if role not in ROLES:
        raise AgentError(f"unknown role '{role}'; roles: {', '.join(ROLES)}")
    return resources.files(PACKAGE).joinpath(FOLDER, f"{role}.txt").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def template(role: str) -> PromptTemplate:
    return parse_template(role, template_text(role))


def parse_template(role: str, text: str) -> PromptTemplate:
    first = text.splitlines()[0] if text else ""
    match = re.fullmatch(r"version: *(\S+)", first.strip())
    if match is None:
        raise AgentError(f"prompt template {role}: the first line must be 'version: N', not {first!r}")
    parts = _SECTION.split(text)
    sections = {name: body.strip("\n") + "\n" for name, body in zip(parts[1::2], parts[2::2])}
    if not {"system", "user"} <= set(sections):
        raise AgentError(f"prompt template {role}: needs '=== system ===' and '=== user ===' sections")
    return PromptTemplate(role, match.group(1), text, sections)


def versions() -> dict[str, str]:
    """role -> role/version of every template."""
    return {role: template(role).label for role in ROLES}
