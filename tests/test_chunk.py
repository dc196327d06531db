"""Chunking keeps exact offsets, pages, heading paths and stable ids."""

from __future__ import annotations

from ingest.chunk import ChunkSettings, chunk_document
from rag.core.records import LoadedDocument, PageSpan, Section

SETTINGS = ChunkSettings(chunk_size=120, chunk_overlap=20)


def _doc(text: str, **kw) -> LoadedDocument:  # type: ignore[no-untyped-def]
    return LoadedDocument(path="/d/a.txt", file_type=kw.pop("file_type", "txt"), text=text, **kw)


def test_offsets_are_exact_and_cover_the_text() -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(60))
    doc = _doc(text)
    chunks = chunk_document(doc, SETTINGS)
    assert len(chunks) > 5
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert len(c.text) <= SETTINGS.chunk_size
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))


def test_ids_are_stable_and_unique_for_repeated_text() -> None:
    text = "Same paragraph here.\n\n" * 30
    doc = _doc(text)
    first = chunk_document(doc, SETTINGS)
    again = chunk_document(doc, SETTINGS)
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    other = chunk_document(LoadedDocument(path="/d/b.txt", file_type="txt", text=text), SETTINGS)
    assert not {c.id for c in first} & {c.id for c in other}


def test_pages_are_hard_boundaries() -> None:
    page1 = "Alpha " * 30
    page2 = "Beta " * 30
    text = page1 + "\n\n" + page2
    doc = _doc(text, file_type="pdf", pages=(PageSpan(0, 1), PageSpan(len(page1) + 2, 2)))
    chunks = chunk_document(doc, SETTINGS)
    assert {c.page for c in chunks} == {1, 2}
    for c in chunks:
        assert c.page == c.page_end
        assert ("Beta" in c.text) == (c.page == 2)


def test_markdown_heading_paths() -> None:
    text = "# Install\n\nRun the installer.\n\n## Linux\n\nUse the package manager.\n\n# Usage\n\nCall it."
    sections = (
        Section(0, ("Install",)),
        Section(text.index("## Linux"), ("Install", "Linux")),
        Section(text.index("# Usage"), ("Usage",)),
    )
    doc = _doc(text, file_type="md", sections=sections)
    chunks = chunk_document(doc, SETTINGS)
    by_text = {c.text.split("\n")[0]: c.headings for c in chunks}
    assert by_text["## Linux"] == ("Install", "Linux")
    assert by_text["# Usage"] == ("Usage",)
    assert by_text["# Install"] == ("Install",)


def test_whitespace_only_document_gives_no_chunks() -> None:
    assert chunk_document(_doc("   \n\n  \t"), SETTINGS) == []


def test_a_title_line_joins_its_text_instead_of_becoming_a_chunk() -> None:
    body = " ".join(f"The necklace design number {i} was drawn in pencil." for i in range(6))  # ~300 chars
    doc = _doc(f"Heart of the Ocean\n\n{body}\n\nShort end.")
    settings = ChunkSettings(chunk_size=200, chunk_overlap=0)
    chunks = chunk_document(doc, settings)
    assert chunks[0].start == 0 and chunks[0].text.startswith("Heart of the Ocean\n\nThe necklace")
    assert chunks[-1].text.endswith("Short end.")
    assert all(len(c.text.strip()) >= settings.min_chars for c in chunks)
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    assert all(len(c.text) <= settings.chunk_size + settings.min_chars for c in chunks)
    # a document that is only a short line is still one chunk
    assert [c.text for c in chunk_document(_doc("Just a title"), settings)] == ["Just a title"]


def test_a_heading_only_section_joins_the_next_section() -> None:
    body = " ".join(f"Step {i}: run the installer with option {i}." for i in range(8))  # ~330 chars
    text = f"# Guide\n\n## Install\n\n{body}\n\n## See also\n"
    sections = (
        Section(0, ("Guide",)),
        Section(text.index("## Install"), ("Guide", "Install")),
        Section(text.index("## See also"), ("Guide", "See also")),
    )
    settings = ChunkSettings(chunk_size=200, chunk_overlap=0)
    chunks = chunk_document(_doc(text, file_type="md", sections=sections), settings)
    assert chunks[0].start == 0 and chunks[0].text.startswith("# Guide\n\n## Install\n\nStep 0")
    assert all(c.headings == ("Guide", "Install") for c in chunks)  # the bare headings took the text's path
    assert chunks[-1].text.rstrip().endswith("## See also")
    assert all(len(c.text.strip()) >= settings.min_chars for c in chunks)
    assert all(text[c.start:c.end] == c.text for c in chunks)


def test_a_short_page_stays_its_own_chunk() -> None:
    page2 = "Beta " * 40
    text = "Chapter 3\n\n" + page2
    doc = _doc(text, file_type="pdf", pages=(PageSpan(0, 1), PageSpan(len("Chapter 3\n\n"), 2)),
               sections=(Section(0, ("Chapter 3",)),))
    chunks = chunk_document(doc, ChunkSettings(chunk_size=200, chunk_overlap=0))
    assert chunks[0].text == "Chapter 3" and chunks[0].page == 1
    assert all(c.page == c.page_end == 2 for c in chunks[1:])
