"""Rewriting follow-up questions into standalone queries."""

from __future__ import annotations

from rag.query.rewrite import rewrite_followup, rewrite_messages


def test_first_question_is_searched_as_it_is() -> None:
    assert rewrite_followup([], "How often should succulents be watered?", llm=None) == (  # type: ignore[arg-type]
        "How often should succulents be watered?")


def test_rewrite_reads_the_latest_turns() -> None:
    history = [(f"question {i}", f"answer {i}") for i in range(6)]
    user = rewrite_messages(history, "  and its colour? ")[1]["content"]
    assert "question 1" not in user and "User: question 2\nAssistant: answer 2" in user
    assert user.endswith("Last question: and its colour?\n\nStandalone query:")


def test_follow_up_is_rewritten_by_the_llm(tiny_llm) -> None:  # type: ignore[no-untyped-def]
    history = [("What is an aloe vera?", "A succulent plant [1].")]
    query = rewrite_followup(history, "How often should it be watered?", tiny_llm)
    assert query.strip() and "\n" not in query and not query.startswith('"')
