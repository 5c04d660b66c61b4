"""Strict CBOR decoding for attestation evidence.

cbor2 is lenient by default in ways that matter for signed evidence, so every decode goes
through :func:`decode_strict`, which:

* rejects duplicate map keys (a second ``pcrs`` must not shadow the first);
* rejects trailing bytes after the single top-level item (``cbor2.loads`` ignores them);
* rejects every CBOR tag: cbor2 would otherwise turn tags into datetimes, bignums, regular
  expressions, sets or even cyclic structures (shared references). The one tag the format
  allows, 18 around a COSE_Sign1, is peeled off by :func:`strip_cose_sign1_tag` first;
* keeps indefinite-length items enabled: Nitro documents since 2025 use an indefinite-length
  payload map (``0xBF ... 0xFF``);
* bounds nesting depth; input size is bounded by the callers.

Any decoder failure becomes :class:`~verifier.errors.MalformedEvidence`.
"""

from __future__ import annotations

import io
from typing import Any, NoReturn

import cbor2

from verifier.errors import MalformedEvidence

__all__ = ["COSE_SIGN1_TAG", "decode_strict", "describe", "strip_cose_sign1_tag"]

COSE_SIGN1_TAG = 18

# The tags cbor2 6 decodes into Python objects of its own choosing (found by probing every tag
# below 70,000 and two large ones; tests/verifier/test_cbor.py re-checks the list). Each is
# overridden so that it raises instead; every other tag reaches the tag hook, which raises too.
_CBOR2_SEMANTIC_TAGS = (
    0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004,
    43000, 55799,
)  # fmt: skip

# Array -> map -> map is the deepest a Nitro document goes; leave a little room.
_MAX_DEPTH = 8


class _TagNotAllowedError(Exception):
    pass


def _reject_semantic_tag(_decoder: Any, _immutable: bool) -> NoReturn:
    raise _TagNotAllowedError


def _reject_tag(tag: cbor2.CBORTag, _immutable: bool) -> NoReturn:
    raise _TagNotAllowedError(tag.tag)


_SEMANTIC_OVERRIDES = dict.fromkeys(_CBOR2_SEMANTIC_TAGS, _reject_semantic_tag)


def decode_strict(data: bytes, *, what: str) -> Any:
    """Decode exactly one CBOR item from ``data`` or raise :class:`MalformedEvidence`.

    ``what`` names the item in error messages ("COSE_Sign1", "payload", ...).
    """
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_reject_tag,
            semantic_decoders=_SEMANTIC_OVERRIDES,
            max_depth=_MAX_DEPTH,
            allow_indefinite=True,
            allow_duplicate_keys=False,
        )
        value = decoder.decode()
    except cbor2.CBORDecodeError as exc:
        # cbor2 wraps the exception our tag hooks raise.
        if isinstance(exc.__cause__, _TagNotAllowedError):
            raise MalformedEvidence(f"{what}: CBOR tags are not allowed here") from exc
        raise MalformedEvidence(f"{what}: invalid CBOR ({_short(exc)})") from exc
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise MalformedEvidence(f"{what}: invalid CBOR ({_short(exc)})") from exc
    # cbor2 rewinds a seekable stream to the end of the item it decoded.
    consumed = stream.tell()
    if consumed != len(data):
        raise MalformedEvidence(
            f"{what}: expected one CBOR item, found {len(data) - consumed} trailing byte(s)"
        )
    return value


def strip_cose_sign1_tag(data: bytes) -> tuple[bytes, bool]:
    """Return ``(untagged_bytes, was_tagged)``.

    Accepts an untagged item or one wrapped in tag 18 (COSE_Sign1, RFC 9052); any other tag
    raises :class:`MalformedEvidence`. Only the outermost tag is examined here; tags nested
    inside are rejected by :func:`decode_strict`.
    """
    if not data:
        raise MalformedEvidence("COSE_Sign1: empty input")
    initial = data[0]
    if initial >> 5 != 6:  # major type 6 is a tag
        return data, False
    info = initial & 0x1F
    if info < 24:
        tag, header = info, 1
    elif info in (24, 25, 26, 27):
        width = 1 << (info - 24)
        if len(data) < 1 + width:
            raise MalformedEvidence("COSE_Sign1: truncated tag")
        tag, header = int.from_bytes(data[1 : 1 + width], "big"), 1 + width
    else:
        raise MalformedEvidence("COSE_Sign1: invalid tag encoding")
    if tag != COSE_SIGN1_TAG:
        raise MalformedEvidence(
            f"COSE_Sign1: expected no tag or tag {COSE_SIGN1_TAG}, found tag {tag}"
        )
    return data[header:], True


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


_TYPE_NAMES: dict[type, str] = {
    bytes: "a byte string",
    str: "a text string",
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    list: "an array",
    dict: "a map",
}


def describe(value: object) -> str:
    """Name a decoded CBOR value's type for an error message, without echoing its content."""
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)
