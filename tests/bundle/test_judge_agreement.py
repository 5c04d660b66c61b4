"""The standalone verifier's judge agrees with the project's on every document.

Differential fuzzing (issue #10, item 5): real-shaped documents from the simulated PKI are
mutated structurally (CBOR types, lengths, missing, extra and duplicate fields, nulls, empty
values, nested junk, huge integers, tags, envelope changes) and re-signed by the simulated
NSM so that they get past the signature; the project's verifier (through the intake's judge,
as the portal's re-verify and verify-bundle use it) and the standalone judge shipped in every
bundle must reach the same status and the same reason codes on every one. A seeded
generator: ``ATTEST_LEDGER_FUZZ_CASES`` runs more than the default.
"""

from __future__ import annotations

import contextlib
import os
import random
from datetime import timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509

from attest_ledger.bundles import verify_bundle as standalone
from attest_ledger.explain import judge_again
from attest_ledger.policy_store import PolicyConfig
from enclave_worker.simulated_nsm import encode_payload
from tests.support import SIM_AT, anchor_for, simulated_nsm, simulated_pki
from verifier import NitroVerifier, ResultHash

CASES = int(os.environ.get("ATTEST_LEDGER_FUZZ_CASES", "3000"))
RESULT = ResultHash.of(b"the result")


@pytest.fixture(scope="module")
def world():
    pki = simulated_pki()
    other = simulated_pki()
    nsm = simulated_nsm(pki, image="inference-v1")
    anchor = anchor_for(pki)
    snapshot = {
        "images": [
            {"name": "inference-v1", "pcrs": {str(i): nsm.pcrs[i].hex() for i in (0, 1, 2)}},
            {"name": "other", "pcrs": {"0": "11" * 48}},
        ],
        "allow_debug": False,
        "max_age_seconds": 300,
        "clock_skew_seconds": 60,
        "workers": {"w": ["inference-v1", "other"], "debugger": ["inference-v1"]},
    }
    debug_snapshot = {**snapshot, "allow_debug": True, "max_age_seconds": None}
    return {
        "pki": pki,
        "other": other,
        "nsm": nsm,
        "verifier": NitroVerifier(trust_anchor=anchor),
        "anchor": (x509.load_der_x509_certificate(anchor.der), anchor.der),
        "snapshots": (snapshot, debug_snapshot),
    }


def both(world, evidence: bytes, snapshot: dict, worker: str, at, result_hash) -> tuple:  # noqa: PLR0917 - a test helper read beside its callers
    config = PolicyConfig.from_snapshot(snapshot, 1)
    policy = config.for_worker(worker)
    status, _, reasons = judge_again(evidence, world["verifier"], policy, result_hash, at=at)
    ours = (status, {code for code, _ in reasons})
    binding = standalone.binding_of(str(result_hash)) if result_hash is not None else None
    theirs = standalone.judge(
        "aws-nitro-enclave",
        evidence,
        [world["anchor"]],
        standalone.worker_policy(snapshot, worker),
        at,
        binding,
    )
    return ours, theirs


# --- the mutations -------------------------------------------------------------------------

JUNK: list[Any] = [
    None, 0, -1, 1, 2**63, 2**64 + 5, -(2**64) - 5, True, False, 1.5, float("nan"), "",
    "text", "é" * 200, b"", b"\x00", b"x" * 47, b"x" * 48, b"x" * 49, b"x" * 1024,
    b"x" * 1025, [], [b""], [b"x"] * 11, {}, {0: b"x" * 48}, {"a": 1}, [[[[[[[[[[1]]]]]]]]]],
    cbor2.CBORTag(1, 5), cbor2.CBORTag(18, b""), cbor2.CBORSimpleValue(99),
]  # fmt: skip
FIELDS = ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle",
          "public_key", "user_data", "nonce")  # fmt: skip


def mutate_fields(rng: random.Random, world, fields: dict[str, Any]) -> dict[str, Any]:
    pki, other = world["pki"], world["other"]
    name = rng.choice(FIELDS)
    choice = rng.randrange(16)
    if choice == 0:
        fields.pop(name, None)
    elif choice == 1:
        fields[rng.choice(["extra", "PCRS", "nitrotpm_pcrs", "pcrs "])] = rng.choice(JUNK)
    elif choice == 2:
        fields[name] = rng.choice(JUNK)
    elif choice == 3:
        fields["module_id"] = rng.choice(["", "a", "é" * 128, "x" * 256, "x" * 257, "\x00"])
    elif choice == 4:
        fields["timestamp"] = rng.choice(
            [10**12 - 1, 10**12, 253_402_300_799_999, 253_402_300_799_999 + 1, 1780315200,
             fields["timestamp"] - 301_000, fields["timestamp"] - 299_000,
             fields["timestamp"] + 61_000, fields["timestamp"] + 59_000, 2**64 - 1]
        )  # fmt: skip
    elif choice == 5:
        pcrs = dict(fields["pcrs"])
        index = rng.choice([0, 1, 2, 3, 15, 31, 32, -1, "0", True])
        pcrs[index] = rng.choice([bytes(48), b"\x01" * 48, b"x" * 47, None, "00"])
        fields["pcrs"] = pcrs
    elif choice == 6:
        fields["pcrs"] = rng.choice([{}, {i: bytes(48) for i in range(33)}, [bytes(48)]])
    elif choice == 7:  # a NitroTPM document
        fields["nitrotpm_pcrs"] = {i: b"\x02" * 48 for i in range(rng.choice([1, 24, 25]))}
        if rng.random() < 0.8:
            fields.pop("pcrs", None)
    elif choice == 8:
        bundle = list(fields["cabundle"])
        move = rng.randrange(5)
        if move == 0:
            bundle.reverse()
        elif move == 1:
            bundle = bundle[1:]
        elif move == 2:
            bundle[0] = other.cabundle()[0]
        elif move == 3:
            bundle.append(bundle[-1])
        else:
            bundle[rng.randrange(len(bundle))] = rng.choice([b"\x30\x03\x02\x01\x01", b"x"])
        fields["cabundle"] = bundle
    elif choice == 9:
        fields["certificate"] = rng.choice(
            [pki.cabundle()[-1], other.leaf.der, b"\x30\x00", pki.leaf.der + b"\x00"]
        )
    elif choice == 10:
        fields["user_data"] = rng.choice(
            [
                None,
                b"",
                RESULT.user_data(),
                RESULT.user_data()[:-1],
                ResultHash.of(b"x").user_data(),
            ]
        )
    elif choice == 11:
        fields[rng.choice(["public_key", "nonce"])] = rng.choice([None, b"", b"k" * 1024])
    elif choice == 12:
        fields["digest"] = rng.choice(["SHA256", "sha384", "SHA384", b"SHA384"])
    elif choice == 13:
        fields["pcrs"] = {**fields["pcrs"], 0: bytes(48), 1: bytes(48), 2: bytes(48)}  # debug
    elif choice == 14:
        fields["timestamp"] = rng.choice([True, 1.78e12, -5, "1780315200000"])
    else:
        fields = dict(reversed(list(fields.items())))  # another key order
    return fields


def encode(rng: random.Random, fields: dict[str, Any]) -> bytes:
    move = rng.randrange(16)
    try:
        if move == 0:
            return encode_payload(fields, definite_length=True)
        if move == 1:  # a duplicated key, which only a hand-written map can hold
            key = rng.choice(list(fields) or ["module_id"])
            body = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in fields.items())
            return b"\xbf" + body + cbor2.dumps(key) + cbor2.dumps(fields.get(key)) + b"\xff"
        if move == 2:
            return encode_payload(fields) + rng.choice([b"\x00", b"\xff", b"\xa0"])
        if move == 3:
            return cbor2.dumps(rng.choice([[1, 2], "text", 5, None, {1: 2}]))
        if move == 4:
            return encode_payload(fields)[: rng.randrange(1, 40)]
        return encode_payload(fields)
    except (TypeError, ValueError, cbor2.CBOREncodeError):
        return b"\xa0"


def envelope(rng: random.Random, world, payload: bytes) -> bytes:
    nsm = world["nsm"]
    move = rng.randrange(24)
    if move == 0:
        return nsm.sign(payload, tagged=True)
    if move == 1:
        return b"\xd8\x12" + nsm.sign(payload)  # tag 18, written long
    if move == 2:
        return rng.choice([b"\xd3", b"\xd8\x13", b"\xdc", b"\xd9\x00"]) + nsm.sign(payload)
    if move == 3:
        return nsm.sign(payload, protected=rng.choice([b"\xa1\x01\x26", b"", b"\xa0"]))
    signed = nsm.sign(payload)
    item = cbor2.loads(signed)
    if move == 4:
        item[1] = rng.choice([{4: b"k"}, None, [], {}])
    elif move == 5:
        item[3] = item[3][: rng.choice([0, 95])] + rng.choice([b"", b"\x00\x00"])
    elif move == 6:
        item[3] = bytes([item[3][0] ^ 1]) + item[3][1:]  # signature_invalid
    elif move == 7:
        item = item[: rng.randrange(4)] if rng.random() < 0.5 else [*item, b""]
    elif move == 8:
        return signed + rng.choice([b"\x00", b"\x00" * 17_000])  # trailing, or oversize
    elif move == 9:
        item[2] = rng.choice([b"", "text", None])
    elif move == 10:
        item[0] = rng.choice([{1: -35}, "a1013822", None])
    else:
        return signed
    return cbor2.dumps(item)


def case(rng: random.Random, world) -> tuple:
    nsm = world["nsm"]
    at = SIM_AT + timedelta(milliseconds=rng.choice([0, 1_500, 299_000, 3 * 3600_000]))
    fields = nsm.payload_fields(
        user_data=RESULT.user_data() if rng.random() < 0.8 else None,
        nonce=os.urandom(32) if rng.random() < 0.7 else None,
        timestamp=at - timedelta(milliseconds=rng.choice([0, 1_000, 250_000])),
    )
    for _ in range(rng.choice([0, 0, 1, 1, 1, 2, 3])):
        # a mutation of a field an earlier one already changed may not apply: then skip it
        with contextlib.suppress(TypeError, KeyError, AttributeError, IndexError, ValueError):
            fields = mutate_fields(rng, world, dict(fields))
    evidence = envelope(rng, world, encode(rng, fields))
    snapshot = world["snapshots"][rng.random() < 0.2]
    worker = rng.choice(["w", "w", "w", "debugger", "nobody"])
    result_hash = RESULT if rng.random() < 0.9 else ResultHash.of(b"another")
    return evidence, snapshot, worker, at, result_hash


def test_both_judges_agree_on_mutated_resigned_documents(world) -> None:
    rng = random.Random(10_05)
    seen: dict[tuple, int] = {}
    for n in range(CASES):
        evidence, snapshot, worker, at, result_hash = case(rng, world)
        ours, theirs = both(world, evidence, snapshot, worker, at, result_hash)
        assert ours == theirs, (n, evidence.hex(), worker, at, ours, theirs)
        key = (ours[0], tuple(sorted(ours[1])))
        seen[key] = seen.get(key, 0) + 1
    codes = {code for _, reasons in seen for code in reasons}
    # the generator reaches every stage of the judgement, not only the parser
    for code in ("malformed", "oversize", "untrusted_root", "chain_invalid",
                 "signature_invalid", "pcr_mismatch", "debug_mode", "document_too_old",
                 "document_from_future", "result_binding_mismatch", "no_reference_values",
                 "evidence_kind_mismatch", "expired"):  # fmt: skip
        assert code in codes, (code, sorted(seen.items()))
    assert ("affirming", ()) in seen


def test_real_aws_documents_are_judged_alike(world) -> None:
    """Real AWS documents (every kind, debug and empty fields included) at their own time and
    later, against AWS's root, under a policy with and without their PCRs."""
    from tests.support import REAL_DOCUMENTS
    from verifier import AWS_NITRO_ROOT_G1_SHA256, aws_nitro_root_g1, parse_evidence

    aws = aws_nitro_root_g1()
    assert aws.fingerprint == AWS_NITRO_ROOT_G1_SHA256
    real = {**world, "verifier": NitroVerifier(), "anchor": (aws.certificate, aws.der)}
    for doc in REAL_DOCUMENTS:
        raw = doc.read()
        _, document = parse_evidence(raw)
        pcrs = {str(i): document.pcrs[i].hex() for i in (0, 1, 2) if i in document.pcrs}
        snapshot = {
            "images": [{"name": "real", "pcrs": pcrs}], "allow_debug": doc.debug,
            "max_age_seconds": 300, "clock_skew_seconds": 60, "workers": {"w": ["real"]},
        }  # fmt: skip
        for at in (doc.timestamp, doc.timestamp + timedelta(days=1)):
            ours, theirs = both(real, raw, snapshot, "w", at, None)
            assert ours == theirs, (doc.file, at)
        if doc.kind == "aws-nitro-enclave":
            assert both(real, raw, snapshot, "w", doc.timestamp, None)[0][1] == set()


@pytest.mark.parametrize(
    ("where", "offset_ms", "code"),
    [
        ("not_after", 0, None),  # the last instant of the leaf's window: valid
        ("not_after", 1, "expired"),  # skew never extends a certificate's life
        ("not_after", 59_000, "expired"),
        ("not_before", -60_000, None),  # skew lets a certificate start up to 60 s late
        ("not_before", -60_001, "not_yet_valid"),
    ],
)
def test_clock_skew_applies_to_not_yet_valid_only_in_both(world, where, offset_ms, code) -> None:
    """Regression (issue #10, item 5): the standalone judge tolerated the skew on both sides
    of a certificate's window, so a document judged just after its leaf expired passed there
    and failed in the project. One policy: skew for not-yet-valid certificates and documents
    from the future, never for expiry."""
    leaf = world["pki"].leaf.certificate
    edge = leaf.not_valid_after_utc if where == "not_after" else leaf.not_valid_before_utc
    at = edge + timedelta(milliseconds=offset_ms)
    evidence = world["nsm"].attest(user_data=RESULT.user_data(), timestamp=at)
    snapshot = {**world["snapshots"][0], "max_age_seconds": None}
    ours, theirs = both(world, evidence, snapshot, "w", at, RESULT)
    assert ours == theirs
    assert ours == (("affirming", set()) if code is None else ("contraindicated", {code}))
