"""The standalone verifier's Intel DCAP judge agrees with the project's on every quote.

Differential fuzzing (issue #12): Intel's real quotes with their collateral at in-window
instants and at the windows' edges, and quotes of the simulated Intel platforms (TDX v4 and
v5, SGX) mutated in every region and re-signed where the simulation holds the key (the quote
by the attestation key, the QE report by the PCK key, TCB info and QE identity by the TCB
Signing key), with wrong, missing, duplicated, foreign, expired and revoking collateral and
policy variants. The project's verifier (through :func:`attest_ledger.explain.judge_again`,
as the portal's re-verify and verify-bundle use it) and the standalone judge shipped in every
bundle must reach the same status and the same reason codes on every one. A seeded
generator: ``ATTEST_LEDGER_FUZZ_CASES`` runs more than the default, ``ATTEST_LEDGER_FUZZ_SEED``
another sequence.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from attest_ledger.bundles import verify_bundle as standalone
from attest_ledger.explain import judge_again
from attest_ledger.policy_store import PolicyConfig
from enclave_worker import SimulatedSgxEnclave, SimulatedTdxPlatform
from enclave_worker.intel_collateral import TcbStanding, pcs_body
from tests.enclave_worker.intel_support import intel_pki, sgx_enclave, tdx_platform
from tests.support import SIM_AT
from tests.verifier.tdx.support import GTG_V5, OUTDATED, PHALA_SGX, PHALA_TDX, REAL_QUOTES
from verifier import Endorsement, Evidence, ResultHash, TrustAnchor
from verifier.tdx import DcapVerifier, intel_sgx_root_ca

CASES = int(os.environ.get("ATTEST_LEDGER_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("ATTEST_LEDGER_FUZZ_SEED", "20261130"))
RESULT = ResultHash.of(b"the result")
NONCE = bytes(range(32))
TDX, SGX = "intel-tdx", "intel-sgx"
WORKER = "w"


def raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@dataclass
class Case:
    """One quote, its collateral, the policy snapshot, the instant and the binding."""

    kind: str
    quote: bytes
    endorsements: list[tuple[str, bytes]]
    anchors: list[bytes]
    snapshot: dict[str, Any] | None
    at: datetime
    result_hash: ResultHash | None = RESULT
    notes: list[str] = field(default_factory=list)


class World:
    def __init__(self) -> None:
        self.pki = intel_pki()
        self.root_der = self.pki.root.der
        self.intel_der = intel_sgx_root_ca().der
        self.tdx = tdx_platform()
        self.tdx5 = self.tdx.variant(version=5)
        self.sgx = sgx_enclave()
        binding = _report_data()
        self.platforms: list[SimulatedTdxPlatform | SimulatedSgxEnclave] = [
            self.tdx,
            self.tdx5,
            self.tdx.variant(debug=True),
            self.tdx.variant(image="other-td"),
            self.sgx,
            self.sgx.variant(debug=True),
            self.sgx.variant(image="other-enclave"),
        ]
        self.quotes = {id(p): p.quote(binding) for p in self.platforms}
        self.verifiers: dict[tuple[bytes, ...], DcapVerifier] = {}
        self.sim_anchor = TrustAnchor.from_der(self.root_der, name="simulated Intel root")

    def verifier(self, anchors: list[bytes]) -> DcapVerifier:
        key = tuple(sorted(anchors))
        if key not in self.verifiers:
            self.verifiers[key] = DcapVerifier(
                trust_anchors=[TrustAnchor.from_der(d, name=f"root {i}") for i, d in enumerate(key)]
            )
        return self.verifiers[key]


def _report_data(result: ResultHash | None = RESULT) -> bytes:
    half = result.report_data_half() if result is not None else bytes(32)
    return NONCE + half


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def snapshot_for(world: World, rng: random.Random) -> dict[str, Any] | None:
    """A recorded policy: the simulated TD's and enclave's images (or others), settings."""
    if rng.random() < 0.08:
        return None  # recorded before any policy existed
    td = world.tdx.fields(bytes(64)).to_bytes()
    sgx_body = world.sgx.fields(bytes(64)).to_bytes()
    images: list[dict[str, Any]] = []
    tdx_ref: dict[str, Any] = {"mr_td": td[136:184].hex()}
    if rng.random() < 0.5:
        tdx_ref["rtmr0"] = td[328:376].hex()
    if rng.random() < 0.2:
        tdx_ref[rng.choice(["rtmr3", "mr_owner", "mr_config_id", "mr_owner_config"])] = (
            rng.choice(["00", "11", "ab"]) * 48
        )
    if rng.random() < 0.15:
        tdx_ref["mr_td"] = "22" * 48
    sgx_ref: dict[str, Any] = {}
    if rng.random() < 0.7:
        sgx_ref["mr_enclave"] = sgx_body[64:96].hex() if rng.random() < 0.85 else "33" * 32
    if not sgx_ref or rng.random() < 0.4:
        sgx_ref["mr_signer"] = sgx_body[128:160].hex() if rng.random() < 0.85 else "44" * 32
    if rng.random() < 0.3:
        sgx_ref["isv_prod_id"] = rng.choice([0, 1, 7])
    if rng.random() < 0.3:
        sgx_ref["min_isv_svn"] = rng.choice([0, 1, 5])
    images.append({"name": "td", "kind": TDX, "reference": tdx_ref})
    images.append({"name": "enclave", "kind": SGX, "reference": sgx_ref})
    images.append({"name": "td-other", "kind": TDX, "reference": {"mr_td": "55" * 48}})
    allowed = [n for n in ("td", "enclave", "td-other") if rng.random() < 0.8]
    schemes: dict[str, Any] = {}
    for kind in (TDX, SGX):
        settings: dict[str, Any] = {}
        if rng.random() < 0.2:
            settings["allow_debug"] = True
        if rng.random() < 0.45:
            settings["tcb_status"] = rng.choice(
                [
                    {"OutOfDate": "warning"},
                    {"OutOfDate": "warning", "OutOfDateConfigurationNeeded": "warning"},
                    {"SWHardeningNeeded": "contraindicated"},
                    {"UpToDate": "warning", "ConfigurationNeeded": "contraindicated"},
                    {"OutOfDateConfigurationNeeded": "warning"},
                ]
            )
        if rng.random() < 0.3:
            settings["allowed_advisories"] = rng.choice(
                [[], ["INTEL-SA-00615"], ["INTEL-SA-00289", "INTEL-SA-00615", "INTEL-SA-00001"]]
            )
        if kind == TDX and rng.random() < 0.2:
            settings["xfam_allowed"] = rng.choice(
                [[td[128:136].hex()], ["0300000000000000"], [td[128:136].hex().upper(), "00" * 8]]
            )
        if kind == TDX and rng.random() < 0.2:
            settings["min_tee_tcb_svn"] = rng.choice(
                ["00" * 16, td[0:16].hex(), "ff" + "00" * 15, "00" * 15 + "01"]
            )
        if settings:
            schemes[kind] = settings
    snapshot: dict[str, Any] = {
        "images": sorted(images, key=lambda i: str(i["name"])),
        "allow_debug": False,
        "max_age_seconds": 300,
        "clock_skew_seconds": rng.choice([0, 60, 60, 3600]),
        "workers": {WORKER: allowed},
    }
    if schemes:
        snapshot["schemes"] = schemes
    return snapshot


def both(world: World, case: Case) -> tuple[tuple[str, set[str]], tuple[str, set[str]]]:
    """(project, standalone): status and codes of the case's quote."""
    config = PolicyConfig.from_snapshot(case.snapshot, 1) if case.snapshot is not None else None
    policy = config.for_worker(WORKER, case.kind) if config is not None else None
    evidence = Evidence(
        case.kind, case.quote, tuple(Endorsement(k, d) for k, d in case.endorsements)
    )
    status, _, reasons = judge_again(
        evidence, world.verifier(case.anchors), policy, case.result_hash, at=case.at
    )
    project = (status, {code for code, _ in reasons})
    anchors = [(x509.load_der_x509_certificate(d), d) for d in case.anchors]
    binding = standalone.binding_of(None if case.result_hash is None else str(case.result_hash))
    if case.snapshot is not None:
        assert standalone.policy_problem(case.snapshot) is None
    ours = standalone.judge(
        case.kind,
        case.quote,
        anchors,
        standalone.worker_policy(case.snapshot, WORKER, case.kind),
        case.at,
        binding,
        case.endorsements,
    )
    return project, ours


# --- quote surgery: the layout, written here from Intel's format, and re-signing -----------


def layout(quote: bytes) -> dict[str, int]:
    version = struct.unpack_from("<H", quote, 0)[0]
    body = 48 + (6 if version == 5 else 0)
    size = 384 if version == 3 else struct.unpack_from("<I", quote, 50)[0] if version == 5 else 584
    end = body + size
    sig = end + 4
    qe = sig + 128 + (6 if version != 3 else 0)
    auth = qe + 384 + 64
    (auth_size,) = struct.unpack_from("<H", quote, auth)
    chain = auth + 2 + auth_size + 6
    return {"body": body, "end": end, "sig": sig, "qe": qe, "auth": auth, "chain": chain}


def resign(quote: bytes, platform: SimulatedTdxPlatform | SimulatedSgxEnclave) -> bytes:
    """The QE report signed again by the PCK key and the quote by the attestation key."""
    at = layout(quote)
    qe = platform.quoting_enclave
    report = quote[at["qe"] : at["qe"] + 384]
    quote = quote[: at["qe"] + 384] + raw_sign(qe.pck_key, report) + quote[at["qe"] + 448 :]
    signature = raw_sign(qe.attestation_key, quote[: at["end"]])
    return quote[: at["sig"]] + signature + quote[at["sig"] + 64 :]


def rebind(quote: bytes) -> bytes:
    """The QE report's report_data made to bind the (possibly changed) key and auth data."""
    at = layout(quote)
    key = quote[at["sig"] + 64 : at["sig"] + 128]
    (size,) = struct.unpack_from("<H", quote, at["auth"])
    auth = quote[at["auth"] + 2 : at["auth"] + 2 + size]
    bound = hashlib.sha256(key + auth).digest() + bytes(32)
    start = at["qe"] + 320
    return quote[:start] + bound + quote[start + 64 :]


def flip(data: bytes, rng: random.Random, start: int = 0, end: int | None = None) -> bytes:
    end = len(data) if end is None else end
    if end <= start:
        return data
    at = rng.randrange(start, end)
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]


def mutate_quote(
    quote: bytes, platform: SimulatedTdxPlatform | SimulatedSgxEnclave, rng: random.Random
) -> tuple[bytes, str]:
    at = layout(quote)
    region = rng.choice(
        ["header", "body", "body-signed", "body-fields", "length", "qe-report", "qe-report-signed",
         "qe-signature", "key", "auth", "auth-signed", "chain", "chain-pem", "padding",
         "truncate", "descriptor", "cert-type"]
    )  # fmt: skip
    if region == "header":
        quote = flip(quote, rng, 0, 48)
        return (resign(quote, platform) if rng.random() < 0.7 else quote), region
    if region == "body":
        return flip(quote, rng, at["body"], at["end"]), region
    if region in ("body-signed", "body-fields"):
        if region == "body-fields":  # the bytes policy and TCB evaluation read
            offsets = (
                [0, 1, 2, 64, 112, 120, 128, 136, 184, 232, 280, 328, 472, 520, 560]
                if platform.kind == TDX
                else [0, 16, 48, 64, 128, 256, 258, 320, 352, 20, 100]
            )
            start = at["body"] + rng.choice(offsets)
            quote = quote[:start] + bytes([rng.randrange(256)]) + quote[start + 1 :]
        else:
            quote = flip(quote, rng, at["body"], at["end"])
        return resign(quote, platform), region
    if region == "length":
        value = struct.unpack_from("<I", quote, at["end"])[0] + rng.choice([-1, 1, 64, -64])
        return quote[: at["end"]] + struct.pack("<I", value % 2**32) + quote[
            at["end"] + 4 :
        ], region
    if region in ("qe-report", "qe-report-signed"):
        start = at["qe"] + rng.choice([0, 16, 20, 48, 64, 128, 256, 258, 300, 320, 352, 383])
        quote = quote[:start] + bytes([quote[start] ^ rng.randrange(1, 256)]) + quote[start + 1 :]
        return (resign(quote, platform) if region == "qe-report-signed" else quote), region
    if region == "qe-signature":
        choice = rng.random()
        sig = (
            bytes(64) if choice < 0.2 else b"\xff" * 64 if choice < 0.4 else None
        )  # r, s out of range
        if sig is None:
            return flip(quote, rng, at["qe"] + 384, at["qe"] + 448), region
        return quote[: at["qe"] + 384] + sig + quote[at["qe"] + 448 :], region
    if region == "key":
        quote = flip(quote, rng, at["sig"] + 64, at["sig"] + 128)
        if rng.random() < 0.5:
            quote = resign(rebind(quote), platform)
        return quote, region
    if region in ("auth", "auth-signed"):
        quote = flip(quote, rng, at["auth"] + 2, at["chain"] - 6)
        return (resign(rebind(quote), platform) if region == "auth-signed" else quote), region
    if region == "chain":
        return flip(quote, rng, at["chain"], len(quote)), region
    if region == "chain-pem":
        return _chain_surgery(quote, at, platform, rng), region
    if region == "padding":
        pad = bytes(rng.randrange(1, 100))
        if rng.random() < 0.3:
            pad = pad[:-1] + b"\x01"
        return quote + pad, region
    if region == "truncate":
        return quote[: rng.randrange(0, len(quote))], region
    if region == "descriptor" and struct.unpack_from("<H", quote, 0)[0] == 5:
        start = 48 + rng.randrange(6)
        return quote[:start] + bytes([rng.randrange(256)]) + quote[start + 1 :], region
    if region == "cert-type":
        start = rng.choice([at["sig"] + 128, at["chain"] - 6])
        return quote[:start] + bytes([rng.randrange(8)]) + quote[start + 1 :], region
    return quote, "none"


def _chain_surgery(
    quote: bytes,
    at: dict[str, int],
    platform: SimulatedTdxPlatform | SimulatedSgxEnclave,
    rng: random.Random,
) -> bytes:
    """Another PCK chain in the quote: reordered, short, another root, the other CA's."""
    pki = platform.pki
    leaf = x509.load_der_x509_certificate(platform.quoting_enclave.pck).public_bytes(Encoding.PEM)
    ca = pki.pck_ca(platform.quoting_enclave.ca).pem()
    other_ca = pki.pck_ca("processor" if platform.quoting_enclave.ca == "platform" else "platform")
    root = pki.root_pem()
    real_root = intel_sgx_root_ca().certificate.public_bytes(Encoding.PEM)
    chains = [
        leaf + ca, leaf + ca + root + root, ca + leaf + root, leaf + ca + real_root,
        leaf + other_ca.pem() + root, leaf + leaf + root, b"", b"not pem", root + ca + leaf,
        leaf + ca + root + b"\x00\x00", leaf.replace(b"\n", b"\r\n") + ca + root,
        pki.tcb_signing.pem() + ca + root,
    ]  # fmt: skip
    chain = rng.choice(chains) + b"\x00"
    head = quote[: at["chain"] - 6]
    body = head + struct.pack("<HI", 5, len(chain)) + chain
    version = struct.unpack_from("<H", quote, 0)[0]
    sig_len = len(body) - at["sig"]
    if version != 3:
        inner = len(body) - (at["sig"] + 128 + 6)
        body = body[: at["sig"] + 128] + struct.pack("<HI", 6, inner) + body[at["sig"] + 134 :]
    return body[: at["end"]] + struct.pack("<I", sig_len) + body[at["end"] + 4 :]


# --- collateral surgery --------------------------------------------------------------------


def tcb_text(body: bytes, member: str) -> bytes:
    prefix = b'{"' + member.encode() + b'":'
    return body[len(prefix) : body.rindex(b',"signature":"')]


def mutate_document(text: bytes, rng: random.Random) -> bytes:
    """A structural change anywhere in a TCB info or QE identity (then signed again)."""
    data = json.loads(text)
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node):
                paths.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for index in range(len(node)):
                paths.append((node, index))
                walk(node[index])

    walk(data)
    container, key = rng.choice(paths)
    value = container[key]
    choice = rng.randrange(12)
    if choice == 0 and isinstance(container, dict):
        del container[key]
    elif choice == 1:
        container[key] = None
    elif choice == 2:
        container[key] = rng.choice([True, "x", 1.5, -1, 2**33, [], {}, "00" * 8])
    elif choice == 3 and isinstance(value, int) and not isinstance(value, bool):
        container[key] = max(0, value + rng.choice([-1, 1, 2, 255]))
    elif choice == 4 and isinstance(value, str):
        container[key] = rng.choice(
            [value.lower(), value[:-1], value + "0", "FFFF" + value[4:], "2099-01-01T00:00:00Z",
             "2020-01-01T00:00:00", "Revoked", "OutOfDate", "SWHardeningNeeded", "TD_QE", "QE",
             "SGX", "TDX", "TDX_01", "INTEL-SA-00615", "ConfigurationNeeded", "UpToDate"]
        )  # fmt: skip
    elif choice == 5 and isinstance(value, list) and value:
        container[key] = value[:-1] if rng.random() < 0.5 else [*value, value[-1]]
    elif choice == 6 and isinstance(value, list) and len(value) > 1:
        container[key] = list(reversed(value))
    elif choice == 7 and isinstance(container, dict):
        container["extra"] = 1
    elif choice == 8 and isinstance(value, dict) and "tcbStatus" in value:
        value["tcbStatus"] = rng.choice(standalone.TCB_STATUSES)
        value["advisoryIDs"] = rng.choice([[], ["INTEL-SA-00615"], ["INTEL-SA-00999", "X"]])
    elif choice == 9 and isinstance(value, dict) and "svn" in value:
        value["svn"] = rng.choice([0, 1, 255, 256])
    elif choice == 10 and isinstance(data, dict):
        data["version"] = rng.choice([2, 3, 4])
    else:
        container[key] = value
    return json.dumps(data, separators=(",", ":")).encode()


def swap_kind(endorsements: list[tuple[str, bytes]], rng: random.Random) -> list[tuple[str, bytes]]:
    at = rng.randrange(len(endorsements))
    kinds = ["tcb-info", "qe-identity", "crl", "certificate", "vcek", "ask"]
    out = list(endorsements)
    out[at] = (rng.choice(kinds), out[at][1])
    return out


def collateral_variant(
    world: World,
    platform: SimulatedTdxPlatform | SimulatedSgxEnclave,
    rng: random.Random,
) -> tuple[list[tuple[str, bytes]], datetime, str]:
    """Collateral for ``platform`` (or wrong for it), and an instant to judge it at."""
    issued = SIM_AT + timedelta(days=rng.choice([0, 0, 2, 40]))
    standing = rng.choice(
        [
            TcbStanding(),
            TcbStanding(),
            TcbStanding("UpToDate", ("INTEL-SA-00615",)),
            TcbStanding("SWHardeningNeeded", ("INTEL-SA-00615",)),
            TcbStanding("ConfigurationAndSWHardeningNeeded", ("INTEL-SA-00289", "INTEL-SA-00615")),
            TcbStanding("ConfigurationNeeded"),
            TcbStanding("OutOfDate", ("INTEL-SA-00615",)),
            TcbStanding("OutOfDateConfigurationNeeded"),
            TcbStanding("Revoked"),
            TcbStanding(matching=False),
        ]
    )
    what = rng.choice(
        ["plain"] * 8 + ["fmspc", "revoked-pck", "revoked-ca", "revoked-signer",
         "drop", "duplicate", "reorder", "other-kind", "document", "document", "crl-bytes",
         "garbage", "swap-kind", "many", "tcb-signing-ca", "pcs-whitespace", "signer",
         "signer", "levels", "levels", "levels"]
    )  # fmt: skip
    qe = platform.quoting_enclave
    options: dict[str, Any] = {"at": issued, "standing": standing}
    if what == "fmspc":
        options["fmspc"] = bytes.fromhex("00906ED50000")
    elif what == "revoked-pck":
        options["revoked_pcks"] = [qe.pck_serial, 5]
    elif what == "revoked-ca":
        options["revoked_cas"] = [
            x509.load_der_x509_certificate(world.pki.pck_ca(qe.ca).der).serial_number
        ]
    elif what == "revoked-signer":
        options["revoked_cas"] = [world.pki.tcb_signing.certificate.serial_number]
    endorsements = [(str(e.kind), e.data) for e in platform.collateral(**options)]
    if what == "drop":
        del endorsements[rng.randrange(len(endorsements))]
    elif what == "duplicate":
        endorsements.append(rng.choice(endorsements))
    elif what == "reorder":
        rng.shuffle(endorsements)
    elif what == "other-kind":  # the other TEE's collateral, in place or beside
        other = world.sgx if platform.kind == TDX else world.tdx
        theirs = [(str(e.kind), e.data) for e in other.collateral(at=issued)]
        pick = rng.randrange(len(theirs))
        if rng.random() < 0.5:
            endorsements = [e for e in endorsements if e[0] != theirs[pick][0]] + [theirs[pick]]
        else:
            endorsements = theirs
    elif what == "document":
        index = rng.choice([0, 1])
        member = "tcbInfo" if index == 0 else "enclaveIdentity"
        text = mutate_document(tcb_text(endorsements[index][1], member), rng)
        body = pcs_body(member, text, world.pki.tcb_signing.private_key)
        draw = rng.random()
        if draw < 0.1:
            body = body[:-3] + b'"}'  # the signature one digit short
        elif draw < 0.25:  # the text changed, the signature kept
            old = endorsements[index][1]
            body = old[: len(member) + 4] + text + old[old.rindex(b',"signature":"') :]
        elif draw < 0.3:  # signed by another key (the PCK CA's, not a TCB signer's)
            body = pcs_body(member, text, world.pki.pck_ca(qe.ca).private_key)
        endorsements[index] = (endorsements[index][0], body)
    elif what == "crl-bytes":
        index = rng.choice([2, 3])
        endorsements[index] = ("crl", flip(endorsements[index][1], rng))
    elif what == "garbage":
        endorsements.insert(
            rng.randrange(len(endorsements) + 1),
            (rng.choice(["crl", "certificate", "tcb-info"]), rng.randbytes(rng.randrange(0, 200))),
        )
    elif what == "swap-kind":
        endorsements = swap_kind(endorsements, rng)
    elif what == "many":
        endorsements += [("certificate", world.pki.tcb_signing.der)] * 4
    elif what == "tcb-signing-ca":  # a PCK CA and an unrelated certificate given as well
        endorsements.insert(0, ("certificate", world.pki.pck_ca(qe.ca).der))
        endorsements.insert(
            0,
            (
                "certificate",
                x509.load_der_x509_certificate(world.intel_der).public_bytes(Encoding.DER),
            ),
        )
    elif what == "pcs-whitespace":
        index = rng.choice([0, 1])
        body = endorsements[index][1]
        endorsements[index] = (
            endorsements[index][0],
            b" \n" + body.replace(b'":{', b'" : {', 1) + b"\r\n",
        )
    elif what == "signer":  # another TCB Signing certificate of the root, valid or not
        endorsements = _other_signer(world, endorsements, issued, rng)
    elif what == "levels":  # the QE's or TDX module's own standing, signed again
        endorsements = _other_levels(world, endorsements, rng)
    next_update = issued + timedelta(days=30)
    at = rng.choice(
        [
            *[issued + timedelta(hours=1)] * 6,
            issued - timedelta(seconds=61),
            issued - timedelta(seconds=60),
            issued - timedelta(seconds=1),
            issued,
            next_update - timedelta(seconds=1),
            next_update,
            next_update + timedelta(days=400),
            SIM_AT - timedelta(days=2),  # before the simulated PKI
            SIM_AT + timedelta(days=365 * 40),  # after every certificate
        ]
    )
    return endorsements, at, what


def _other_signer(
    world: World, endorsements: list[tuple[str, bytes]], issued: datetime, rng: random.Random
) -> list[tuple[str, bytes]]:
    """Collateral signed by a new TCB Signing certificate the root issues, valid from or until
    about the collateral's issue date (or a CA, or signed by the PCK CA), given in place of
    the usual one or beside it."""
    key = ec.generate_private_key(ec.SECP256R1())
    root = world.pki.root
    start = issued + timedelta(hours=rng.choice([-48, -48, 0, 2]))
    end = issued + timedelta(hours=rng.choice([1, 3, 48 * 30, 24 * 400]))
    ca = rng.random() < 0.1
    issuer = world.pki.platform_ca if rng.random() < 0.1 else root
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Intel SGX TCB Signing")])
        )
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(rng.randrange(1, 2**64))
        .not_valid_before(min(start, end - timedelta(seconds=1)))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer.private_key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    out = []
    for kind, data in endorsements:
        signed = data
        if kind in ("tcb-info", "qe-identity") and rng.random() < 0.85:
            member = "tcbInfo" if kind == "tcb-info" else "enclaveIdentity"
            signed = pcs_body(member, tcb_text(data, member), key)
        if kind == "certificate" and rng.random() < 0.5:
            continue
        out.append((kind, signed))
    out.insert(rng.randrange(len(out) + 1), ("certificate", certificate))
    return out


def _other_levels(
    world: World, endorsements: list[tuple[str, bytes]], rng: random.Random
) -> list[tuple[str, bytes]]:
    """The QE identity's or the TDX module identity's levels given another status, SVN or
    advisories (the platform's levels stay), signed again by the TCB Signing key."""
    out = list(endorsements)
    index = rng.choice([0, 1])
    member = "tcbInfo" if index == 0 else "enclaveIdentity"
    data = json.loads(tcb_text(out[index][1], member))
    levels = (
        data["tcbLevels"] if index == 1 else [
            level for module in data.get("tdxModuleIdentities", []) for level in module["tcbLevels"]
        ]
    )  # fmt: skip
    for level in levels:
        level["tcbStatus"] = rng.choice(["UpToDate", "OutOfDate", "Revoked", "OutOfDate"])
        if rng.random() < 0.5:
            level["advisoryIDs"] = rng.choice([["INTEL-SA-00615"], ["INTEL-SA-00837"], []])
        if rng.random() < 0.2:
            level["tcb"]["isvsvn"] += rng.choice([-1, 1])
    if index == 0 and rng.random() < 0.3:
        data.pop(rng.choice(["tdxModuleIdentities", "tdxModule"]), None)
    if index == 0 and data["id"] == "TDX" and rng.random() < 0.5:
        for level in data["tcbLevels"]:  # judged by the module identity when there is one
            level["tcb"]["tdxtcbcomponents"][rng.choice([0, 1])]["svn"] += 1
    text = json.dumps(data, separators=(",", ":")).encode()
    out[index] = (out[index][0], pcs_body(member, text, world.pki.tcb_signing.private_key))
    return out


def simulated_case(world: World, rng: random.Random) -> Case:
    platform = rng.choice(world.platforms)
    quote = world.quotes[id(platform)]
    notes = [f"{platform.kind} {type(platform).__name__}"]
    result_hash: ResultHash | None = RESULT
    draw = rng.random()
    if draw < 0.1:
        quote = platform.quote(_report_data(ResultHash.of(b"another result")))
        notes.append("bound to another result")
    elif draw < 0.15:
        quote = platform.quote(NONCE + bytes(32))
        notes.append("unbound")
    elif draw < 0.2:
        result_hash = None
    if rng.random() < 0.35:
        quote, region = mutate_quote(quote, platform, rng)
        notes.append(f"quote: {region}")
    endorsements, at, what = collateral_variant(world, platform, rng)
    notes.append(f"collateral: {what} at {at.isoformat()}")
    anchors = [world.root_der]
    if rng.random() < 0.05:
        anchors = [world.intel_der]
    elif rng.random() < 0.05:
        anchors = [world.intel_der, world.root_der]
    kind = platform.kind
    if rng.random() < 0.03:
        kind = SGX if kind == TDX else TDX
        notes.append("labelled as the other kind")
    return Case(
        kind, quote, endorsements, anchors, snapshot_for(world, rng), at, result_hash, notes
    )


def real_case(world: World, rng: random.Random) -> Case:
    real = rng.choice(REAL_QUOTES)
    quote = real.bytes()
    endorsements = [(str(e.kind), e.data) for e in real.evidence().endorsements]
    notes = [real.quote]
    at = rng.choice(
        [
            real.at, real.at, real.latest_issue, real.latest_issue - timedelta(seconds=1),
            real.earliest_next_update - timedelta(seconds=1), real.earliest_next_update,
            real.latest_issue - timedelta(seconds=60), real.latest_issue - timedelta(seconds=61),
            datetime.now(real.at.tzinfo),
        ]
    )  # fmt: skip
    if real is GTG_V5 and rng.random() < 0.3:  # the PCS body of the same FMSPC, in its window
        from tests.verifier.tdx.support import TDX as FIXTURES

        body = (FIXTURES / "tdx_gtg_sample_tcbinfo_response_v5.json").read_bytes()
        endorsements = [("tcb-info", body) if k == "tcb-info" else (k, d) for k, d in endorsements]
        at = rng.choice([datetime.fromisoformat("2026-02-20T00:00:00+00:00"), real.at])
        notes.append("PCS tcb-info body")
    draw = rng.random()
    if draw < 0.3:
        quote = flip(quote, rng, 0, layout(quote)["chain"])
        notes.append("a bit flipped")
    elif draw < 0.4:
        other = rng.choice([r for r in REAL_QUOTES if r is not real])
        endorsements = [(str(e.kind), e.data) for e in other.evidence().endorsements]
        notes.append(f"collateral of {other.quote}")
    elif draw < 0.5:
        del endorsements[rng.randrange(len(endorsements))]
        notes.append("one collateral document dropped")
    snapshot: dict[str, Any] | None = None
    if rng.random() < 0.6:
        body = quote[48 + (6 if quote[0] == 5 else 0) :]
        reference = (
            {"mr_td": body[136:184].hex()}
            if real.kind == TDX
            else {"mr_enclave": body[64:96].hex()}
        )
        if rng.random() < 0.3:
            reference = (
                {"mr_td": "00" * 48} if real.kind == TDX else {"mr_signer": body[128:160].hex()}
            )
        settings: dict[str, Any] = {}
        if rng.random() < 0.4:
            settings["allowed_advisories"] = rng.choice([["INTEL-SA-00289", "INTEL-SA-00615"], []])
        if rng.random() < 0.3:
            settings["tcb_status"] = {"ConfigurationAndSWHardeningNeeded": "contraindicated"}
        snapshot = {
            "images": [{"name": "real", "kind": str(real.kind), "reference": reference}],
            "allow_debug": False, "max_age_seconds": None,
            "clock_skew_seconds": rng.choice([0, 60]), "workers": {WORKER: ["real"]},
        }  # fmt: skip
        if settings:
            snapshot["schemes"] = {str(real.kind): settings}
    anchors = [world.intel_der] if rng.random() < 0.9 else [world.root_der]
    notes.append(f"at {at.isoformat()}")
    return Case(str(real.kind), quote, endorsements, anchors, snapshot, at, None, notes)


def test_the_real_quotes_agree_with_their_recorded_outcomes(world: World) -> None:
    """Both judges give each real quote its fixture README's outcome in its window."""
    for real, expected in (
        (PHALA_TDX, ("warning", {"no_reference_values"})),
        (GTG_V5, ("warning", {"no_reference_values"})),
        (OUTDATED, ("contraindicated", {"no_matching_tcb_level"})),
    ):
        start = 48 + (6 if real.bytes()[0] == 5 else 0) + 136
        mr_td = real.bytes()[start : start + 48].hex()
        snapshot = {
            "images": [{"name": "real", "kind": TDX, "reference": {"mr_td": mr_td}}],
            "allow_debug": False, "max_age_seconds": None, "clock_skew_seconds": 0,
            "workers": {WORKER: ["real"]},
        }  # fmt: skip
        case = Case(
            TDX, real.bytes(), [(str(e.kind), e.data) for e in real.evidence().endorsements],
            [world.intel_der], snapshot, real.at, None,
        )  # fmt: skip
        project, ours = both(world, case)
        assert project == ours
        if expected[0] == "warning":
            assert ours == ("affirming", set()), real.quote
        else:
            assert ours == ("contraindicated", {"no_matching_tcb_level"})
    case = Case(
        SGX, PHALA_SGX.bytes(), [(str(e.kind), e.data) for e in PHALA_SGX.evidence().endorsements],
        [world.intel_der], None, PHALA_SGX.at, None,
    )  # fmt: skip
    project, ours = both(world, case)
    assert project == ours == ("contraindicated", {"no_reference_values"})


def test_standalone_judge_agrees_with_the_project_on_every_quote(world: World) -> None:
    """Seeded: the same status and codes from both judges, on every case; every outcome
    (status and code) of interest is reached at least once."""
    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    disagreements = []
    for number in range(CASES):
        case = real_case(world, rng) if rng.random() < 0.2 else simulated_case(world, rng)
        project, ours = both(world, case)
        if project != ours:
            disagreements.append((number, case.notes, project, ours))
        outcomes[project[0]] += 1
        outcomes.update(project[1])
    assert not disagreements, disagreements[:5]
    wanted = {
        "affirming", "warning", "contraindicated", "malformed", "unsupported", "oversize",
        "chain_invalid", "untrusted_root", "signature_invalid", "qe_report_signature_invalid",
        "qe_binding_invalid", "collateral_signature_invalid", "endorsement_missing",
        "endorsement_mismatch", "expired", "not_yet_valid", "revoked", "fmspc_mismatch",
        "tcb_type_mismatch", "no_matching_tcb_level", "tcb_status", "advisory_not_allowed",
        "debug_mode", "mrtd_mismatch", "rtmr_mismatch", "mrenclave_mismatch",
        "result_binding_mismatch", "result_binding_missing", "no_reference_values",
        "xfam_not_allowed", "tee_tcb_svn_too_old",
    }  # fmt: skip
    if CASES >= 3000:
        assert wanted <= set(outcomes), sorted(wanted - set(outcomes))
