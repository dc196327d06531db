"""Turn the bytes of a text file into ``str``: BOMs, UTF-16/32, UTF-8, legacy code pages.

Order of checks: byte-order marks, BOM-less UTF-32/UTF-16 (recognised by the
NUL bytes ASCII characters leave), strict UTF-8, UTF-8 with a few broken bytes,
Western text (cp1252 / ISO-8859-1, judged by how the decoded letters look) and
finally charset-normalizer restricted to non-Western legacy encodings.
"""

from __future__ import annotations

import codecs
import re

from rag.core.errors import LoadError

BINARY_REASON = "binary file (not text)"

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: same first two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Legacy encodings charset-normalizer may choose from once Western text is ruled out.
_NON_WESTERN = [
    "cp1250", "iso8859_2", "cp1251", "koi8_r", "iso8859_5", "cp1253", "iso8859_7",
    "cp1255", "iso8859_8", "cp1256", "iso8859_6", "cp1254", "iso8859_9", "cp1257",
    "iso8859_13", "cp874", "cp932", "shift_jis", "euc_jp", "gb18030", "big5", "euc_kr",
]
_CYRILLIC_OR_GREEK = {"cp1251", "koi8_r", "iso8859_5", "cp1253", "iso8859_7", "mac_cyrillic"}
# Typographic characters common in Western text (cp1252 0x80-0x9F and a few more).
_PUNCT = set("–—‘’‚“”„•…€™‹›†‡ˆ˜‰′″\u00a0")
# Symbols of Latin-1 that are fine between words but odd inside one.
_SYMBOLS = set("¡¢£¤¥¦§¨©ª«¬\u00ad®¯°±²³´µ¶·¸¹º»¼½¾¿×÷")
_SAMPLE = 65536
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode ``data`` to text and return ``(text, encoding_name)``.

    Newlines are normalised to ``"\\n"`` and a leading BOM character is removed.
    Raises ``LoadError("binary file (not text)")`` for data that is not text.
    """
    text, encoding = _decode(data)
    if _looks_binary(text):
        raise LoadError(BINARY_REASON)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, encoding


def _decode(data: bytes) -> tuple[str, str]:
    """Pick the encoding of ``data`` and decode it (no normalisation yet)."""
    if not data:
        return "", "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            text = _strict(data[len(bom):], name)
            if text is not None:
                return text, "utf-8-sig" if name == "utf-8" else name
    wide = _decode_wide(data)
    if wide is not None:
        return wide
    if b"\x00" in data:
        raise LoadError(BINARY_REASON)
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    text = _mostly_utf8(data)
    if text is not None:
        return text, "utf-8"
    return _decode_legacy(data)


def _strict(data: bytes, encoding: str) -> str | None:
    """``data`` decoded with ``encoding``, or None when it does not decode cleanly."""
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _decode_wide(data: bytes) -> tuple[str, str] | None:
    """Recognise BOM-less UTF-32 and UTF-16 by where the NUL bytes sit."""
    sample = data[:_SAMPLE]
    if b"\x00" not in sample:
        return None
    if len(data) % 4 == 0 and len(sample) >= 4:
        for name, zero_lanes in (("utf-32-le", (2, 3)), ("utf-32-be", (0, 1))):
            if all(_zero_share(sample, lane, 4) > 0.9 for lane in zero_lanes):
                text = _strict(data, name)
                if text is not None:
                    return text, name
    if len(data) % 2 == 0:
        odd, even = _zero_share(sample, 1, 2), _zero_share(sample, 0, 2)
        candidates = []
        if odd > 0.2 and even < 0.02:
            candidates.append("utf-16-le")
        if even > 0.2 and odd < 0.02:
            candidates.append("utf-16-be")
        for name in candidates:
            text = _strict(data, name)
            if text is not None:
                return text, name
    return None


def _zero_share(sample: bytes, lane: int, width: int) -> float:
    """Share of NUL bytes at positions ``lane``, ``lane + width``, ... of ``sample``."""
    column = sample[lane::width]
    return column.count(0) / len(column) if column else 0.0


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few damaged bytes: decode with replacement characters."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    good = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    if good >= 3 and bad * 10 <= good:
        return text
    return None


def _decode_legacy(data: bytes) -> tuple[str, str]:
    """Single-byte (or CJK multi-byte) legacy encodings."""
    western = _strict(data, "cp1252")
    name = "cp1252"
    if western is None:
        western, name = data.decode("latin-1"), "iso8859-1"
    if _looks_western(western):
        return western, name
    guess = _charset_normalizer_guess(data)
    if guess is not None:
        return guess
    return western, name


def _looks_western(text: str) -> bool:
    """True when ``text`` reads like a Latin-script language (accented letters inside words)."""
    sample = text[:_SAMPLE]
    high = odd = 0
    words_with_letters = mixed_words = 0
    for word in re.findall(r"\S+", sample):
        if word.isascii():
            continue
        has_ascii_letter = any("a" <= c.lower() <= "z" for c in word)
        has_high_letter = False
        for i, ch in enumerate(word):
            if ord(ch) < 0x80:
                continue
            high += 1
            if ch in _PUNCT:
                continue
            if ch.isalpha() and ch not in "ªº":
                has_high_letter = True
            elif ch in _SYMBOLS and 0 < i < len(word) - 1 and word[i - 1].isalpha() and word[i + 1].isalpha():
                odd += 1
            elif ch not in _SYMBOLS:
                odd += 1  # C1 controls and other oddities
        words_with_letters += has_high_letter
        mixed_words += has_high_letter and has_ascii_letter
    if high == 0:
        return True
    if odd * 20 > high:
        return False
    return words_with_letters == 0 or mixed_words * 10 >= words_with_letters * 3


def _charset_normalizer_guess(data: bytes) -> tuple[str, str] | None:
    """charset-normalizer's best non-Western guess, with a fix-up for short Hebrew text."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - charset-normalizer is a dependency
        return None
    best = from_bytes(data[:_SAMPLE * 4], cp_isolation=_NON_WESTERN, threshold=0.5).best()
    if best is None:
        return None
    encoding = best.encoding
    if encoding in _CYRILLIC_OR_GREEK and _hebrew_bytes_only(data):
        encoding = "iso8859_8"
    text = _strict(data, encoding)
    if text is None:
        return None
    return text, codecs.lookup(encoding).name


def _hebrew_bytes_only(data: bytes) -> bool:
    """All high bytes lie in 0xE0-0xFA, the ISO-8859-8 / cp1255 Hebrew letters.

    Short Hebrew text scores the same as Cyrillic or Greek in charset-normalizer;
    real Russian or Greek text uses capitals or accented letters outside that range.
    """
    high = [b for b in data if b >= 0x80]
    return bool(high) and all(0xE0 <= b <= 0xFA for b in high)


def _looks_binary(text: str) -> bool:
    """Many control characters (other than tab, newlines, form feed, escape) mean binary."""
    sample = text[:_SAMPLE]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    return len(_CONTROL.findall(sample)) * 100 > len(sample)
