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
from typing import BinaryIO

from hpc_rnn.cli import UserError

NEWLINE = "\n"

_PUNCT = re.escape("".join(c for c in string.punctuation if c != "-"))
# One alternation, tried left to right, is the whole rule set: a newline, a dash run, a single
# dash, one punctuation mark, or a run of anything else that is not whitespace.
_TOKEN = re.compile(rf"\n|-{{2,}}|-|[{_PUNCT}]|[^\s{_PUNCT}-]+")

# A recipe starts at MasterCook's export line (the lecture's layout) or Meal-Master's header.
# Archives differ in the spacing and in what follows the program's name, so only the fixed
# words are matched: "* Exported from MasterCook" with any version after it ("Mac", "II",
# "Buster (tm)", ...), and a run of dashes (Meal-Master's "MMMMM" form prefixes it with M's)
# followed on the same line by the name Meal-Master ("Recipe via Meal-Master (tm) v8.05",
# "... [Meal-Master Export Format]"). A header quoted inside a recipe behind other marks
# ("+++++-----...") is not a start.
RECIPE_START = re.compile(
    rb"^[ \t]*(?:\*[ \t]*Exported[ \t]+from[ \t]+Master[ \t]?Cook\b"
    rb"|M*-{5,}[^\n]*?\bMeal[- ]?Master\b)",
    re.IGNORECASE | re.MULTILINE,
)

# Each recipe is read as the first of these that decodes all of its bytes.
DECODINGS = ("utf-8", "cp1252", "latin-1")
AUTO = "auto"  # the encoding name that asks for that choice per recipe

# A recipe is handed out in pieces of at most this many bytes, cut at whitespace, so that one
# giant recipe (or line) costs no more memory than a normal one. Real recipes are a few KB.
MAX_PIECE_BYTES = 1 << 20
_CUT_AFTER = b" \t\n"  # never after CR: CR LF split in two would read as two newlines

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
    name: str  # "utf-8", or AUTO: each recipe decoded on its own (see decode_recipe)
    note: str  # empty for UTF-8; otherwise what reading it that way means


def sniff_encoding(path: str | os.PathLike, start: int = 0, end: int | None = None) -> Encoding:
    """How to read bytes [start, end) of `path`: UTF-8 when all of it is, else recipe by recipe
    (`AUTO`). Binary files are refused."""
    size = os.path.getsize(path)
    end = size if end is None else end
    utf8 = codecs.getincrementaldecoder("utf-8")()
    valid = True
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
            if valid:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    valid = False
            pos += len(chunk)
    if valid:
        try:
            utf8.decode(b"", final=True)  # a multi-byte sequence cut off at the end is not UTF-8
        except UnicodeDecodeError:
            valid = False
    if valid:
        return Encoding("utf-8", "")
    return Encoding(
        AUTO, "not valid UTF-8 throughout: each recipe is read as UTF-8, else cp1252, else latin-1"
    )


def _looks_binary(chunk: bytes) -> bool:
    # Text archives have few control bytes besides tab/newline/CR/FF and the DOS marks above.
    sample = chunk[:65536]
    if not sample:
        return False
    ctrl = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 0x04, 0x14, 0x1A))
    return ctrl > len(sample) // 100


def decode_recipe(raw: bytes) -> tuple[str, str]:
    """The recipe's text (normalized) and the first of DECODINGS that reads all of its bytes.

    Deciding per recipe keeps one stray byte from turning every other recipe's UTF-8 accents
    into mojibake ("crème" read as cp1252 is "crÃ¨me"); a recipe depends only on its own
    bytes, so the choice is the same for any number of ranks.
    """
    for name in DECODINGS[:-1]:
        try:
            return normalize(raw.decode(name)), name
        except UnicodeDecodeError:
            continue
    return normalize(raw.decode(DECODINGS[-1])), DECODINGS[-1]  # latin-1 reads any byte


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _lines(f: BinaryIO) -> Iterator[tuple[bool, bytes]]:
    """(at_line_start, bytes) for each line of `f` from its position, line ends kept.

    LF, CR LF and a lone CR (classic Mac OS archives) end a line. A line longer than
    MAX_PIECE_BYTES comes in parts, all but the first with at_line_start False.
    """
    rest = b""
    at_start = True
    while True:
        block = f.read(MAX_PIECE_BYTES)
        data = rest + block
        if not data:
            return
        cut = 0
        for m in _LINE_END.finditer(data):
            if block and m.end() == len(data) and m.group() == b"\r":
                break  # its LF may start the next block
            yield at_start, data[cut : m.end()]
            cut, at_start = m.end(), True
        rest = data[cut:]
        if not block:
            if rest:
                yield at_start, rest
            return
        if len(rest) >= MAX_PIECE_BYTES:
            yield at_start, rest
            rest, at_start = b"", False


def recipe_boundary_at_or_after(path: str | os.PathLike, offset: int) -> int:
    """Byte offset of the first recipe start at or after `offset` (file size if none)."""
    if offset <= 0:
        return 0
    with open(path, "rb") as f:
        # Skip the rest of the line that holds byte offset-1: the next line starts at or after
        # `offset`.
        f.seek(offset - 1)
        pos = offset - 1
        lines = _lines(f)
        for _, line in lines:
            pos += len(line)
            break
        for at_start, line in lines:
            if at_start and RECIPE_START.match(line):
                return pos
            pos += len(line)
    return os.path.getsize(path)


def iter_recipe_pieces(
    path: str | os.PathLike, start: int = 0, end: int | None = None
) -> Iterator[tuple[bool, bytes]]:
    """(first, raw) for each recipe whose start lies in bytes [start, end) of the file.

    A recipe longer than MAX_PIECE_BYTES comes in several pieces, cut after whitespace (so no
    word and no UTF-8 character is split, and the pieces tokenize as the whole would); `first`
    is True for a recipe's first piece. Text before the first recipe start is skipped. Memory
    is one piece (at most MAX_PIECE_BYTES plus one line part), whatever the recipe's size.
    """
    end = os.path.getsize(path) if end is None else end
    piece = bytearray()
    first = inside = False
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        for at_start, line in _lines(f):
            if pos >= end:
                break
            pos += len(line)
            if at_start and RECIPE_START.match(line):
                if inside:
                    yield first, bytes(piece)
                piece, first, inside = bytearray(line), True, True
            elif inside:
                piece += line
                while len(piece) > MAX_PIECE_BYTES:
                    cut = _cut(piece)
                    yield first, bytes(piece[:cut])
                    del piece[:cut]
                    first = False
    if inside:
        yield first, bytes(piece)


def _cut(piece: bytearray) -> int:
    """Where to end a piece: after the last whitespace within MAX_PIECE_BYTES (or there, if a
    megabyte holds no whitespace: such a "word" is garbage whichever way it is cut)."""
    last = max(piece.rfind(c, 0, MAX_PIECE_BYTES) for c in _CUT_AFTER)
    return last + 1 if last >= 0 else MAX_PIECE_BYTES


def iter_recipes(
    path: str | os.PathLike, encoding: str = AUTO, start: int = 0, end: int | None = None
) -> Iterator[str]:
    """Yield the text of each recipe whose start lies in bytes [start, end) of the file.

    `encoding` AUTO decodes each recipe on its own (`decode_recipe`); a codec name decodes all
    of them with it. Text before the first recipe start (a preamble) is skipped. Memory is one
    recipe.
    """
    parts: list[bytes] = []
    for first, raw in iter_recipe_pieces(path, start, end):
        if first and parts:
            yield _decode(b"".join(parts), encoding)
            parts = []
        parts.append(raw)
    if parts:
        yield _decode(b"".join(parts), encoding)


def _decode(raw: bytes, encoding: str) -> str:
    if encoding == AUTO:
        return decode_recipe(raw)[0]
    return normalize(raw.decode(encoding))
