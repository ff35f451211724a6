"""Recipe text: reading archives, splitting them into recipes, and the lecture's word rules.

Tokenize, by the lecture's rules: spaces around punctuation ("word!" -> "word !"), newlines kept
as tokens of their own, runs of two or more dashes kept as one word, single dashes spaced, lower
case, split on spaces, whitespace dropped. `detokenize` turns tokens back into readable text.
"""

from __future__ import annotations

import codecs
import os
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from hpc_rnn.cli import UserError

NEWLINE = "\n"

_PUNCT = re.escape("".join(c for c in string.punctuation if c != "-"))
# One alternation, tried left to right, is the whole rule set: a newline, a dash run, a single
# dash, one punctuation mark, or a run of anything else that is not whitespace.
_TOKEN = re.compile(rf"\n|-{{2,}}|-|[{_PUNCT}]|[^\s{_PUNCT}-]+")

# A recipe starts at MasterCook's export line (the lecture's layout) or Meal-Master's header.
RECIPE_START = re.compile(
    rb"^[ \t]*(?:\*[ \t]*Exported from MasterCook[ \t]*\*"
    rb"|-{5,}[ \t]*Recipe via Meal-Master)",
    re.IGNORECASE | re.MULTILINE,
)

# Control characters that DOS-era archives carry and that are not text: NUL, Ctrl-D, Ctrl-T
# (Meal-Master's paragraph mark), Ctrl-Z (end of file). Form feeds and tabs are whitespace.
_CONTROL = str.maketrans({"\x00": None, "\x04": None, "\x14": None, "\x1a": None})


def tokenize(text: str) -> list[str]:
    """Split recipe text into lower-case words by the lecture's rules."""
    return _TOKEN.findall(normalize(text).lower())


def normalize(text: str) -> str:
    """CRLF and CR to LF, DOS control characters removed."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL)


_NO_SPACE_BEFORE = set(".,;:!?)]}%")
_NO_SPACE_AFTER = set("([{$#")


def detokenize(tokens: list[str]) -> str:
    """Readable text from tokens: newlines restored, punctuation re-attached to its word."""
    out: list[str] = []
    before = prev = NEWLINE
    for tok in tokens:
        if tok == NEWLINE:
            out.append(NEWLINE)
        elif prev == NEWLINE or prev in _NO_SPACE_AFTER or tok in _NO_SPACE_BEFORE:
            out.append(tok)
        elif tok in ("'", "/") or prev in ("'", "/"):
            # "don ' t" -> "don't", "1 / 2" -> "1/2"
            out.append(tok)
        elif prev == ":" and tok.isdigit() and before.isdigit():
            # "0 : 00" -> "0:00", but "yield : 12" -> "yield: 12"
            out.append(tok)
        else:
            out.append(" " + tok)
        before, prev = prev, tok
    return "".join(out)


def is_recipe_end(line_tokens: list[str]) -> bool:
    """True for the spaced-dash line that closes a MasterCook recipe ('- - - - ...')."""
    return len(line_tokens) >= 5 and all(t == "-" for t in line_tokens)


# ---------------------------------------------------------------------------------------------
# Reading archives


class CorpusError(UserError):
    """The corpus cannot be read as recipe text; the message says why."""


@dataclass(frozen=True)
class Encoding:
    name: str
    note: str  # empty for UTF-8; otherwise why another encoding was chosen


def sniff_encoding(path: str | os.PathLike, start: int = 0, end: int | None = None) -> Encoding:
    """UTF-8 if the bytes decode as UTF-8, else cp1252, else latin-1; binary files are refused."""
    size = os.path.getsize(path)
    end = size if end is None else end
    utf8 = codecs.getincrementaldecoder("utf-8")()
    cp1252_ok = True
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        while pos < end:
            chunk = f.read(min(1 << 22, end - pos))
            if not chunk:
                break
            if b"\x00\x00" in chunk or _looks_binary(chunk):
                raise CorpusError(
                    f"{path} looks like a binary file, not recipe text: give a text file"
                )
            if utf8 is not None:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = None
            # Checked on every chunk: UTF-8 may fail only in a later chunk (or at the very end).
            if cp1252_ok:
                try:
                    chunk.decode("cp1252")
                except UnicodeDecodeError:
                    cp1252_ok = False
            pos += len(chunk)
    if utf8 is not None:
        try:
            utf8.decode(b"", final=True)  # a multi-byte sequence cut off at the end is not UTF-8
        except UnicodeDecodeError:
            utf8 = None
    if utf8 is not None:
        return Encoding("utf-8", "")
    if cp1252_ok:
        return Encoding("cp1252", "not valid UTF-8; read as cp1252 (Windows-1252)")
    return Encoding("latin-1", "neither UTF-8 nor cp1252; read as latin-1")


def _looks_binary(chunk: bytes) -> bool:
    # Text archives have few control bytes besides tab/newline/CR/FF and the DOS marks above.
    sample = chunk[:65536]
    if not sample:
        return False
    ctrl = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 0x04, 0x14, 0x1A))
    return ctrl > len(sample) // 100


def recipe_boundary_at_or_after(path: str | os.PathLike, offset: int) -> int:
    """Byte offset of the first recipe start at or after `offset` (file size if none)."""
    if offset <= 0:
        return 0
    with open(path, "rb") as f:
        # Finish the line that holds byte offset-1: the next line starts at or after `offset`.
        f.seek(offset - 1)
        pos = offset - 1 + len(f.readline())
        for line in f:
            if RECIPE_START.match(line):
                return pos
            pos += len(line)
    return os.path.getsize(path)


def iter_recipes(
    path: str | os.PathLike, encoding: str, start: int = 0, end: int | None = None
) -> Iterator[str]:
    """Yield the text of each recipe whose start lies in bytes [start, end) of the file.

    Text before the first recipe start (a preamble) is skipped. Memory is one recipe.
    """
    end = os.path.getsize(path) if end is None else end
    current: list[bytes] | None = None
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        for raw in f:
            if pos >= end:
                break
            pos += len(raw)
            if RECIPE_START.match(raw):
                if current is not None:
                    yield _decode(current, encoding)
                current = [raw]
            elif current is not None:
                current.append(raw)
    if current is not None:
        yield _decode(current, encoding)


def _decode(lines: list[bytes], encoding: str) -> str:
    return normalize(b"".join(lines).decode(encoding))
