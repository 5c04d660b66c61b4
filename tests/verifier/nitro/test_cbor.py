"""Strict CBOR decoding: what cbor2 would let through by default and we must not."""

from __future__ import annotations

import cbor2
import pytest

from verifier.errors import MalformedEvidence
from verifier.nitro.cbor import _CBOR2_SEMANTIC_TAGS, decode_strict, strip_cose_sign1_tag


def test_definite_and_indefinite_maps_decode_alike() -> None:
    definite = cbor2.dumps({"a": 1, "b": b"x"})
    indefinite = (
        b"\xbf" + cbor2.dumps("a") + cbor2.dumps(1) + cbor2.dumps("b") + cbor2.dumps(b"x") + b"\xff"
    )
    assert (
        decode_strict(definite, what="t")
        == decode_strict(indefinite, what="t")
        == {"a": 1, "b": b"x"}
    )


def test_indefinite_byte_strings_are_accepted() -> None:
    assert decode_strict(b"\x5f\x41a\x41b\xff", what="t") == b"ab"


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("a2616101616102"),  # {"a": 1, "a": 2}
        b"\xbf\x61a\x01\x61a\x02\xff",  # the same, indefinite
        bytes.fromhex("a201010102"),  # {1: 1, 1: 2}
    ],
    ids=["text-key", "indefinite", "integer-key"],
)
def test_duplicate_map_keys_are_rejected(data: bytes) -> None:
    with pytest.raises(MalformedEvidence, match="invalid CBOR"):
        decode_strict(data, what="t")


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(MalformedEvidence, match="1 trailing byte"):
        decode_strict(cbor2.dumps([1, 2]) + b"\x00", what="t")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x82\x01", b"\x5f\x41a", b"\x7f\x61a", b"\xbf\x61a", b"\x62\xff\xfe", b"\x1c", b"\xff"],
    ids=[
        "empty",
        "short-array",
        "open-bytes",
        "open-text",
        "open-map",
        "bad-utf8",
        "reserved-info",
        "lone-break",
    ],
)
def test_truncated_and_invalid_items_are_rejected(data: bytes) -> None:
    with pytest.raises(MalformedEvidence):
        decode_strict(data, what="t")


def test_nesting_depth_is_bounded() -> None:
    with pytest.raises(MalformedEvidence):
        decode_strict(b"\x81" * 50 + b"\x00", what="t")


@pytest.mark.parametrize("tag", [*_CBOR2_SEMANTIC_TAGS, 6, 18, 19, 24, 1000, 2**32 + 5])
@pytest.mark.parametrize("nested", [False, True], ids=["top", "nested"])
def test_every_tag_is_rejected_inside_decode(tag: int, nested: bool) -> None:
    for content in (0, b"\x00" * 8, "2020-01-01T00:00:00Z", [0, 0]):
        item: object = cbor2.CBORTag(tag, content)
        if nested:
            item = {"k": [item]}
        with pytest.raises(MalformedEvidence, match="tags are not allowed"):
            decode_strict(cbor2.dumps(item), what="t")


def test_the_semantic_tag_list_matches_what_cbor2_decodes() -> None:
    """Re-probe cbor2: a tag it decodes itself that is missing from our list would slip past
    the tag hook. Probing below 70,000 covers every tag cbor2 6 knows."""
    semantic = set()
    for tag in range(70000):
        for content in (0, b"\x00", "a", [0, 0]):
            try:
                value = cbor2.loads(
                    cbor2.dumps(cbor2.CBORTag(tag, content)), tag_hook=lambda _d, _t: "hook"
                )
            except Exception:
                semantic.add(tag)
                break
            if value != "hook":
                semantic.add(tag)
                break
    assert semantic <= set(_CBOR2_SEMANTIC_TAGS)


def test_cose_tag_18_is_peeled_in_short_and_long_form() -> None:
    body = cbor2.dumps([1])
    assert strip_cose_sign1_tag(b"\xd2" + body) == (body, True)
    assert strip_cose_sign1_tag(b"\xd8\x12" + body) == (body, True)
    assert strip_cose_sign1_tag(body) == (body, False)


@pytest.mark.parametrize("prefix", [b"\xd3", b"\xd8\x13", b"\xc0", b"\xd9\x01\x00"])
def test_other_outer_tags_are_rejected(prefix: bytes) -> None:
    with pytest.raises(MalformedEvidence, match="expected no tag or tag 18"):
        strip_cose_sign1_tag(prefix + cbor2.dumps([1]))


@pytest.mark.parametrize("data", [b"\xd8", b"\xdb\x00\x00", b"\xdc\x00", b"\xdf"])
def test_broken_tag_headers_are_rejected(data: bytes) -> None:
    with pytest.raises(MalformedEvidence):
        strip_cose_sign1_tag(data)
