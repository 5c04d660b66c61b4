"""The EAR of a composite record (issue #14; house rule: every parser is fuzzed): built from a
record with devices of any shape, it never raises; compared with the record it came from it
says nothing; compared with any claims or any record, both comparisons (the project's
ear_disagreements and the standalone verifier's ear_differs) never raise, name the same
differences, and name a device whose EAR says otherwise."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from attest_ledger.bundles import verify_bundle as standalone
from attest_ledger.ear import CPU, build_ear, ear_disagreements

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_VERDICT = st.sampled_from(["affirming", "warning", "contraindicated", "none"])
_DEVICE = st.fixed_dictionaries(
    {"verdict": _VERDICT},
    optional={
        "evidence_kind": st.just("nvidia-gpu") | _JSON,
        "evidence_sha256": st.just("cd" * 32) | _JSON,
        "policy": st.just("worker:w") | _JSON,
        "nonce": _JSON,
        "endorsements": _JSON,
    },
)
_NAMES = st.lists(
    st.sampled_from(["gpu0", "gpu1", "switch2", "gpu15"]) | st.text(max_size=6),
    unique=True,
    max_size=5,
).filter(lambda names: CPU not in names)


def _record(devices: list[Any], reasons: list[Any]) -> dict[str, Any]:
    return {
        "verdict": "contraindicated", "cpu_verdict": "affirming", "evidence_sha256": "ab" * 32,
        "result_hash": "sha256:" + "00" * 32, "worker": "w", "policy": "worker:w",
        "verified_at": "2026-01-01T00:00:00.000Z", "evidence_kind": "amd-sev-snp",
        "reasons": reasons, "devices": devices,
    }  # fmt: skip


@st.composite
def _composite(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(_NAMES)
    devices = [{**draw(_DEVICE), "submod": name} for name in names]
    reasons = draw(
        st.lists(
            st.fixed_dictionaries(
                {"code": st.text(max_size=8)},
                optional={"submod": st.sampled_from([*names, "composite"]) | _JSON},
            )
            | _JSON,
            max_size=4,
        )
    )
    return _record(devices, reasons)


@settings(max_examples=80, deadline=None)
@given(
    record=_composite(),
    vectors=st.dictionaries(
        st.text(max_size=6),
        st.dictionaries(
            st.sampled_from(["hardware", "executables", "x"]), st.integers(-5, 40), max_size=3
        ),
    ),
)
def test_an_ear_built_from_any_composite_record_says_what_it_says(record, vectors) -> None:
    claims = build_ear(
        record, evidence_sha256="ab" * 32, trustworthiness_vector={}, device_vectors=vectors
    )
    assert sorted(claims["submods"]) == sorted([CPU, *(d["submod"] for d in record["devices"])])
    assert ear_disagreements(claims, record) == [] == standalone.ear_differs(claims, record)
    for device in record["devices"]:  # a device whose EAR says another status is named
        said = claims["submods"][device["submod"]]
        said["ear.status"], was = "tampered", said["ear.status"]
        named = ear_disagreements(claims, record)
        assert named == standalone.ear_differs(claims, record)
        assert any(n.startswith(f"its {device['submod']} status") for n in named), named
        said["ear.status"] = was


@settings(max_examples=100, deadline=None)
@given(
    record=_composite()
    | st.builds(_record, st.lists(_JSON | _DEVICE, max_size=4), st.lists(_JSON, max_size=3))
    | st.dictionaries(st.sampled_from(["verdict", "devices", "worker", "policy"]), _JSON),
    claims=st.dictionaries(
        st.sampled_from(["submods", "ear.status", "attestation-ledger.worker"]),
        st.dictionaries(st.sampled_from([CPU, "gpu0", "switch2", "x"]), _JSON, max_size=3) | _JSON,
        max_size=3,
    ),
)
def test_any_claims_and_record_compare_without_raising_and_alike(record, claims) -> None:
    named = ear_disagreements(claims, record)
    assert named == standalone.ear_differs(claims, record)
    assert all(isinstance(n, str) and n for n in named)
