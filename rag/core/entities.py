"""Names a passage mentions (capitalised spans), normalised to the keys of the entity graph.

Used at ingest (each chunk's payload keeps its ``entities``) and at query time (the names in the
question; ``links`` multi-hop). A cheap, deterministic extractor with no model: runs of
capitalised words with connectors such as 'of' and 'the' inside, at sentence level. A document's
first chunk is also about its title line, in whatever case (``chunk_keys``).
"""

from __future__ import annotations

import re

ENTITIES = "entities"  # the payload field of a chunk's entity keys
ENTITIES_VERSION = "entities_v"  # ... and the EXTRACTOR version that made them
MAX_ENTITIES = 64  # per chunk, in order of first mention
EXTRACTOR = 3  # bump when the extraction changes: stored keys of another version are recomputed

_CONNECTORS = {"of", "the", "and", "de", "da", "von", "van", "du", "la", "le", "del", "di", "for", "on"}
_NOT_NAMES = {
    "The", "A", "An", "In", "On", "At", "He", "She", "It", "They", "His", "Her", "Its", "This", "That", "These",
    "Those", "As", "After", "Before", "During", "When", "While", "With", "From", "By", "For", "And", "But", "Or",
    "Their", "There", "Since", "Although", "Following", "According", "Many", "Some", "Most", "Other", "Both", "Each",
    "One", "Two", "Three", "Also", "I", "We", "You", "If", "Is", "Was", "What", "Which", "Who", "Where", "How",
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Over", "Under",
    "Are", "Were", "Did", "Do", "Does", "Has", "Have", "Had", "Can", "Could", "Would", "Should", "Will", "Whose",
    "When", "Why", "Whom", "Name", "Between", "However", "Thus", "Therefore", "Then", "Now", "Here", "See", "Note",
    "Such", "Not", "No", "More", "Your", "Our", "My", "Only", "Even", "Because", "Unlike", "Like", "Until", "Though",
    "Instead", "Every", "All", "Any", "Another", "So", "Yet", "Once", "Often", "Usually", "Generally",
}  # fmt: skip
_SENTENCE = re.compile(r"(?<!\b[A-Z]\.)(?<=[.!?])\s+|\n+")  # not after an initial: 'Roger O. Egeberg' is one name
_EDGE_PUNCT = ",;:()\"“”'’.!?[]{}"
_PARENS = re.compile(r"\s*\([^)]*\)\s*")
_NON_WORD = re.compile(r"[^\w]+")
_POSSESSIVE = re.compile(r"['’]s\b")


def mentions(text: str) -> list[str]:
    """Names a passage mentions: runs of capitalised words (with 'of', 'the'... inside), in order, each once.

    >>> mentions("Kiss and Tell is a 1945 American comedy film starring Shirley Temple as Corliss Archer.")
    ['Kiss and Tell', 'American', 'Shirley Temple', 'Corliss Archer']
    """
    found: list[str] = []
    for sentence in _SENTENCE.split(text):
        run: list[str] = []

        def flush() -> None:
            while run and run[-1].lower() in _CONNECTORS:
                run.pop()
            while run and (run[0] in _NOT_NAMES or run[0].lower() in _CONNECTORS or run[0][0].isdigit()):
                run.pop(0)
            if run:
                found.append(" ".join(run))
            run.clear()

        for word in sentence.split():
            if word[0] in "([{":  # an aside starts: '(1945 film)' is not part of the name before it
                flush()
            core = word.strip(_EDGE_PUNCT)
            if not core:
                flush()
            elif core[0].isupper() or (core[0].isdigit() and run):
                run.append(core)
            elif core in _CONNECTORS and run:
                run.append(core)
            else:
                flush()
            if word[-1] in ",;:)\"”":
                flush()
        flush()
    return list(dict.fromkeys(found))


def norm(text: str) -> str:
    """Lower case, no parenthesised qualifier ('Kiss and Tell (1945 film)' -> 'kiss and tell'), words only."""
    return " ".join(_NON_WORD.sub(" ", _PARENS.sub(" ", text)).lower().split())


def entity_keys(text: str, limit: int = MAX_ENTITIES) -> list[str]:
    """The normalised names ``text`` mentions, each once, in order; bare numbers and one-letter names left out.

    >>> entity_keys("Kiss and Tell (1945 film) starred Shirley Temple. Shirley Temple was born in 1928.")
    ['kiss and tell', 'shirley temple']
    """
    keys: list[str] = []
    seen: set[str] = set()
    for name in mentions(text):
        key = norm(_POSSESSIVE.sub("", name))
        if len(key) < 2 or key.replace(" ", "").isdigit() or key in seen or max(map(len, key.split())) < 2:
            continue
        seen.add(key)
        keys.append(key)
        if len(keys) >= limit:
            break
    return keys


def chunk_keys(text: str, context: str = "", chunk_index: int | None = None, limit: int = MAX_ENTITIES) -> list[str]:
    """A chunk's names for the entity graph: those of its indexed text (context header, then text), with the
    document's title line first for a document's first chunk, lower case or not ('instruction scheduling').

    A short first line is what a titled document (a dictionary entry, a wiki page) is about, and the
    graph takes a chunk's first name as its subject.

    >>> chunk_keys("instruction scheduling\\n\\nA compiler phase that reorders MIPS instructions.", chunk_index=0)
    ['instruction scheduling', 'mips']
    """
    keys = entity_keys(f"{context}\n\n{text}" if context else text, limit)
    if chunk_index != 0:  # a later chunk, or one whose place is unknown: its first line is no title
        return keys
    first = text.strip().split("\n", 1)[0].strip()
    words = _POSSESSIVE.sub("", first).split() if 0 < len(first) <= 100 and "\n" in text.strip() else []
    while words and (words[0].capitalize() in _NOT_NAMES or words[0].lower() in _CONNECTORS):
        words.pop(0)  # 'The Beatles' is 'beatles', as its mentions are
    title = norm(" ".join(words))
    if len(title) < 2 or title.replace(" ", "").isdigit() or len(title.split()) > 8:
        return keys
    return [title, *(k for k in keys if k != title)][:limit]
