"""Regenerate samples/docs/team-handbook.docx (a fictional handbook written for the demo).

Run from the repository root: ``python samples/make_sample_docx.py``.
"""

from __future__ import annotations

from pathlib import Path

import docx

OUTPUT = Path(__file__).parent / "docs" / "team-handbook.docx"

EXPENSE_LIMITS = [
    ("Expense", "Limit", "Receipt needed"),
    ("Train or bus ticket", "actual cost", "yes"),
    ("Hotel, per night", "150 EUR", "yes"),
    ("Meals, per day", "45 EUR", "over 10 EUR"),
    ("Home-office equipment, per year", "400 EUR", "yes"),
]


def build() -> docx.document.Document:
    """The handbook as a python-docx Document."""
    document = docx.Document()
    document.add_heading("Larkspur Tea Company: Team Handbook", level=0)
    document.add_paragraph(
        "Welcome to Larkspur Tea! This handbook explains how we work. "
        "Larkspur Tea is a fictional company invented for this demo."
    )

    document.add_heading("Working hours", level=1)
    document.add_paragraph(
        "Our core hours are 10:00 to 15:00, Monday to Thursday. Outside core hours "
        "you may plan your own time, as long as you work 38 hours per week on average."
    )
    document.add_heading("Remote work", level=2)
    document.add_paragraph(
        "Everyone may work from home up to three days a week. The whole team meets "
        "in the Leeds office every Tuesday."
    )

    document.add_heading("Holidays and leave", level=1)
    document.add_paragraph(
        "Full-time staff get 27 days of paid holiday per year plus public holidays. "
        "Up to five unused days can be carried over to the next year, but they must "
        "be taken before the end of March."
    )
    document.add_paragraph(
        "Request holidays at least two weeks in advance in the HR portal. "
        "Sick leave must be reported to your team lead before 9:30 on the first day."
    )

    document.add_heading("Expenses", level=1)
    document.add_paragraph("Submit expense claims within 30 days. The limits are:")
    table = document.add_table(rows=len(EXPENSE_LIMITS), cols=3)
    for r, row in enumerate(EXPENSE_LIMITS):
        for c, value in enumerate(row):
            table.cell(r, c).text = value

    document.add_heading("Equipment", level=1)
    document.add_paragraph(
        "New team members receive a laptop on their first day. Laptops are replaced "
        "every four years. Report a lost or stolen laptop to it-help@larkspur.example "
        "within 24 hours."
    )
    return document


def main() -> None:
    """Write the handbook next to the other sample documents."""
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    build().save(str(OUTPUT))


if __name__ == "__main__":
    main()
