"""The revocation impact (issue #12): the TDX and SGX entries that a TCB info kept later marks
OutOfDate or Revoked, and the collateral kept, through the API with a reader token. Simulated
Intel platforms submit, are judged UpToDate, then later TCB infos are imported."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest

from attest_ledger.collateral import keep
from enclave_worker import TcbStanding
from enclave_worker.simulated_dcap import DEFAULT_TDX_TCB
from ledger.db import session_scope
from tests.enclave_worker.intel_support import tdx_platform
from tests.support import SIM_AT
from tests.web.test_tdx_submissions import TD_IMAGE, attest, intel, submit

pytestmark = pytest.mark.db

__all__ = ["intel"]  # the fixture, shared with the submissions' tests

OTHER_FMSPC = "90C06F000000"


def impact(service, query: str = "", status: int = 200) -> dict:
    reply = service.http.get(f"/api/v1/collateral/impact{query}", headers=service.auth("auditor"))
    assert reply.status_code == status, reply.json
    return reply.json


def tcb_info_of(platform, *, days: int, standing: TcbStanding | None = None) -> bytes:
    (data,) = [
        e.data
        for e in platform.collateral(at=SIM_AT + timedelta(days=days), standing=standing)
        if e.kind == "tcb-info"
    ]
    return data


def kept(service, data: bytes) -> str:
    with session_scope(service.runtime.sessions) as session:
        assert keep(session, [("tcb-info", data)], source="import") == 1
    return hashlib.sha256(data).hexdigest()


def test_entries_a_later_tcb_info_marks_out_of_date_or_revoked_are_listed(intel) -> None:
    other = tdx_platform(
        image=TD_IMAGE, tcb=replace(DEFAULT_TDX_TCB, fmspc=bytes.fromhex(OTHER_FMSPC))
    )
    indices = {}
    for name, platform in (("td-1", intel.td), ("td-2", intel.td), ("enclave", intel.enclave),
                           ("other", other)):  # fmt: skip
        reply = submit(intel, attest(intel, platform))
        assert reply.json["verdict"]["status"] == "affirming", reply.json
        indices[name] = reply.json["entry"]["index"]
    # only the collateral that judged them is kept: nothing later, nothing listed
    assert impact(intel)["entries"] == []

    # a later TCB info for the same FMSPC that leaves them UpToDate lists nothing
    kept(intel, tcb_info_of(intel.td, days=10))
    assert impact(intel)["entries"] == []

    # a later one where their level is OutOfDate lists the two TDs of that FMSPC, newest first
    outdated = kept(
        intel,
        tcb_info_of(intel.td, days=20, standing=TcbStanding("OutOfDate", ("INTEL-SA-00837",))),
    )
    listed = impact(intel)
    assert [e["index"] for e in listed["entries"]] == [indices["td-2"], indices["td-1"]]
    assert listed["next"] is None
    entry = listed["entries"][0]
    assert entry["evidence_kind"] == "intel-tdx"
    assert entry["fmspc"] == DEFAULT_TDX_TCB.fmspc.hex().upper()
    assert entry["image"] == TD_IMAGE
    assert entry["old"]["status"] == "UpToDate"
    assert entry["old"]["tcb_info_sha256"] != outdated
    assert entry["new"]["status"] == "OutOfDate"
    assert entry["new"]["error"] is None
    assert "INTEL-SA-00837" in entry["new"]["advisory_ids"]
    assert entry["new"]["tcb_info"]["sha256"] == outdated
    assert entry["new"]["tcb_info"]["issue_date"] == (
        (SIM_AT + timedelta(days=20)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    )
    assert isinstance(entry["new"]["tcb_info"]["tcb_evaluation_data_number"], int)
    assert [m["tcb_info"]["sha256"] for m in entry["marked_by"]] == [outdated]

    # filters: the platform, the later document's issue date; pages like /entries
    assert impact(intel, f"?fmspc={OTHER_FMSPC}")["entries"] == []
    fmspc = DEFAULT_TDX_TCB.fmspc.hex().lower()
    assert len(impact(intel, f"?fmspc={fmspc}")["entries"]) == 2
    later = (SIM_AT + timedelta(days=21)).isoformat()
    assert impact(intel, f"?since={later.replace('+00:00', 'Z')}")["entries"] == []
    first = impact(intel, "?limit=1")
    assert [e["index"] for e in first["entries"]] == [indices["td-2"]]
    assert first["next"] == str(indices["td-2"])
    second = impact(intel, f"?limit=1&after={first['next']}")
    assert [e["index"] for e in second["entries"]] == [indices["td-1"]]
    assert impact(intel, f"?limit=1&after={indices['td-1']}")["entries"] == []

    # a later SGX TCB info that revokes the enclave's level lists the enclave too
    revoked = kept(intel, tcb_info_of(intel.enclave, days=5, standing=TcbStanding("Revoked")))
    by_index = {e["index"]: e for e in impact(intel)["entries"]}
    assert set(by_index) == {indices["td-1"], indices["td-2"], indices["enclave"]}
    assert by_index[indices["enclave"]]["new"]["status"] == "Revoked"
    assert by_index[indices["enclave"]]["new"]["tcb_info"]["sha256"] == revoked

    # a later TCB info that lists no level the platform reaches: Intel no longer names it
    gone = kept(intel, tcb_info_of(other, days=3, standing=TcbStanding(matching=False)))
    (entry,) = impact(intel, f"?fmspc={OTHER_FMSPC}")["entries"]
    assert entry["index"] == indices["other"]
    assert entry["new"] == {**entry["new"], "status": None, "error": "no_matching_tcb_level"}
    assert entry["new"]["tcb_info"]["sha256"] == gone


def test_impact_parameters_and_tokens(intel) -> None:
    for query, parameter in (
        ("?fmspc=zz", "fmspc"),
        ("?since=yesterday", "since"),
        ("?after=-1", "after"),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?verdict=affirming", "verdict"),
        ("?fmspc=B0C06F000000&fmspc=B0C06F000000", "fmspc"),
    ):
        assert impact(intel, query, status=400)["parameter"] == parameter, query
    assert intel.http.get("/api/v1/collateral/impact").status_code == 401
    worker = intel.http.get("/api/v1/collateral/impact", headers=intel.auth("worker-1"))
    assert worker.status_code == 403


def test_the_collateral_kept_is_listed_newest_first_and_served_by_digest(intel) -> None:
    with session_scope(intel.runtime.sessions) as session:
        keep(
            session,
            [(e.kind, e.data) for e in intel.td.collateral(at=SIM_AT + timedelta(days=1))],
            source="import",
        )
    newer = kept(intel, tcb_info_of(intel.td, days=10))
    reply = intel.http.get("/api/v1/collateral", headers=intel.auth("auditor"))
    assert reply.status_code == 200
    documents = reply.json["documents"]
    assert documents[0]["sha256"] == newer
    assert documents[0]["kind"] == "tcb-info"
    assert documents[0]["tee"] == "TDX"
    assert documents[0]["source"] == "import"
    issued = [d["issued_at"] for d in documents if d["issued_at"] is not None]
    assert issued == sorted(issued, reverse=True)
    assert {d["kind"] for d in documents} == {"tcb-info", "qe-identity", "crl", "certificate"}
    only = intel.http.get("/api/v1/collateral?kind=tcb-info", headers=intel.auth("auditor"))
    assert {d["kind"] for d in only.json["documents"]} == {"tcb-info"}
    assert len(only.json["documents"]) == 2
    for document in documents:
        served = intel.http.get(document["url"], headers=intel.auth("auditor"))
        assert served.status_code == 200
        assert hashlib.sha256(served.data).hexdigest() == document["sha256"]
    missing = intel.http.get(f"/api/v1/collateral/{'0' * 64}", headers=intel.auth("auditor"))
    assert missing.status_code == 404
    bad = intel.http.get("/api/v1/collateral?kind=pdf", headers=intel.auth("auditor"))
    assert bad.status_code == 400


def test_a_later_tcb_info_that_intel_did_not_sign_marks_nothing(intel) -> None:
    """What is kept is not trusted for being kept: an OutOfDate TCB info whose signature does
    not verify with a TCB Signing certificate of the service's root lists no entry."""
    reply = submit(intel, attest(intel, intel.td))
    assert reply.json["verdict"]["status"] == "affirming", reply.json
    outdated = tcb_info_of(intel.td, days=20, standing=TcbStanding("OutOfDate", ("INTEL-SA-1",)))
    head, _, signature = outdated.rpartition(b'"signature":"')
    forged = head + b'"signature":"' + (b"0" if signature[:1] != b"0" else b"1") + signature[1:]
    kept(intel, forged)
    assert impact(intel)["entries"] == []
    kept(intel, outdated)  # the one Intel (here: the simulated TCB signer) signed
    assert [e["index"] for e in impact(intel)["entries"]] == [reply.json["entry"]["index"]]
