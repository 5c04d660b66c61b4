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
import hashlib
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from attest_ledger.bundles import verify_bundle as standalone
from attest_ledger.explain import judge_again
from attest_ledger.policy_store import PolicyConfig
from enclave_worker.simulated_nsm import encode_payload
from tests.enclave_worker.snp_support import load_certificate, snp_chip, snp_platform
from tests.support import FIXTURES, SIM_AT, anchor_for, simulated_nsm, simulated_pki
from tests.verifier.snp import pki
from verifier import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    NitroVerifier,
    ResultHash,
    SnpVerifier,
    TrustAnchor,
)

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


# --- AMD SEV-SNP ----------------------------------------------------------------------------
# Reports from three sources are mutated in every region of the layout, with their
# endorsements, times and policies: the simulated platform's (Genoa, Turin; its chip re-signs
# whatever the body holds), the test PKI's (Milan: a VCEK, a VLEK through an ASVK, CRLs) and
# AMD's real ones (tests/fixtures/snp, at 2025-09-01 when each VEK is valid; they cannot be
# re-signed, so only their bytes, keys, times and policies change). Both judges see each
# case through a worker policy built from a recorded policy snapshot, as a bundle does.

SNP_KIND = "amd-sev-snp"
AMD_FIXTURES = FIXTURES / "snp"
REAL_AT = datetime(2025, 9, 1, tzinfo=UTC)


def _pem_ders(name: str) -> list[bytes]:
    return [
        c.public_bytes(Encoding.DER)
        for c in x509.load_pem_x509_certificates((AMD_FIXTURES / name).read_bytes())
    ]


@dataclass
class Source:
    """Where a case's report comes from: its body (None: a real report, not re-signable), the
    key that signs it, the endorsements it comes with, the times that matter."""

    name: str
    body: bytes | None
    key: ec.EllipticCurvePrivateKey | None
    report: bytes
    endorsements: list[tuple[str, bytes]]
    at: datetime
    vek: x509.Certificate


@pytest.fixture(scope="module")
def snp_world():
    genoa, turin = snp_platform("Genoa"), snp_platform("Turin")
    milan = pki.milan_pki()
    fields = pki.ReportFields()
    vcek, vlek = milan.vcek(fields), milan.vlek(fields)
    vlek_fields = pki.ReportFields(flags=1 << 2, chip_id=bytes(64))
    real = {
        product: (_pem_ders(f"amd_{product}_ask_ark_asvk.pem"))
        for product in ("milan", "genoa", "turin")
    }
    real_arks = {p: ders[1] for p, ders in real.items()}
    shipped = {
        hashlib.sha256(d).hexdigest(): d for ders in real.values() for d in (ders[0], ders[2])
    }
    sim_arks = [snp_chip("Genoa").pki.ark.der, snp_chip("Turin").pki.ark.der]
    configured = [*sim_arks, milan.ark, real_arks["genoa"]]
    sources = []
    for name, platform in (("sim-genoa", genoa), ("sim-turin", turin)):
        chip = platform.chip
        body = platform.fields(bytes(64)).body()
        sources.append(
            Source(name, body, chip.vcek_key, b"",
                   [(e.kind, e.data) for e in chip.endorsements()], SIM_AT,
                   load_certificate(chip.vcek))
        )  # fmt: skip
    for name, flds, vek, signer in (
        ("milan-vcek", fields, vcek, ("ask", milan.ask)),
        ("milan-vlek", vlek_fields, vlek, ("asvk", milan.asvk)),
    ):
        sources.append(
            Source(name, flds.body(), vek.key, b"", [(name[6:], vek.der), signer], pki.AT,
                   load_certificate(vek.der))
        )  # fmt: skip
    for report, key, kind in (
        ("virtee_snp_report_milan.bin", "virtee_snp_vcek_milan.der", "vcek"),
        ("trustee_snp_test-vlek-report.bin", "trustee_snp_test-vlek.der", "vlek"),
        ("snp_oak_genoa_v5_report.bin", "snp_oak_genoa_vcek.der", "vcek"),
    ):
        der = (AMD_FIXTURES / key).read_bytes()
        sources.append(
            Source(f"real-{report[:6]}", None, None, (AMD_FIXTURES / report).read_bytes(),
                   [(kind, der)], REAL_AT, load_certificate(der))
        )  # fmt: skip
    rogue = pki.rogue_pki()
    pool = [  # endorsements a case may add, or put in place of one
        ("vcek", snp_chip("Genoa").vcek), ("vcek", snp_chip("Turin").vcek), ("vcek", vcek.der),
        ("vlek", vlek.der), ("vcek", vlek.der), ("vlek", vcek.der),
        ("vcek", (AMD_FIXTURES / "trustee_snp_test-vcek-invalid-new.der").read_bytes()),
        ("vcek", (AMD_FIXTURES / "snp_oak_genoa_vcek.der").read_bytes()),
        ("ask", rogue.ask), ("ask", real["genoa"][0]), ("ask", real["milan"][0]),
        ("ask", milan.asvk), ("asvk", milan.ask), ("asvk", real["milan"][2]),
        ("ask", snp_chip("Turin").pki.ask.der), ("ask", milan.ask),
        ("ark", rogue.ark), ("ark", milan.ark), ("ark", real_arks["genoa"]),
        ("ark", real_arks["turin"]), ("ark", sim_arks[0]), ("ark", sim_arks[1]),
        ("crl", pki.crl("ARK-Milan", milan.ark_key, [])),
        ("crl", pki.crl("ARK-Milan", milan.ark_key, [0x10001, 0x10101])),
        ("crl", pki.crl("ARK-Milan", milan.ark_key, [5], next_update=pki.AT)),
        ("crl", pki.crl("ARK-Milan", milan.ark_key, [], last_update=pki.AT + timedelta(hours=2))),
        ("crl", pki.crl("ARK-Milan", rogue.ark_key, [])),
        ("crl", pki.crl("ARK-Turin", milan.ark_key, [])),
        ("crl", pki.crl_without_next_update("ARK-Milan", milan.ark_key)),
        ("ask", b"\x30\x03\x02\x01\x01"), ("vcek", b"junk"), ("crl", b"\x30\x00"),
        ("ask", b"\x00" * (64 * 1024 + 1)),
    ]  # fmt: skip
    return {
        "sources": sources,
        "pool": pool,
        "real": (SnpVerifier(), [_anchor(d) for d in real_arks.values()], shipped),
        "configured": (
            SnpVerifier(
                trust_anchors=[
                    TrustAnchor.from_der(d, name=str(i)) for i, d in enumerate(configured)
                ]
            ),
            [_anchor(d) for d in configured],
            shipped,
        ),
    }


def _anchor(der: bytes) -> tuple[x509.Certificate, bytes]:
    return x509.load_der_x509_certificate(der), der


def snp_both(world, case: dict[str, Any]) -> tuple:
    """(the project's, the standalone's) (status, codes) of one case."""
    verifier, anchors, shipped = world[case["trust"]]
    config = PolicyConfig.from_snapshot(case["snapshot"], 1)
    policy = config.for_worker(case["worker"], SNP_KIND)
    evidence = Evidence(
        EvidenceKind.AMD_SEV_SNP,
        case["report"],
        tuple(Endorsement(EndorsementKind(k), d) for k, d in case["endorsements"]),
    )
    status, _, reasons = judge_again(evidence, verifier, policy, case["result_hash"], at=case["at"])
    theirs = standalone.judge(
        SNP_KIND, case["report"], anchors,
        standalone.worker_policy(case["snapshot"], case["worker"], SNP_KIND), case["at"],
        standalone.binding_of(str(case["result_hash"])), case["endorsements"], shipped,
    )  # fmt: skip
    return (status, {code for code, _ in reasons}), theirs


#: (offset, size) of the report's fields and reserved regions, bytes 0x000..0x29F
REGIONS = [
    (0x00, 4), (0x04, 4), (0x08, 8), (0x10, 16), (0x20, 16), (0x30, 4), (0x34, 4), (0x38, 8),
    (0x40, 8), (0x48, 4), (0x4C, 4), (0x50, 64), (0x90, 48), (0xC0, 32), (0xE0, 48),
    (0x110, 48), (0x140, 32), (0x160, 32), (0x180, 8), (0x188, 3), (0x18B, 21), (0x1A0, 64),
    (0x1E0, 8), (0x1E8, 4), (0x1EC, 4), (0x1F0, 8), (0x1F8, 8), (0x200, 8), (0x208, 152),
]  # fmt: skip
U32 = {  # interesting values of the 32- and 64-bit fields
    0x00: [0, 1, 2, 3, 4, 5, 6], 0x30: [0, 1, 2, 3, 4, 0xFFFFFFFF, 0xFFFFFFFE],
    0x34: [0, 1, 2], 0x48: [0, 1, 2, 3, 4, 5, 6, 8, 0x1C, 0x20, 0x1F],
    0x08: [0x30000, 0x20000, 0x10000, 0x0, 0x1B0000, 0x70000, 0x4030000, 0x3FF0000, 0x50000],
}  # fmt: skip


def mutate_body(rng: random.Random, body: bytearray, binding: bytes) -> None:
    offset, size = rng.choice(REGIONS)
    move = rng.randrange(6)
    if offset in U32 and move < 3:
        body[offset : offset + size] = rng.choice(U32[offset]).to_bytes(size, "little")
    elif offset == 0x50 and move < 4:  # report_data: the binding, none, another
        half = rng.choice([hashlib.sha256(binding).digest(), bytes(32), b"\x01" * 32])
        body[0x50:0x90] = rng.randbytes(32) + half
    elif offset in (0x180, 0x38, 0x1E0, 0x1F0) and move < 4:  # a TCB: another SPL, reserved
        body[offset + rng.randrange(8)] ^= rng.choice([1, 0x80])
    elif offset == 0x188 and move < 4:  # CPUID: another product line, or none we know
        cpuids = [(0x19, 1, 1), (0x19, 0x11, 1), (0x1A, 2, 0), (0x19, 0x20, 0), (0x17, 0, 0)]
        body[0x188:0x18B] = bytes(rng.choice([*cpuids, (0, 0, 0)]))
    elif offset == 0x1A0 and move < 4:
        body[0x1A0:0x1E0] = rng.choice([bytes(64), rng.randbytes(8) + bytes(56), rng.randbytes(64)])
    elif move < 5:
        body[offset + rng.randrange(size)] ^= 1 << rng.randrange(8)
    else:
        body[offset : offset + size] = bytes(size)


def snp_snapshot(rng: random.Random, report: bytes) -> tuple[dict[str, Any], str]:
    """A recorded policy with SEV-SNP images (the report's own values or others) and
    settings, and the worker that submitted."""
    own = {"measurement": report[0x90:0xC0].hex()}
    for name, (at, size) in (("host_data", (0xC0, 32)), ("id_key_digest", (0xE0, 48)),
                             ("author_key_digest", (0x110, 48)), ("family_id", (0x10, 16)),
                             ("image_id", (0x20, 16))):  # fmt: skip
        if rng.random() < 0.2:
            own[name] = report[at : at + size].hex() if rng.random() < 0.6 else "ab" * size
    if rng.random() < 0.1:
        own["measurement"] = own["measurement"].upper()
    other = {"measurement": "11" * 48, "host_data": report[0xC0:0xE0].hex()}
    schemes: dict[str, Any] = {}
    for name in ("allow_debug", "allow_smt", "allow_migration_agent"):
        if rng.random() < 0.3:
            schemes[name] = rng.random() < 0.5
    if rng.random() < 0.3:
        schemes["max_vmpl"] = rng.randrange(4)
    if rng.random() < 0.3:
        schemes["min_tcb"] = {
            c: rng.choice([0, 1, 9, 25, 84, 200, 255])
            for c in rng.sample(
                ["bootloader", "tee", "snp", "microcode", "fmc"], rng.randrange(1, 4)
            )
        }
    snapshot = {
        "images": [
            {"name": "a-own", "kind": SNP_KIND, "reference": own},
            {"name": "b-other", "kind": SNP_KIND, "reference": other},
            {"name": "nitro", "pcrs": {"0": "22" * 48}},
        ],
        "allow_debug": rng.random() < 0.5,
        "max_age_seconds": 300,
        "clock_skew_seconds": rng.choice([0, 60, 3600]),
        "workers": {"w": ["a-own", "b-other"], "other-only": ["b-other"], "nitro-only": ["nitro"]},
    }
    if schemes:
        snapshot["schemes"] = {SNP_KIND: schemes}
    worker = rng.choice(["w", "w", "w", "w", "other-only", "nitro-only", "nobody"])
    return snapshot, worker


def snp_case(rng: random.Random, world) -> dict[str, Any]:
    source: Source = rng.choice(world["sources"])
    result_hash = RESULT if rng.random() < 0.9 else ResultHash.of(b"another")
    binding = RESULT.user_data()
    if source.body is not None:
        body = bytearray(source.body)
        body[0x50:0x90] = rng.randbytes(32) + hashlib.sha256(binding).digest()
        debug = rng.random() < 0.1  # a debug guest, which a policy may allow
        if debug:
            body[0x0A] |= 0x08  # guest policy bit 19
        if rng.random() < 0.05:
            body[0x0A] |= 0x04  # bit 18: a migration agent may be associated
        for _ in range(rng.choice([0, 0, 1, 1, 1, 2, 3])):
            mutate_body(rng, body, binding)
        report = pki.sign_report(bytes(body), source.key)
    else:
        report, debug = source.report, False
    report = bytearray(report)
    move = rng.randrange(12)
    if move == 0:  # a byte of the signed body, or of the signature, changed after signing
        report[rng.randrange(0x330)] ^= 1 << rng.randrange(8)
    elif move == 1:  # the unused high bytes of R or S, or the reserved bytes after them
        report[rng.choice([0x2D0, 0x2E7, 0x318, 0x32F, 0x330, 0x49F])] = 1
    elif move == 2:
        report = report[: rng.choice([0, 1, 0x2A0, 0x49F])]
    elif move == 3:
        report += rng.choice([b"\x00", b"\x00" * 4096])
    elif move == 4:  # R or S out of range
        report[0x2A0:0x2D0] = rng.choice([bytes(48), b"\xff" * 48])
    endorsements = list(source.endorsements)
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        change = rng.randrange(6)
        if change == 0 and endorsements:
            endorsements.pop(rng.randrange(len(endorsements)))
        elif change == 1 and endorsements:
            endorsements[rng.randrange(len(endorsements))] = rng.choice(world["pool"])
        elif change == 2:
            endorsements.insert(rng.randrange(len(endorsements) + 1), rng.choice(world["pool"]))
        elif change == 3:
            endorsements.reverse()
        elif change == 4:
            endorsements.append(rng.choice([e for e in world["pool"] if e[0] == "crl"]))
        else:
            endorsements = endorsements + [world["pool"][-9]] * 8  # too many
    vek = source.vek
    at = rng.choice([
        source.at, source.at, source.at, vek.not_valid_before_utc - timedelta(seconds=59),
        vek.not_valid_before_utc - timedelta(seconds=61), vek.not_valid_after_utc,
        vek.not_valid_after_utc + timedelta(seconds=1), source.at + timedelta(days=3650),
    ])  # fmt: skip
    snapshot, worker = snp_snapshot(rng, bytes(report).ljust(0x4A0, b"\0"))
    if debug and rng.random() < 0.7:
        snapshot["schemes"] = {SNP_KIND: {"allow_debug": True}}
    if source.name.startswith("milan") and rng.random() < 0.1:  # revoked, or not covered
        endorsements.append(rng.choice([e for e in world["pool"] if e[0] == "crl"][:3]))
    if rng.random() < 0.05:
        snapshot = {**snapshot, "images": snapshot["images"][2:], "workers": {"w": ["nitro"]}}
    trust = "real" if source.name.startswith("real") and rng.random() < 0.8 else "configured"
    return {
        "report": bytes(report), "endorsements": endorsements, "at": at, "snapshot": snapshot,
        "worker": worker, "result_hash": result_hash, "trust": trust, "source": source.name,
    }  # fmt: skip


SNP_CASES = int(os.environ.get("ATTEST_LEDGER_FUZZ_CASES", "3000"))


def test_both_judges_agree_on_mutated_snp_reports(snp_world) -> None:
    rng = random.Random(11_05)
    seen: dict[tuple, int] = {}
    for n in range(SNP_CASES):
        case = snp_case(rng, snp_world)
        ours, theirs = snp_both(snp_world, case)
        assert ours == theirs, (n, case["source"], case["report"].hex(), case, ours, theirs)
        key = (ours[0], tuple(sorted(ours[1])))
        seen[key] = seen.get(key, 0) + 1
    codes = {code for _, reasons in seen for code in reasons}
    # the generator reaches every stage of the judgement, not only the parser
    for code in ("malformed", "oversize", "unsupported", "endorsement_missing",
                 "endorsement_mismatch", "untrusted_root", "chain_invalid", "expired",
                 "not_yet_valid", "revoked", "signature_invalid", "measurement_mismatch",
                 "host_data_mismatch", "debug_mode", "smt_not_allowed",
                 "migration_agent_not_allowed", "vmpl_too_high", "tcb_too_old",
                 "result_binding_mismatch", "result_binding_missing",
                 "no_reference_values"):  # fmt: skip
        assert code in codes, (code, sorted(seen.items()))
    assert ("affirming", ()) in seen
    assert ("warning", ()) in seen
