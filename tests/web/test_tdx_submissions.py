"""Intel TDX and SGX through the service (issue #12): a simulated TD or enclave submits its
quote with or without collateral; the service completes the collateral from what it keeps
(imported, or fetched from a configured PCCS), judges, and records the verdict with every
collateral document that judged it, stored once and named by digest; every way the quote can
fall short is recorded with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
import warnings

import pytest
from sqlalchemy import text

from attest_ledger.collateral import keep
from enclave_worker import SimulatedIntelWarning, TcbStanding, simulated_sgx_measurement
from enclave_worker.binding import ResultDigest
from ledger.audit import audit
from ledger.db import session_scope
from tests.enclave_worker.intel_support import intel_pki, sgx_enclave, tdx_platform
from tests.web.conftest import build_service
from verifier import ResultHash

pytestmark = pytest.mark.db

TD_IMAGE, SGX_IMAGE = "inference-td", "inference-enclave"


@pytest.fixture
def intel(db_url, tmp_path, sim_pki, sim_nsm):
    root = tmp_path / "simulated-intel-root.pem"
    root.write_bytes(intel_pki().root_pem())
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm, intel_trust_root_path=root)
    service.td = tdx_platform(image=TD_IMAGE)
    service.enclave = sgx_enclave(image=SGX_IMAGE)
    with session_scope(service.runtime.sessions) as session:
        policies = service.runtime.policies
        policies.add_reference(
            session, TD_IMAGE, "intel-tdx", {"mr_td": service.td.measurement.hex()}
        )
        policies.add_reference(
            session, SGX_IMAGE, "intel-sgx",
            {"mr_enclave": simulated_sgx_measurement(SGX_IMAGE).hex()},
        )  # fmt: skip
        policies.allow(session, "worker-1", TD_IMAGE)
        policies.allow(session, "worker-1", SGX_IMAGE)
    yield service
    service.runtime.close()


def submit(service, evidence, *, who="worker-1", result=b"the answer", drop=()):
    body = {
        "evidence": {
            "kind": evidence.kind,
            "data": base64.b64encode(evidence.data).decode(),
            "endorsements": [
                {"kind": e.kind, "data": base64.b64encode(e.data).decode()}
                for e in evidence.endorsements
                if e.kind not in drop
            ],
        },
        "result_hash": str(ResultHash.of(result)),
        "job": {"id": "dcap-job"},
    }
    return service.http.post("/api/v1/attestations", json=body, headers=service.auth(who))


def attest(service, platform, *, nonce=None, result=b"the answer"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        return platform.attest(
            nonce=nonce if nonce is not None else service.challenge(),
            result=ResultDigest.of(result),
        )


def stored(service, index: int) -> dict:
    with service.runtime.sessions() as session:
        data = session.execute(
            text("SELECT data FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).scalar_one()
    return json.loads(bytes(data))


def codes(reply) -> set[str]:
    return {r["code"] for r in reply.json["verdict"]["reasons"]}


@pytest.mark.parametrize("which", ["td", "enclave"])
def test_a_quote_with_its_collateral_is_affirmed_and_recorded_with_it(intel, which) -> None:
    platform = getattr(intel, which)
    evidence = attest(intel, platform)
    reply = submit(intel, evidence)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    record = stored(intel, reply.json["entry"]["index"])
    assert record["evidence_kind"] == ("intel-tdx" if which == "td" else "intel-sgx")
    assert record["image"] == (TD_IMAGE if which == "td" else SGX_IMAGE)
    assert record["claims"]["tcb"]["status"] == "UpToDate"
    assert record["trust_anchors"] == [
        hashlib.sha256(intel_pki().root.certificate.public_bytes(_der())).hexdigest()
    ]
    named = [(e["kind"], e["sha256"]) for e in record["endorsements"]]
    assert named == [(e.kind, hashlib.sha256(e.data).hexdigest()) for e in evidence.endorsements]
    with intel.runtime.sessions() as session:
        assert audit(session, intel.runtime.log_key).ok


def _der():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("wrong-image", {"mrtd_mismatch"}),
        ("debug", {"debug_mode"}),
        ("unbound", {"result_binding_mismatch"}),
        ("tampered", {"signature_invalid"}),
        ("foreign-nonce", {"nonce_unknown"}),
        ("out-of-date", {"tcb_status"}),
        ("no-level", {"no_matching_tcb_level"}),
    ],
)
def test_every_shortfall_is_recorded_with_its_reason(intel, how, expected) -> None:
    platform, result, nonce = intel.td, b"the answer", None
    if how == "wrong-image":
        platform = intel.td.variant(image="something-else")
    elif how == "debug":
        platform = intel.td.variant(debug=True)
    elif how == "unbound":
        result = b"not what is submitted"
    elif how == "foreign-nonce":
        nonce = bytes(32)
    elif how == "out-of-date":
        platform = intel.td.variant(standing=TcbStanding("OutOfDate", ("INTEL-SA-00837",)))
    elif how == "no-level":
        platform = intel.td.variant(standing=TcbStanding(matching=False))
    evidence = attest(intel, platform, nonce=nonce, result=result)
    if how == "tampered":
        data = bytearray(evidence.data)
        data[48 + 136] ^= 1  # a bit of MRTD, inside the signed body
        evidence = type(evidence)(evidence.kind, bytes(data), evidence.endorsements)
    reply = submit(intel, evidence)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert expected <= codes(reply), reply.json


def test_a_quote_without_collateral_is_judged_with_what_the_service_keeps(intel) -> None:
    bare = attest(intel, intel.td)
    reply = submit(intel, bare, drop=("tcb-info", "qe-identity", "crl", "certificate"))
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert "endorsement_missing" in codes(reply), reply.json
    with session_scope(intel.runtime.sessions) as session:  # an operator imports it
        keep(session, [(e.kind, e.data) for e in bare.endorsements], source="import")
    reply = submit(intel, attest(intel, intel.td), drop=("tcb-info", "qe-identity", "crl",
                                                         "certificate"))  # fmt: skip
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    record = stored(intel, reply.json["entry"]["index"])
    kinds = sorted(e["kind"] for e in record["endorsements"])
    assert kinds == ["certificate", "crl", "crl", "qe-identity", "tcb-info"]
    with intel.runtime.sessions() as session:
        kept = {
            bytes(row[0]).hex()
            for row in session.execute(text("SELECT sha256 FROM ledger_endorsements"))
        }
    assert {e["sha256"] for e in record["endorsements"]} <= kept  # in the record for ever


def test_expired_collateral_is_a_named_refusal(intel) -> None:
    from datetime import timedelta

    old = tdx_platform(image=TD_IMAGE, at=intel.td.at - timedelta(days=60))
    reply = submit(intel, attest(intel, old))
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert "expired" in codes(reply), reply.json


@pytest.fixture
def pccs_serving(intel):
    """A local PCCS answering Intel's PCS API v4 paths with the simulated platform's
    collateral (issuer chains in the headers, as PCS sends them); counts every request."""
    import http.server
    import threading
    import urllib.parse

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from tests.cli.test_collateral import _Pccs

    documents = attest(intel, intel.td).endorsements
    by_kind: dict[str, list[bytes]] = {}
    for e in documents:
        by_kind.setdefault(e.kind, []).append(e.data)
    signing = x509.load_der_x509_certificate(by_kind["certificate"][0]).public_bytes(Encoding.PEM)
    chain = {"TCB-Info-Issuer-Chain": urllib.parse.quote(signing.decode())}
    pck_crl, root_crl = by_kind["crl"]
    _Pccs.files = {
        "/tdx/certification/v4/tcb": (by_kind["tcb-info"][0], chain),
        "/tdx/certification/v4/qe/identity": (
            by_kind["qe-identity"][0],
            {"SGX-Enclave-Identity-Issuer-Chain": chain["TCB-Info-Issuer-Chain"]},
        ),
        "/sgx/certification/v4/pckcrl": (pck_crl, {}),
        "/sgx/certification/v4/rootcacrl": (root_crl.hex().encode(), {}),
    }
    _Pccs.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pccs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Pccs.requests
    server.shutdown()
    server.server_close()


def test_the_service_fetches_missing_collateral_from_its_configured_pccs(
    intel, pccs_serving
) -> None:
    """With a PCCS configured (ATTEST_LEDGER_PCCS_URL), a quote sent alone is judged with
    collateral the service fetched (once: then it is kept), and a PCCS that fails is not
    asked again for the same platform within a minute; the quote is judged with what there
    is, and recorded."""
    from dataclasses import replace

    from attest_ledger.collateral import PcsClient
    from enclave_worker.simulated_dcap import DEFAULT_TDX_TCB

    url, requests = pccs_serving
    requests.clear()  # the fixture's own attest() asked nothing; be sure
    source = intel.runtime.intake.collateral
    assert source is not None
    assert source.pcs is None  # as build_service configured it: no URL, nothing fetched
    source.pcs = PcsClient(url)  # as Runtime.build does when ATTEST_LEDGER_PCCS_URL is set
    every = ("tcb-info", "qe-identity", "crl", "certificate")
    reply = submit(intel, attest(intel, intel.td), drop=every)
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    fetched = len(requests)
    assert any(r.startswith("/tdx/certification/v4/tcb?fmspc=") for r in requests), requests
    record = stored(intel, reply.json["entry"]["index"])
    assert sorted(e["kind"] for e in record["endorsements"]) == [
        "certificate", "crl", "crl", "qe-identity", "tcb-info"
    ]  # fmt: skip
    again = submit(intel, attest(intel, intel.td), drop=every)
    assert again.json["verdict"]["status"] == "affirming"
    assert len(requests) == fetched  # kept: not fetched again
    # a platform of another FMSPC, whose collateral the PCCS does not have (404): asked once,
    # then not again within a minute; each quote is judged and recorded regardless
    elsewhere = tdx_platform(
        image=TD_IMAGE, tcb=replace(DEFAULT_TDX_TCB, fmspc=bytes.fromhex("90C06F000001"))
    )
    for _ in range(2):
        reply = submit(intel, attest(intel, elsewhere), drop=every)
        assert reply.status_code == 201
        assert "endorsement_missing" in codes(reply), reply.json
    asked = [r for r in requests[fetched:] if r.startswith("/tdx/certification/v4/tcb")]
    assert len(asked) == 1, requests
