"""The documentation stays true: generated reference current, README short, examples runnable by users.

Regenerate ``docs/configuration.md`` after changing a setting with:

    python -c "from rag.core.config import config_reference_markdown as m; print(m(), end='')" > docs/configuration.md
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.core.config import ENV_NOT_SETTINGS, SECTIONS, config_reference_markdown

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
REGENERATE = ("python -c \"from rag.core.config import config_reference_markdown as m; print(m(), end='')\" "
              "> docs/configuration.md")
MAX_README_LINES = 250
SHARED = "../shared"


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def test_configuration_reference_is_generated_from_the_settings_model() -> None:
    current = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert current == config_reference_markdown(), f"docs/configuration.md is stale; regenerate it with: {REGENERATE}"


def test_configuration_reference_has_every_setting() -> None:
    text = config_reference_markdown()
    for section, model in SECTIONS.items():
        assert f"## [{section}]" in text
        for key in model.model_fields:
            assert f"| `{key}` |" in text, f"[{section}] {key} missing from the reference"


def test_readme_reads_in_five_minutes() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < MAX_README_LINES, (
        f"README.md has {len(lines)} lines; keep it under {MAX_README_LINES} and move details to docs/")


def test_readme_keeps_the_test_command() -> None:
    assert "make test" in README.read_text(encoding="utf-8")


def test_readme_points_at_no_maintainer_paths() -> None:
    assert SHARED not in README.read_text(encoding="utf-8"), (
        "README.md mentions ../shared, which users do not have; use a placeholder such as ~/data/scifact")


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_examples_point_at_no_maintainer_paths(page: Path) -> None:
    """Commands in docs use placeholders (``$DATA``, ``~/data``); prose may name the maintainers' layout."""
    text = page.read_text(encoding="utf-8")
    for block in _fenced_blocks(text):
        assert SHARED not in block, f"{_rel(page)}: an example uses {SHARED}; use $DATA or ~/data instead"
    outside = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    for paragraph in re.split(r"\n\s*\n", outside):
        if SHARED in paragraph:
            assert "maintainers" in paragraph, (
                f"{_rel(page)}: {SHARED} outside an example must be labelled as the maintainers' data layout:\n"
                f"{paragraph}")


def test_cli_sources_point_at_no_maintainer_paths() -> None:
    """`rag ... --help` examples and the shipped model card live in the package; none may use a path
    users do not have."""
    shipped = [p for p in (REPO / "rag").rglob("*") if p.suffix in (".py", ".md", ".json")]
    offenders = [f"{_rel(p)}:{n}" for p in sorted(shipped)
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if SHARED in line]
    assert not offenders, f"{SHARED} in the rag package: {offenders}"


def test_cli_help_texts_point_at_no_maintainer_paths() -> None:
    import click
    from click.testing import CliRunner

    from rag.cli.main import main

    def walk(cmd: click.Command, path: list[str]) -> list[list[str]]:
        found = [path]
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                found += walk(sub, path + [name])
        return found

    runner = CliRunner()
    paths = walk(main, [])
    assert len(paths) > 10
    for path in paths:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert SHARED not in result.output, f"rag {' '.join(path)} --help mentions {SHARED}"


_GAP = r"(?:[ \t]+|[ \t]*\n[ \t]*)"  # a space, or a line break inside a paragraph
_SETTING = re.compile(r"\[([a-z][a-z0-9_]*)\]" + _GAP + r"`?([a-z][a-z0-9_]*)")
_ENV = re.compile(r"\bRAG_([A-Z][A-Z0-9_]*)\b")
# variables that are not settings (RAG_HOME, RAG_RETRIEVERS...), the misspelt example of docs/reliability.md,
# and the variables *_env settings name (holding keys)
_NOT_SETTINGS = {v.removeprefix("RAG_") for v in ENV_NOT_SETTINGS} | {"NOSUCH_KEY"} | {
    str(field.default).removeprefix("RAG_") for model in SECTIONS.values()
    for key, field in model.model_fields.items() if key.endswith("_env") and str(field.default).startswith("RAG_")}


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_settings_named_in_docs_exist(page: Path) -> None:
    """Every ``[section] key`` and ``RAG_SECTION_KEY`` the docs mention is a real setting."""
    text = page.read_text(encoding="utf-8")
    for backticked in re.findall(r"`(\[[a-z0-9_]+\]" + _GAP + r"[a-z0-9_]+)", text):
        section = backticked[1:backticked.index("]")]
        assert section in SECTIONS, f"{_rel(page)}: unknown section in `{backticked}`"
    for section, key in _SETTING.findall(text):
        if section in SECTIONS:
            assert key in SECTIONS[section].model_fields, f"{_rel(page)}: [{section}] {key} is not a setting"
    for name in _ENV.findall(text):
        if name in _NOT_SETTINGS or name.endswith("_"):
            continue
        rest = name.lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            pytest.fail(f"{_rel(page)}: RAG_{name} names no settings section")
        key = rest[len(section) + 1:]
        assert key in SECTIONS[section].model_fields, f"{_rel(page)}: RAG_{name} is not a setting"


def test_readme_names_the_important_settings() -> None:
    """The README's settings table lists real keys (the test above) and at least these."""
    text = README.read_text(encoding="utf-8")
    for needed in ("[llm] base_url", "[embedding] model", "[chunking] chunk_size", "[rerank] model",
                   "[answer] verify", "[store] backend"):
        assert f"`{needed}`" in text


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    outside = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return {_slug(h) for h in re.findall(r"^#+\s+(.*)$", outside, flags=re.M)}


@pytest.mark.parametrize("page", [*PAGES, REPO / "benchmarks" / "results" / "README.md"], ids=_rel)
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        assert dest.exists(), f"{_rel(page)}: link to {target} points at nothing"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{_rel(page)}: no heading for #{anchor} in {_rel(dest)}"


def test_docs_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"
