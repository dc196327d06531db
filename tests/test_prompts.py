"""Every prompt's wording lives in rag.core.prompts, and its digest changes with any of it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from evals import judge
from rag.core import prompts
from rag.core.records import ScoredChunk
from rag.query import expand, multihop, prompt, rewrite, route

REPO = Path(__file__).resolve().parents[1]
_LETTER = re.compile(r"[A-Za-z]")


def test_rewording_any_prompt_changes_the_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = prompts.prompt_texts()
    assert len(texts) > 30 and "ANSWER_SYSTEM" in texts and "CORRECTNESS_ROLE" in texts
    before = prompts.prompts_digest()
    assert prompts.prompts_digest() == before
    for name, text in texts.items():
        monkeypatch.setattr(prompts, name, text + " ")
        assert prompts.prompts_digest() != before, name
        monkeypatch.setattr(prompts, name, text)
    assert prompts.prompts_digest() == before


def _all_messages() -> list[list[dict[str, str]]]:
    """Every builder's messages for inputs without letters (so any letter comes from a prompt text)."""
    chunk = ScoredChunk(chunk_id="1", text="2", source="3", score=0.0)
    questions = [judge.entailment_question(["1"], "2"), judge.entailment_question(["1"], "2", "3"),
                 judge.relevance_question("1", "2"), judge.correctness_question("1", "2", "3")]
    return [
        prompt.answer_messages("1", [chunk]), prompt.join_messages("1", [chunk]),
        prompt.answerable_messages("1", [chunk]), prompt.verify_messages("1", "2", ["3"]),
        prompt.support_prompt("1", ["2"]), prompt.yes_no_messages("1", "2"),
        rewrite.rewrite_messages([("1", "2")], "3"), expand.multi_query_messages("1", 3), expand.hyde_messages("1"),
        route.route_messages("1", {"2": "3"}), multihop.next_query_messages("1", [chunk], ["2"]),
        judge.short_answer_messages("1", "2"),
        *([{"role": "system", "content": q.role}, {"role": "user", "content": q.body}] for q in questions),
        *(judge.LogprobJudge(None, "local").messages(q) for q in questions),  # type: ignore[arg-type]
        *(judge.JsonJudge(None, "local").messages(q) for q in questions),  # type: ignore[arg-type]
    ]


def test_builders_take_every_word_from_rag_core_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every text of rag.core.prompts blanked, no builder writes a word of its own."""
    assert all(_LETTER.search(m["content"]) for m in _all_messages()[0])  # the check can fail
    for name in prompts.prompt_texts():
        monkeypatch.setattr(prompts, name, "")
    worded = [m["content"] for messages in _all_messages() for m in messages if _LETTER.search(m["content"])]
    assert worded == []


def _literals(node: ast.AST) -> list[str]:
    """String constants under ``node``, except subscripts (``data["answer"]`` is a key, not wording)."""
    keys = {id(n.slice) for n in ast.walk(node) if isinstance(n, ast.Subscript)}
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in keys]


def test_no_prompt_wording_outside_rag_core_prompts() -> None:
    """Message contents and judge questions anywhere in the project are built from rag.core.prompts, not literals.

    Catches a new prompt written in place: a ``{"role": ..., "content": "..."}`` or a
    ``YesNoQuestion("...", ...)`` whose text has words.
    """
    found = []
    for root in ("rag", "ingest", "plugins", "evals"):
        for path in sorted((REPO / root).rglob("*.py")):
            if path == REPO / "rag" / "core" / "prompts.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                parts: list[ast.AST] = []
                if isinstance(node, ast.Dict):
                    keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
                    if "role" in keys and "content" in keys:
                        parts = [node.values[keys.index("content")]]
                elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "YesNoQuestion":
                    parts = [*node.args, *(k.value for k in node.keywords)]
                for part in parts:
                    found += [f"{path.relative_to(REPO)}:{node.lineno}: {text!r}"
                              for text in _literals(part) if _LETTER.search(text)]
    assert found == [], "prompt wording outside rag/core/prompts.py:\n" + "\n".join(found)


def test_prompts_module_imports_nothing_from_the_project() -> None:
    tree = ast.parse((REPO / "rag" / "core" / "prompts.py").read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] in ("rag", "ingest", "plugins", "evals")]
