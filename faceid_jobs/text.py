"""Strings someone else controls, made safe to show on one terminal line (pure).

File names, URIs, identity names and whatever a store or a video container
says reach the terminal and the logs. Any of them may hold an ESC sequence
(colours, cursor moves, a rewritten screen), a newline or carriage return (a
forged log line) or a bidi override (text shown in another order).
`printable` shows each such character as a visible escape, so the string
stays one line of plain text; the CLI also escapes Rich markup on top
(`faceid_jobs.cli.common.shown`). JSON output needs neither: `json.dumps`
escapes control characters itself.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]

# Format characters that reorder or hide text: bidi embeddings, overrides and isolates, marks.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(c: str) -> str:
    code = ord(c)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(value: object) -> str:
    """`str(value)` with control characters (C0, DEL, C1) and bidi controls shown as escapes.

    >>> printable("a\\x1b[31mb\\nc\\u202e")
    'a\\\\x1b[31mb\\\\nc\\\\u202e'
    >>> printable("Zoë/clip 1.mp4")
    'Zoë/clip 1.mp4'
    """
    text = str(value)
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_escape(c) if unicodedata.category(c) == "Cc" or c in _BIDI else c for c in text)
