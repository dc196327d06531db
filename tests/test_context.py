"""Contextual chunks ([chunking] context): headers built right, display text untouched, switching re-embeds.

Real components throughout: the loaders on real files, the embedded Qdrant engine on a temp dir
and the packaged MiniLM model.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import ValidationError

from evals.beir_run import beir_settings
from ingest.chunk import ChunkSettings, chunk_document
from ingest.context import add_context, chunk_header, clean_title, document_title, readable_name
from ingest.load import load_document
from ingest.pipeline import Ingestor
from rag.core.bm25 import Bm25Index, fingerprint
from rag.core.config import Settings
from rag.core.home import collection_paths
from rag.core.lexical import Analyzer
from rag.core.records import Chunk, LoadedDocument
from rag.query.search import Searcher
from rag.core.entities import ENTITIES, entity_keys
from tests.conftest import write
from tests.test_pipeline import store_state
from tests.pdf_limits import _document, text_ops

PARTS = ["title", "headings", "page"]


def _settings(context: list[str], size: int = 300) -> Settings:
    return Settings.model_validate({"chunking": {"chunk_size": size, "chunk_overlap": 50, "context": context}})


def _chunk(text: str, **kw) -> Chunk:  # type: ignore[no-untyped-def]
    return Chunk(id="x", source="/d/a.txt", text=text, start=0, end=len(text), chunk_index=0, file_type="txt", **kw)


# -- titles -------------------------------------------------------------------------------------

def test_readable_file_name() -> None:
    assert readable_name("/r/2023 Q1 AMZN.pdf") == "2023 Q1 AMZN"
    assert readable_name("/r/2023_Q1-AMZN.final.txt") == "2023 Q1 AMZN final"
    assert readable_name("C:\\r\\annual_report.docx") == "annual report"


def test_placeholder_metadata_titles_are_ignored() -> None:
    assert clean_title("  Annual   Report ") == "Annual Report"
    assert clean_title("Microsoft Word - Budget 2024") == "Budget 2024"
    for junk in ("", "Untitled", "Microsoft Word - draft3.docx", "glxz-10k_20211231.htm", None):
        assert clean_title(junk) == ""


def test_title_from_html_metadata_then_first_heading_then_file_name(tmp_path: Path) -> None:
    page = write(tmp_path / "p.html", "<html><head><title>Pest &amp; Disease Guide</title></head>"
                 "<body><h1>Spider mites</h1><p>Wash the plant.</p></body></html>")
    assert document_title(load_document(page, str(page))) == "Pest & Disease Guide"
    md = write(tmp_path / "notes_v2.md", "# Watering plan\n\nWater every two weeks.\n")
    assert document_title(load_document(md, str(md))) == "Watering plan"
    txt = write(tmp_path / "2023_Q1-AMZN.txt", "Net revenue rose.\n")
    assert document_title(load_document(txt, str(txt))) == "2023 Q1 AMZN"
    # an in-memory document (a BEIR id as its source) gets no title from its source
    doc = LoadedDocument(path="beir:scifact/4983", file_type="txt", text="Some abstract.")
    assert document_title(doc, name_fallback=False) == ""


def test_title_from_docx_and_pdf_metadata(tmp_path: Path) -> None:
    import docx
    from pypdf import PdfReader, PdfWriter

    document = docx.Document()
    document.core_properties.title = "Handbook for Trustees"
    document.add_paragraph("Trustees verify that plans are filed on time.")
    path = tmp_path / "h.docx"
    document.save(str(path))
    assert document_title(load_document(path, str(path))) == "Handbook for Trustees"

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_document([text_ops("Revenue grew in the quarter.")]))))
    writer.add_metadata({"/Title": "Quarterly Report ACME"})
    out = io.BytesIO()
    writer.write(out)
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(out.getvalue())
    loaded = load_document(pdf, str(pdf))
    assert loaded.title == "Quarterly Report ACME" and document_title(loaded) == "Quarterly Report ACME"
    chunks = add_context(loaded, chunk_document(loaded, ChunkSettings()), PARTS)
    assert chunks[0].context == "Quarterly Report ACME | page 1"


# -- headers -------------------------------------------------------------------------------------

def test_header_has_title_heading_path_and_page() -> None:
    chunk = _chunk("The table below lists the figures.", headings=("Results", "Revenue"), page=3, page_end=3)
    assert chunk_header(chunk, "2023 Q1 AMZN", PARTS) == "2023 Q1 AMZN > Results > Revenue | page 3"
    assert chunk_header(chunk, "2023 Q1 AMZN", ["title"]) == "2023 Q1 AMZN"
    assert chunk_header(chunk, "2023 Q1 AMZN", ["page"]) == "page 3"
    assert chunk_header(chunk, "2023 Q1 AMZN", []) == ""
    spread = _chunk("text", page=3, page_end=4)
    assert chunk_header(spread, "T", PARTS) == "T | pages 3-4"


def test_header_leaves_out_what_the_chunk_already_opens_with() -> None:
    # a document that starts with its title, a section chunk that starts with its heading
    chunk = _chunk("## Revenue\n\nNet revenue rose 4%.", headings=("Results", "Revenue"))
    assert chunk_header(chunk, "Results", PARTS) == "Results"  # title == first heading: said once
    beir = _chunk("Vitamin D and bone density\n\nWe studied 300 adults.")
    assert chunk_header(beir, "Vitamin D and bone density", PARTS) == ""
    # a word of the title inside the text is not the title
    assert chunk_header(_chunk("Revenue rose."), "Revenue report", PARTS) == "Revenue report"


def test_ids_change_only_where_a_header_is_added(tmp_path: Path) -> None:
    path = write(tmp_path / "Q1 report.txt", "Q1 report\n\n" + "Revenue rose in every region. " * 30)
    doc = load_document(path, str(path))
    plain = chunk_document(doc, ChunkSettings(300, 50))
    with_context = add_context(doc, plain, PARTS)
    assert add_context(doc, plain, []) == plain
    assert with_context[0].context == ""  # the first chunk opens with the title
    assert all(c.context == "Q1 report" for c in with_context[1:])
    assert with_context[0].id == plain[0].id
    assert all(a.id != b.id for a, b in zip(with_context[1:], plain[1:]))
    assert len({c.id for c in with_context}) == len(with_context)
    for a, b in zip(with_context, plain):  # display text and offsets stay the chunk's own
        assert (a.text, a.start, a.end, a.page, a.headings) == (b.text, b.start, b.end, b.page, b.headings)
        assert doc.text[a.start:a.end] == a.text
        assert a.indexed_text == (f"{a.context}\n\n{a.text}" if a.context else a.text)


def test_settings_validate_context_and_beir_keeps_it() -> None:
    with pytest.raises(ValidationError):
        _settings(["title", "title"])
    with pytest.raises(ValidationError):
        _settings(["author"])
    assert beir_settings(_settings(PARTS)).chunking.context == PARTS


# -- ingest and search -----------------------------------------------------------------------------

def test_switching_context_reembeds_without_duplicates(rag_home, embedder, docs) -> None:  # type: ignore[no-untyped-def]
    off, on = _settings([]), _settings(PARTS)
    first = Ingestor(off, rag_home, embedder=embedder).run([docs])
    before = store_state(off, rag_home)
    assert not any("context" in p for p in before.values())

    switched = Ingestor(on, rag_home, embedder=embedder).run([docs])
    after = store_state(on, rag_home)
    assert switched.files_updated == 3 and switched.chunks_total == first.chunks_total == len(after)
    with_header = [p for p in after.values() if p.get("context")]
    assert with_header and switched.chunks_embedded == len(with_header)
    # same chunks, same display text and offsets; only the header (and the ids of headed chunks, and the
    # names read from header and text for the entity graph) differ
    def own(state: dict[str, dict]) -> list[dict]:
        rows = [{k: v for k, v in p.items() if k not in ("context", "version", ENTITIES)} for p in state.values()]
        return sorted(rows, key=lambda p: (p["source"], p["chunk_index"]))

    assert own(before) == own(after)
    headed = next(p for p in after.values() if p.get("context") and p["chunk_index"] == 1)
    assert set(entity_keys(headed["text"])) <= set(headed[ENTITIES])  # the header's names are added, none lost
    notes = [p for p in after.values() if p["source"].endswith("notes.txt")]
    assert {p["context"] for p in notes} == {"notes"}
    index = Bm25Index.load(collection_paths(rag_home, "default").bm25, Analyzer())
    assert index.info.fingerprint == fingerprint(after)

    again = Ingestor(on, rag_home, embedder=embedder).run([docs])
    assert again.files_unchanged == 3 and again.chunks_embedded == 0

    back = Ingestor(off, rag_home, embedder=embedder).run([docs])
    assert back.files_updated == 3 and back.chunks_embedded == len(with_header)
    assert store_state(off, rag_home) == before


def test_a_query_naming_the_file_finds_its_chunks(rag_home, embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "reports"
    body = ("Net revenue for the quarter was {rev} million. Gross margin was {gm} percent. "
            "Operating expenses rose with research and development.\n")
    for i, name in enumerate(("2023 Q1 ACME", "2023 Q2 ACME", "2023 Q1 GLOBEX", "2023 Q2 GLOBEX")):
        write(folder / f"{name}.txt", "QUARTERLY REPORT\n\n" + body.format(rev=900 + i * 37, gm=40 + i))
    settings = _settings(PARTS)
    Ingestor(settings, rag_home, embedder=embedder).run([folder])
    searcher = Searcher(settings, rag_home, "default", "hybrid", rerank=False)
    try:
        for name in ("2023 Q2 GLOBEX", "2023 Q1 ACME"):
            top = searcher.search(f"{name} net revenue", 1).results[0]
            assert Path(top.source).stem == name
            # what search shows is the chunk's own text, at its own offsets, without the header
            text = (folder / f"{name}.txt").read_text(encoding="utf-8")
            assert top.text == text[top.start:top.end] and not top.text.startswith(name)
    finally:
        searcher.close()


def test_in_memory_documents_take_their_given_title(rag_home, embedder) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(PARTS)
    docs = [("beir:t/1", "We studied 300 adults over two years.", "Vitamin D and bone density"),
            ("beir:t/2", "Untitled\n\nA trial of exercise.", ""),
            ("beir:t/3", "Sleep and memory\n\nStudents slept longer.", "Sleep and memory")]
    Ingestor(settings, rag_home, "mem", embedder=embedder).run_texts(docs, "beir:t")
    by_source = {p["source"]: p for p in store_state(settings, rag_home, "mem").values()}
    assert by_source["beir:t/1"]["context"] == "Vitamin D and bone density"
    assert "context" not in by_source["beir:t/2"] and "context" not in by_source["beir:t/3"]
    assert by_source["beir:t/1"]["text"] == "We studied 300 adults over two years."


def test_headings_reach_the_header_of_html_and_markdown_chunks(rag_home, embedder, docs) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(PARTS)
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    state = list(store_state(settings, rag_home).values())
    md = [p for p in state if p["source"].endswith("guide.md")]
    assert all(p["context"].startswith("Watering") for p in md if p["headings"][:1] == ["Watering"] and p.get("context"))
    html = [p for p in state if p["source"].endswith("pests.html")]
    assert html and all(p.get("context", "").startswith("Pests") for p in html)
