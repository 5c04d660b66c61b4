"""The blobs an entry names through its ``devices`` (issue #14): each rule of
:func:`ledger.entry.endorsement_digests` refused with :class:`InvalidEntry`, and any record of
any shape gives digests or InvalidEntry, never another exception (house rule: every parser is
fuzzed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.entry import MAX_DEVICES, MAX_ENDORSEMENTS, endorsement_digests
from ledger.errors import InvalidEntry

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_devices_name_their_evidence_then_their_endorsements() -> None:
    record = {
        "endorsements": [{"kind": "vcek", "sha256": A}],
        "devices": [
            {"evidence_sha256": B, "endorsements": [{"kind": "rim", "sha256": C}]},
            {"submod": "gpu1"},  # no evidence digest: nothing named
        ],
    }
    assert endorsement_digests(record) == [A, B, C]
    assert endorsement_digests({"devices": []}) == []


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ({"evidence_sha256": A}, "devices must be a list"),
        ([{}] * (MAX_DEVICES + 1), f"devices must be a list of at most {MAX_DEVICES}"),
        (["gpu0"], "each device is an object"),
        ([None], "each device is an object"),
        ([{"evidence_sha256": A.upper()}], "each device is an object naming its evidence_sha256"),
        ([{"evidence_sha256": A[:63]}], "each device is an object naming its evidence_sha256"),
        ([{"evidence_sha256": A + "\n"}], "each device is an object naming its evidence_sha256"),
        ([{"evidence_sha256": 1}], "each device is an object naming its evidence_sha256"),
        ([{"endorsements": {"kind": "rim", "sha256": A}}], "endorsements must be a list"),
        ([{"endorsements": [{"kind": "rim"}]}], "each endorsement is"),
        ([{"endorsements": [{"kind": 1, "sha256": A}]}], "each endorsement is"),
        ([{"endorsements": [{"kind": "rim", "sha256": A, "x": 1}]}], "each endorsement is"),
        # the limit counts every blob named, however they are spread over the devices
        ([{"evidence_sha256": A, "endorsements": [{"kind": "rim", "sha256": B}] * 4}] * 64,
         f"names more than {MAX_ENDORSEMENTS} endorsements"),
    ],
)  # fmt: skip
def test_a_device_that_breaks_a_rule_is_invalid(devices: object, message: str) -> None:
    with pytest.raises(InvalidEntry, match=message.replace("(", r"\(")):
        endorsement_digests({"devices": devices})


def test_the_limit_counts_the_entrys_own_endorsements_too() -> None:
    own = [{"kind": "vcek", "sha256": A}] * 200
    devices = [{"evidence_sha256": B}] * 57
    assert len(endorsement_digests({"endorsements": own, "devices": devices[:56]})) == 256
    with pytest.raises(InvalidEntry, match="names more than"):
        endorsement_digests({"endorsements": own, "devices": devices})


_DIGEST = st.sampled_from([A, B, A.upper(), "", "ab"]) | st.text(max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _DIGEST,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["kind", "sha256", "evidence_sha256", "endorsements"]),
                      inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
_ENDORSEMENT = st.fixed_dictionaries(
    {}, optional={"kind": st.sampled_from(["rim", "ocsp"]) | _JSON, "sha256": _DIGEST | _JSON}
)
_DEVICE = st.fixed_dictionaries(
    {},
    optional={
        "evidence_sha256": _DIGEST | _JSON,
        "endorsements": st.lists(_ENDORSEMENT | _JSON, max_size=4) | _JSON,
        "submod": _JSON,
    },
)


@settings(max_examples=150, deadline=None)
@given(
    devices=st.lists(_DEVICE | _JSON, max_size=6)
    | st.lists(st.just({"evidence_sha256": A}), min_size=60, max_size=70)
    | _JSON,
    own=st.none() | st.lists(_ENDORSEMENT, max_size=3),
)
def test_any_record_gives_digests_or_invalid_entry(devices: object, own: object) -> None:
    record = {"devices": devices} if own is None else {"devices": devices, "endorsements": own}
    try:
        digests = endorsement_digests(record)
    except InvalidEntry as exc:
        assert exc.message.startswith("entry: ")  # noqa: PT017 - the message is the contract
        return
    assert len(digests) <= MAX_ENDORSEMENTS
    assert all(len(d) == 64 and d == d.lower() for d in digests)
