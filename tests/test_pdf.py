"""PDF text: PDFium first, pypdf for what PDFium cannot read, and the reasons a PDF is reported (ingest/load_pdf.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.load import load_document
from ingest.load_pdf import (
    NO_TEXT_REASON,
    PASSWORD_REASON,
    Extraction,
    choose_pages,
    pdfium_pages,
    pypdf_pages,
)
from ingest.pipeline import Ingestor
from rag.core.errors import LoadError
from rag.core.home import collection_paths
from rag.core.store import open_store
from tests.pdf_limits import LIMITS, PAGE_TEXTS, TABLE_ROWS, long_array, table

FIXTURES = Path(__file__).parent / "fixtures" / "docs"


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_a_pdf_over_a_pypdf_limit_is_read_with_its_pages(tmp_path: Path, limit: str) -> None:
    path = tmp_path / f"{limit}.pdf"
    path.write_bytes(LIMITS[limit]())
    doc = load_document(path, path.name)
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.text[:doc.pages[1].start].strip() == PAGE_TEXTS[0]
    assert doc.text[doc.pages[1].start:] == PAGE_TEXTS[1]


def test_the_array_fixture_really_crosses_pypdfs_limit() -> None:
    data = long_array()
    alone = pypdf_pages(data)
    assert alone.failure == "limit" and "array element count" in alone.detail
    assert pdfium_pages(data).pages == list(PAGE_TEXTS)


def test_an_over_limit_pdf_is_ingested_not_reported_broken(settings, rag_home, embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "filings"
    folder.mkdir()
    (folder / "2023 Q1 MSFT.pdf").write_bytes(long_array())
    (folder / "locked.pdf").write_bytes((FIXTURES / "pdf_password.pdf").read_bytes())
    report = Ingestor(settings, rag_home, "default", embedder=embedder).run([folder])
    assert [(Path(f.path).name, f.reason) for f in report.files_failed] == [("locked.pdf", PASSWORD_REASON)]
    store = open_store(settings.store, collection_paths(rag_home, "default").root, "default")
    try:
        pages = {p["page"]: p["text"] for _, p in store.scroll() if p["source"].endswith("MSFT.pdf")}
    finally:
        store.close()
    assert pages == {1: PAGE_TEXTS[0], 2: PAGE_TEXTS[1]}


def test_password_fixture_keeps_its_reason() -> None:
    with pytest.raises(LoadError) as info:
        load_document(FIXTURES / "pdf_password.pdf", "pdf_password.pdf")
    assert str(info.value) == PASSWORD_REASON


def test_table_rows_come_out_one_row_a_line(tmp_path: Path) -> None:
    path = tmp_path / "table.pdf"
    path.write_bytes(table())
    lines = load_document(path, path.name).text.splitlines()
    assert lines == [" ".join(row) for row in TABLE_ROWS]


# --- choosing between the two extractors ----------------------------------------------------

def _never() -> Extraction:
    raise AssertionError("the second extractor must not run when the first read every page")


def test_the_first_extractor_alone_when_it_reads_every_page() -> None:
    assert choose_pages(Extraction("PDFium", pages=["one", "two"]), _never) == (["one", "two"], [])


def test_a_file_the_first_cannot_open_is_read_by_the_second() -> None:
    pages, warnings = choose_pages(Extraction("PDFium", failure="damage", detail="Data format error"),
                                   lambda: Extraction("pypdf", pages=["one"]))
    assert pages == ["one"]
    assert warnings == ["PDFium could not read the file (Data format error); text from pypdf"]


def test_a_page_the_first_fails_on_comes_from_the_second() -> None:
    first = Extraction("PDFium", pages=["one", None], page_problems=["page 2: PDFium failed (x)"])
    pages, warnings = choose_pages(first, lambda: Extraction("pypdf", pages=["uno", "two"]))
    assert pages == ["one", "two"]
    assert warnings == ["page 2: PDFium failed (x)", "page 2: text from pypdf"]


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (Extraction("PDFium", failure="password"), Extraction("pypdf", pages=["x"]), PASSWORD_REASON),
        (Extraction("PDFium", failure="damage", detail="Data format error"),
         Extraction("pypdf", failure="limit", detail="Reached maximum array element count."),
         "broken PDF: Data format error (pypdf stopped at a safety limit: Reached maximum array element count.)"),
        (Extraction("PDFium", failure="damage", detail="Data format error"),
         Extraction("pypdf", failure="damage", detail="EOF marker not found"), "broken PDF: Data format error"),
        (Extraction("PDFium", failure="damage", detail="Data format error"),
         Extraction("pypdf", failure="password"), PASSWORD_REASON),
        (Extraction("PDFium", pages=["", ""]), Extraction("pypdf", pages=["", ""]), NO_TEXT_REASON),
        (Extraction("PDFium", pages=[None], page_problems=["page 1: PDFium failed (x)"]),
         Extraction("pypdf", pages=[None], page_problems=["page 1: pypdf failed (y)"]),
         "broken PDF: page 1: PDFium failed (x)"),
    ],
)
def test_the_reason_says_what_happened(first: Extraction, second: Extraction, reason: str) -> None:
    with pytest.raises(LoadError) as info:
        choose_pages(first, lambda: second)
    assert str(info.value) == reason
