"""Long text -> chunks a backend speaks well, and the pauses that join them again.

Text is cut into sentences (paragraph breaks are hard boundaries), sentences are packed greedily into
chunks of about `ChunkPolicy.target_chars`, and a sentence longer than `max_chars` is cut at clause
punctuation, then at spaces. Each chunk remembers the pause that follows it: longer after a
paragraph, short after a sentence, shorter still inside a sentence that had to be cut. Chunks are
rendered independently (and cached), so the same policy must always give the same chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.tts.backends.base import ChunkPolicy

# Abbreviations whose trailing period does not end a sentence (English; other languages rarely trip).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m no fig approx dept est inc ltd co mt ave".split()
)
_SENTENCE_END = re.compile(r"([.!?…]+[\"'”’)\]]*)(\s+)|([。！？]+)")
_CLAUSE_END = re.compile(r"[,;:—–]\s+|\s+[—–]\s+")
_WORDLIKE = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class Pauses:
    """Silence inserted after a chunk, by what ends it (seconds)."""

    paragraph_s: float = 0.6
    sentence_s: float = 0.3
    clause_s: float = 0.15


@dataclass(frozen=True)
class TextChunk:
    index: int
    text: str
    pause_after_s: float  # 0 for the last chunk


def normalize_text(text: str) -> str:
    """Spaces collapsed inside paragraphs; paragraphs (blank-line separated) kept apart by '\\n\\n'."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return "\n\n".join(p for p in (" ".join(p.split()) for p in paragraphs) if p)


def speakable(text: str) -> bool:
    """Does `text` hold anything to say (a letter or digit), not just punctuation?"""
    return bool(_WORDLIKE.search(text))


def _ends_with_abbreviation(piece: str) -> bool:
    words = piece.rstrip(".").split()
    if not words:
        return False
    last = words[-1].lower().lstrip("(\"'")
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph, punctuation kept; 'Dr. Smith' and initials do not end one."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(paragraph):
        end = m.end(1) if m.group(1) else m.end(3)
        piece = paragraph[start:end].strip()
        if m.group(1) and m.group(1).startswith(".") and _ends_with_abbreviation(piece):
            continue
        if piece:
            out.append(piece)
        start = m.end()
    tail = paragraph[start:].strip()
    if tail:
        out.append(tail)
    return out


def _split_after(text: str, pattern: re.Pattern[str]) -> list[str]:
    """`text` cut after every match of `pattern` (the punctuation stays with the piece before)."""
    pieces, start = [], 0
    for m in pattern.finditer(text):
        pieces.append(text[start : m.end()].strip())
        start = m.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def _cut_words(text: str, max_chars: int) -> list[str]:
    """Words packed into pieces of at most `max_chars`; a longer word is cut into slices."""
    words: list[str] = []
    for w in text.split():
        words += [w[i : i + max_chars] for i in range(0, len(w), max_chars)]
    return _pack(words, max_chars)


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    out: list[str] = []
    for p in pieces:
        if out and len(out[-1]) + 1 + len(p) <= max_chars:
            out[-1] = f"{out[-1]} {p}"
        else:
            out.append(p)
    return out


def split_long(sentence: str, max_chars: int) -> list[str]:
    """A sentence over `max_chars`: cut at clause punctuation, then at spaces, then inside a word;
    neighbouring pieces are packed back together up to `max_chars`."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces = [w for clause in _split_after(sentence, _CLAUSE_END) for w in _cut_words(clause, max_chars)]
    return _pack(pieces, max_chars)


def _units(text: str, policy: ChunkPolicy) -> list[tuple[str, str]]:
    """(piece, kind) with kind the boundary after it: 'clause', 'sentence' or 'paragraph'."""
    units: list[tuple[str, str]] = []
    for paragraph in normalize_text(text).split("\n\n"):
        for sentence in split_sentences(paragraph):
            parts = split_long(sentence, policy.max_chars)
            units += [(p, "clause") for p in parts[:-1]] + [(parts[-1], "sentence")]
        if units:
            units[-1] = (units[-1][0], "paragraph")
    return units


def chunk_text(text: str, policy: ChunkPolicy, pauses: Pauses | None = None) -> list[TextChunk]:
    """Chunks of `text` for a backend with `policy`, in order, each with its following pause.

    Whole sentences are packed up to `target_chars`; a clause piece of a long sentence is never
    packed with other text. Chunks with nothing speakable (only punctuation) are dropped.
    """
    pauses = pauses or Pauses()
    gap = {"clause": pauses.clause_s, "sentence": pauses.sentence_s, "paragraph": pauses.paragraph_s}
    packed: list[tuple[str, str]] = []
    for piece, kind in _units(text, policy):
        if not speakable(piece):
            continue
        if packed:
            prev, prev_kind = packed[-1]
            if (
                prev_kind == "sentence"
                and kind != "clause"
                and len(prev) + 1 + len(piece) <= policy.target_chars
            ):
                packed[-1] = (f"{prev} {piece}", kind)
                continue
        packed.append((piece, kind))
    return [
        TextChunk(i, piece, 0.0 if i == len(packed) - 1 else gap[kind])
        for i, (piece, kind) in enumerate(packed)
    ]
