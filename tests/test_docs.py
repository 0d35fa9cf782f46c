"""Docs that must not go stale: the primitives table, the reference, the README commands."""

import re

import genesys_dsl as g
from genesys_dsl.reference import SYNTAX, docs_with_table, reference_text
from paths import ROOT


def test_primitives_table_in_the_language_reference_is_current():
    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert doc == docs_with_table(doc), "run `make docs` to regenerate the primitives table"


def test_reference_example_is_a_valid_design():
    report = g.check(g.parse(SYNTAX, filename="reference"))
    assert report.ok, report.render()
    assert [d.code for d in report.diagnostics] == ["unused-unit"]  # Split only illustrates syntax


def test_reference_fits_in_a_prompt():
    text = reference_text()
    assert len(text) < 16_000  # about 4k tokens
    assert "causal_attention(q: seq[H, K]" in text


def test_every_diagnostic_code_is_documented():
    doc = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    sources = "".join(p.read_text() for p in (ROOT / "genesys_dsl").rglob("*.py"))
    emitted = set(re.findall(r'"([a-z]+(?:-[a-z]+)+)",\s*(?:f?")', sources))
    emitted |= set(re.findall(r'code="([a-z-]+)"', sources))
    undocumented = sorted(c for c in emitted if f"`{c}`" not in doc)
    assert not undocumented, f"document these codes in docs/ (language.md or verify.md): {undocumented}"


def test_readme_starts_with_the_two_setup_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.search(r"```\n(.*?)```", readme, re.S).group(1).splitlines()
    assert [c.split("#")[0].strip() for c in commands] == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: \$\(STAMP\)", makefile, re.M) and re.search(r"^test: \$\(STAMP\)", makefile, re.M)
