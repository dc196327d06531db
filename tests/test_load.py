"""Tests of the document loaders (ingest/encoding.py, ingest/load*.py)."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import pytest

from ingest.encoding import decode_bytes
from ingest.load import SUPPORTED_EXTENSIONS, load_document
from rag.core.errors import LoadError, UnsupportedFileError
from rag.core.records import LoadedDocument

FIXTURES = Path(__file__).parent / "fixtures" / "docs"
PASSWORD_REASON = "encrypted PDF: a password is required"
NO_TEXT_REASON = "no text layer (scanned or image-only PDF; OCR is not supported)"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _load(path: Path) -> LoadedDocument:
    return load_document(path, path.name)


def _section_at(doc: LoadedDocument, needle: str) -> tuple[str, ...]:
    """Heading path of the section that contains the first occurrence of ``needle``."""
    offset = doc.text.index(needle)
    headings: tuple[str, ...] = ()
    for section in doc.sections:
        if section.start <= offset:
            headings = section.headings
    return headings


def _pdf_bytes(pages: list[str]) -> bytes:
    """A minimal valid PDF with one Helvetica text line per input line, one page per item."""
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    kids = []
    for i, text in enumerate(pages):
        page_id, content_id = 4 + 2 * i, 5 + 2 * i
        kids.append(f"{page_id} 0 R")
        lines = " ".join(f"({line}) '" for line in text.split("\n") if line)
        stream = f"BT /F1 12 Tf 72 720 Td 14 TL {lines} ET".encode("latin-1")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
        ).encode()
        objects[content_id] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    objects[2] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in sorted(objects))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _encrypted_pdf(pages: list[str], user_password: str, algorithm: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf_bytes(pages))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- encodings

@pytest.mark.parametrize(
    ("data", "expected", "encoding"),
    [
        ("Grüße\r\naus Köln\rzwei".encode(), "Grüße\naus Köln\nzwei", "utf-8"),
        ("\ufeffHallo Köln".encode("utf-8"), "Hallo Köln", "utf-8-sig"),
        ("\ufeffHallo Köln\r\n".encode("utf-16-le"), "Hallo Köln\n", "utf-16-le"),
        ("\ufeffHallo Köln".encode("utf-16-be"), "Hallo Köln", "utf-16-be"),
        ("\ufeffHallo Köln".encode("utf-32-le"), "Hallo Köln", "utf-32-le"),
        ("\ufeffHallo Köln".encode("utf-32-be"), "Hallo Köln", "utf-32-be"),
        ("Test.\r\n\r\nDoylestown, PA".encode("utf-16-le"), "Test.\n\nDoylestown, PA", "utf-16-le"),
        ("This is a test. Größe".encode("utf-16-be"), "This is a test. Größe", "utf-16-be"),
        ("This is a test. Größe".encode("utf-32-le"), "This is a test. Größe", "utf-32-le"),
        ("café naïve – “quotes”".encode("cp1252"), "café naïve – “quotes”", "cp1252"),
        ("## können\n\nkönnen\n\näöüß\n".encode("iso-8859-1"), "## können\n\nkönnen\n\näöüß\n", "cp1252"),
        ("El niño comió. ¡Qué rico! ¿Dónde?".encode("cp1252"), "El niño comió. ¡Qué rico! ¿Dónde?", "cp1252"),
    ],
)
def test_decode_bytes(data: bytes, expected: str, encoding: str) -> None:
    assert decode_bytes(data) == (expected, encoding)


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("שלום עולם, זהו מסמך בדיקה בעברית. הטקסט הזה נכתב כדי לבדוק את זיהוי הקידוד.", "iso8859_8"),
        ("עדכון Tesla - נדרשת חתימה על הבקשה לרישום", "iso8859_8"),
        ("Привет мир, это тестовый документ на русском языке.", "cp1251"),
        ("Zażółć gęślą jaźń, pójdź w łódź. Wszystkie dzieci lubią się bawić na świeżym powietrzu.", "cp1250"),
        ("Καλημέρα κόσμε, αυτό είναι ένα δοκιμαστικό έγγραφο.", "iso8859_7"),
    ],
)
def test_decode_bytes_non_western_legacy(text: str, codec: str) -> None:
    assert decode_bytes(text.encode(codec))[0] == text


def test_decode_bytes_mostly_utf8_with_a_broken_byte() -> None:
    text, encoding = decode_bytes("Grüße aus Köln, schöne Äpfel und Übermut. ".encode() * 3 + b"\xff")
    assert encoding == "utf-8"
    assert text.startswith("Grüße aus Köln")


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01\x02\x03binary\x00\xff\xfe\x00", bytes(range(256)) * 4, b"PK\x03\x04\x14\x00\x00\x00\x08\x00"],
)
def test_decode_bytes_binary(data: bytes) -> None:
    with pytest.raises(LoadError, match=r"^binary file \(not text\)$"):
        decode_bytes(data)


# --------------------------------------------------------------------------- text files

@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("utf16-bom.txt", "\ufeffCafé crème\r\nzweite Zeile".encode("utf-16-le"), "Café crème\nzweite Zeile"),
        ("utf16-nobom.txt", "This is a test document.\n\nCafé".encode("utf-16-le"), "This is a test document.\n\nCafé"),
        ("utf32.txt", "\ufeffThis is a test document.".encode("utf-32-le"), "This is a test document."),
        ("cp1252.txt", "café naïve – “quotes”".encode("cp1252"), "café naïve – “quotes”"),
        ("data.csv", b"name,price\nSencha,4.50\n", "name,price\nSencha,4.50\n"),
        ("data.json", b'{"tea": "Sencha"}\n', '{"tea": "Sencha"}\n'),
        ("script.py", b"print('hi')\n", "print('hi')\n"),
        ("Makefile", b"all:\n\techo hi\n", "all:\n\techo hi\n"),
    ],
)
def test_text_files(tmp_path: Path, name: str, data: bytes, expected: str) -> None:
    doc = _load(_write(tmp_path, name, data))
    assert doc.text == expected
    assert doc.path == name
    assert doc.pages == ()


def test_file_types(tmp_path: Path) -> None:
    assert _load(_write(tmp_path, "README", b"hello")).file_type == "txt"
    assert _load(_write(tmp_path, "NOTES.TXT", b"hello")).file_type == "txt"
    assert _load(_write(tmp_path, "a.markdown", b"# hello")).file_type == "md"
    assert _load(_write(tmp_path, "a.htm", b"<p>hello</p>")).file_type == "html"
    assert _load(_write(tmp_path, "a.tsv", b"a\tb")).file_type == "tsv"
    assert {".pdf", ".docx", ".md", ".html", ".py", ".csv"} <= SUPPORTED_EXTENSIONS


def test_source_is_stored_as_path(tmp_path: Path) -> None:
    doc = load_document(_write(tmp_path, "a.txt", b"hello"), "docs/a.txt")
    assert doc.path == "docs/a.txt"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("empty.pdf", b"", "empty file"),
        ("blank.txt", b"\n\n\n", "no text (file holds only whitespace)"),
        ("blank.md", b"  \r\n\t\n", "no text (file holds only whitespace)"),
        ("blob.txt", b"\x00\x01\x02\x03\x89PNG\x00\x00", "binary file (not text)"),
        ("noext", b"\x7fELF\x02\x01\x01\x00\x00\x00\x00", "binary file (not text)"),
        ("nothing.html", b"<html><head><title>x</title></head><body><script>x()</script></body></html>",
         "no text (the page has no visible text)"),
    ],
)
def test_load_failures(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    with pytest.raises(LoadError) as info:
        _load(_write(tmp_path, name, data))
    assert str(info.value) == reason
    assert not isinstance(info.value, UnsupportedFileError)


@pytest.mark.parametrize("name", ["photo.jpg", "archive.ZIP", "old.doc"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsupportedFileError) as info:
        _load(_write(tmp_path, name, b"whatever"))
    assert str(info.value) == f"unsupported file type '{Path(name).suffix.lower()}'"


def test_missing_file_is_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="cannot read file"):
        _load(tmp_path / "missing.txt")


# --------------------------------------------------------------------------- markdown / rst

def test_markdown_sections_and_fences() -> None:
    doc = _load(FIXTURES / "guide.md")
    assert doc.file_type == "md"
    assert doc.text == (FIXTURES / "guide.md").read_text(encoding="utf-8")
    paths = [s.headings for s in doc.sections]
    assert paths == [
        ("Garden Guide",),
        ("Garden Guide", "Install"),
        ("Garden Guide", "Install", "On Linux"),
        ("Garden Guide", "Install", "On Windows"),
        ("Usage",),
        ("Usage", "Options"),
    ]
    for section in doc.sections:
        line = doc.text[section.start:].split("\n", 1)[0]
        assert section.headings[-1] in line
    assert _section_at(doc, "# not a heading") == ("Garden Guide", "Install", "On Linux")
    assert _section_at(doc, "## also not a heading") == ("Garden Guide", "Install", "On Linux")
    assert _section_at(doc, "Use `--help`") == ("Usage", "Options")


def test_markdown_front_matter_and_lists_are_not_headings(tmp_path: Path) -> None:
    text = "---\ntitle: x\n---\n\n# Real\n\n- item\n---\n\nPara\n"
    doc = _load(_write(tmp_path, "f.md", text.encode()))
    assert [s.headings for s in doc.sections] == [("Real",)]


def test_markdown_iso_8859_1_umlauts() -> None:
    doc = _load(FIXTURES / "latin1-umlauts.md")
    assert doc.text == "# Überschrift\n\nkönnen, müssen, Größe\n\näöüß ÄÖÜ\n"
    assert doc.sections[0].headings == ("Überschrift",)


def test_rst_sections() -> None:
    doc = _load(FIXTURES / "notes.rst")
    assert [s.headings for s in doc.sections] == [
        ("Project Notes",),
        ("Project Notes", "Setup"),
        ("Project Notes", "Setup", "Details"),
        ("Project Notes", "Usage"),
    ]
    assert doc.text[doc.sections[1].start:].startswith("Setup\n=====")


# --------------------------------------------------------------------------- HTML

def test_html_visible_text_tables_and_sections() -> None:
    doc = _load(FIXTURES / "page.html")
    text = doc.text
    for hidden in ("SCRIPT_SECRET", "SCRIPT_TWO", "body {", "NAV_LINK_TEXT", "SITE_BANNER_TEXT",
                   "FOOTER_TEXT", "HIDDEN_TEXT", "NOSCRIPT_TEXT", "base64", "iVBOR"):
        assert hidden not in text
    assert "We sell green tea and black tea." in text
    assert "Tea | Price\nSencha | 4.50\nAssam | 3.75" in text
    assert "Monday: 9-17\nTuesday: closed" in text
    assert "line one\n    indented line two" in text
    assert "\n\n\n" not in text
    assert "Data URI as text:  end." not in text and "end." in text
    assert [s.headings for s in doc.sections] == [
        ("Tea Shop",),
        ("Tea Shop", "Prices"),
        ("Tea Shop", "Prices", "Opening hours"),
        ("Tea Shop", "Recipe"),
    ]
    for section in doc.sections:
        assert text[section.start:].startswith(section.headings[-1])
    assert _section_at(doc, "Sencha") == ("Tea Shop", "Prices")


def test_html_utf16_with_wrong_meta_charset() -> None:
    doc = _load(FIXTURES / "utf16.html")
    assert doc.encoding == "utf-16-le"
    assert "Größe und Gewicht: 12 µm – 5 €" in doc.text
    assert "日本語のテキスト" in doc.text
    assert doc.sections[0].headings == ("Stahl Übersicht",)


def test_html_cp1252_without_declaration() -> None:
    doc = _load(FIXTURES / "cp1252.html")
    assert "café naïve – “quotes” 15,50 €" in doc.text
    assert "Die schöne Frau\nL'été était très chaud" in doc.text


def test_html_declared_latin1_is_read_as_cp1252() -> None:
    doc = _load(FIXTURES / "declared-latin1.html")
    assert "“Smart quotes” and the euro sign €" in doc.text


def test_html_fragment_and_layout_table(tmp_path: Path) -> None:
    html = (
        "<table><tr><td><table><tr><td>nav</td></tr></table></td>"
        "<td><font>First paragraph.<br><br>Second paragraph.</font></td></tr></table>"
    )
    doc = _load(_write(tmp_path, "layout.html", html.encode()))
    assert "First paragraph.\n\nSecond paragraph." in doc.text


# --------------------------------------------------------------------------- DOCX

def _make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Annual Report", level=0)
    document.add_heading("Sales", level=1)
    document.add_paragraph("Sales grew by 12 percent.")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([("Region", "Q1", "Q2"), ("North", "10", "12"), ("South", "", "")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    merged = table.cell(2, 1).merge(table.cell(2, 2))
    merged.text = "n/a"
    document.add_heading("Outlook", level=2)
    document.add_paragraph("We expect steady growth.")
    document.add_heading("Staff", level=1)
    document.add_paragraph("")
    document.add_paragraph("We hired five people.")
    document.save(str(path))
    return path


def test_docx_paragraphs_tables_and_headings(tmp_path: Path) -> None:
    doc = _load(_make_docx(tmp_path / "report.docx"))
    assert doc.file_type == "docx"
    assert doc.text == (
        "Annual Report\nSales\nSales grew by 12 percent.\n"
        "Region | Q1 | Q2\nNorth | 10 | 12\nSouth | n/a\n"
        "Outlook\nWe expect steady growth.\nStaff\nWe hired five people."
    )
    assert [s.headings for s in doc.sections] == [
        ("Annual Report",),
        ("Annual Report", "Sales"),
        ("Annual Report", "Sales", "Outlook"),
        ("Annual Report", "Staff"),
    ]
    for section in doc.sections:
        assert doc.text[section.start:].startswith(section.headings[-1])
    assert _section_at(doc, "North | 10") == ("Annual Report", "Sales")


@pytest.mark.parametrize(
    "data",
    [b"this is not a zip file at all", b"PK\x03\x04 truncated zip", b"%PDF-1.4 pretending"],
)
def test_docx_broken(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(LoadError, match=r"^broken DOCX: "):
        _load(_write(tmp_path, "bad.docx", data))


def test_docx_zip_without_document(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(LoadError, match=r"^broken DOCX: "):
        _load(_write(tmp_path, "zip.docx", buffer.getvalue()))


# --------------------------------------------------------------------------- PDF

def test_pdf_generated_pages(tmp_path: Path) -> None:
    doc = _load(_write(tmp_path, "three.pdf", _pdf_bytes(["Alpha page one", "", "Gamma page three\nsecond line"])))
    assert doc.file_type == "pdf"
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert doc.pages[0].start == 0
    assert doc.text[doc.pages[2].start:].startswith("Gamma page three")
    assert doc.text.index("Gamma") >= doc.pages[2].start
    assert "\r" not in doc.text and "\x00" not in doc.text


def test_pdf_real_multi_page_fixture() -> None:
    doc = _load(FIXTURES / "pdf_list-item-example.pdf")
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.text.startswith("Module")
    page2 = doc.pages[1].start
    assert doc.text.index("Intellectual") > page2
    assert doc.text.index("Budgeting") > page2
    assert doc.text.index("Introduction") < page2


def test_pdf_password_fixture() -> None:
    with pytest.raises(LoadError) as info:
        _load(FIXTURES / "pdf_password.pdf")
    assert str(info.value) == PASSWORD_REASON


def test_pdf_encrypted_with_user_password(tmp_path: Path) -> None:
    data = _encrypted_pdf(["Secret text"], user_password="hunter2", algorithm="AES-128")
    with pytest.raises(LoadError) as info:
        _load(_write(tmp_path, "locked.pdf", data))
    assert str(info.value) == PASSWORD_REASON


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128"])
def test_pdf_empty_user_password_opens(tmp_path: Path, algorithm: str) -> None:
    data = _encrypted_pdf(["Copy protected but readable", "Page two"], user_password="", algorithm=algorithm)
    doc = _load(_write(tmp_path, "protected.pdf", data))
    assert "Copy protected but readable" in doc.text
    assert [p.number for p in doc.pages] == [1, 2]


def test_pdf_without_text_layer_fixture() -> None:
    with pytest.raises(LoadError) as info:
        _load(FIXTURES / "pdf_single_table.pdf")
    assert str(info.value) == NO_TEXT_REASON


def test_pdf_blank_pages(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        _load(_write(tmp_path, "blank.pdf", _pdf_bytes(["", ""])))
    assert str(info.value) == NO_TEXT_REASON


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage\n%%EOF",
        b"not a pdf at all",
        b"%PDF-1.7\n" + bytes(range(256)) * 8,
    ],
)
def test_pdf_broken(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(LoadError, match=r"^broken PDF: "):
        _load(_write(tmp_path, "broken.pdf", data))


def test_pdf_truncated_is_repaired_or_fails_cleanly(tmp_path: Path) -> None:
    data = _pdf_bytes(["First page text", "Second page text"])
    path = _write(tmp_path, "cut.pdf", data[: len(data) * 2 // 3])
    try:
        doc = _load(path)
    except LoadError as exc:
        assert str(exc).startswith(("broken PDF: ", "no text layer"))
    else:
        assert "First page text" in doc.text


def test_pdf_is_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _pdf_bytes(["Quiet page"])
    data = data.replace(b"startxref\n", b"startxref\n1").replace(b"0000000009 00000 n", b"0000000000 00000 n")
    with contextlib.suppress(LoadError):
        _load(_write(tmp_path, "noisy.pdf", data))
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
