"""How recorded text is shown to people: every character kept, none of them able to hide.

Evidence fields (a document's ``module_id``, a worker's ``job``, the verifier's messages that
quote them) are attacker-controlled text. The ledger keeps them exactly (see
:mod:`ledger.entry`). Shown raw, some characters deceive the reader: a right-to-left
override reorders what follows it, zero-width characters hide inside an identifier, NUL and
other control characters vanish or, in a terminal, act. :func:`visible` writes each such
character as a visible marker naming its code point, ``⟨U+202E⟩``, so that what a person sees
is what the ledger holds, in the order it holds it.

Marked: control characters (Unicode category Cc) other than tab and line feed, format
characters (Cf: the bidirectional controls, zero-width characters, the byte-order mark, the
tag characters), surrogates (Cs, which arrive alone from JSON) and the line and paragraph
separators (Zl, Zp). ``tests/test_display.py`` checks the table below against the running
Python's Unicode database.

The portal applies it to every value a template shows (``web/portal.py`` installs it as
Jinja's ``finalize``); the command line applies it to the evidence fields it prints. JSON
answers need nothing: they escape these characters (``\\u202e``).
"""

from __future__ import annotations

import re

__all__ = ["HIDDEN", "visible"]

#: The characters :func:`visible` marks, as a regular-expression character class.
HIDDEN = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"
    "\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_HIDDEN = re.compile(f"[{HIDDEN}]")


def visible(text: str) -> str:
    """``text`` with every character that could hide or reorder text written as ``⟨U+XXXX⟩``."""
    if not _HIDDEN.search(text):
        return text
    return _HIDDEN.sub(lambda found: f"\u27e8U+{ord(found.group()):04X}\u27e9", text)
