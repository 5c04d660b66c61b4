"""The auditor portal's Intel TDX and SGX entry pages and the revocation impact page (issue
#12), through Flask's test client on a real database: simulated Intel platforms submit through
the API; the entry pages show what the stored quote says against the recorded policy
revision, the TCB evaluation the entry records and the collateral that judged it, each
document downloadable byte for byte; re-verify runs the DCAP scheme again on what is stored;
the impact page lists the entries a later TCB info marks OutOfDate."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import text

from enclave_worker import TcbStanding
from tests.support import SIM_AT
from tests.web.conftest import csrf_of, page, publish, signed_in
from tests.web.test_collateral_impact import kept, tcb_info_of
from tests.web.test_tdx_submissions import SGX_IMAGE, TD_IMAGE, attest, intel, submit
from verifier import ResultHash

pytestmark = pytest.mark.db

__all__ = ["intel"]  # the fixture, shared with the submissions' tests


@pytest.fixture
def portal(intel):
    """The service of the submissions' tests, with an auditor signed in to the portal."""
    return signed_in(intel)


def record_of(service, index: int) -> dict:
    with service.runtime.sessions() as session:
        data = session.execute(
            text("SELECT data FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).scalar_one()
    return json.loads(bytes(data))


def submitted(service, platform, **kwargs):
    evidence = attest(service, platform, **kwargs)
    reply = submit(service, evidence)
    assert reply.status_code == 201, reply.json
    return reply.json, evidence


def row_of(body: str, label: str) -> str:
    """The table row whose first cell is ``label``."""
    found = re.search(rf"<tr[^>]*>\s*<td[^>]*>{re.escape(label)}</td>.*?</tr>", body, re.S)
    assert found, f"no row {label!r}"
    return found.group(0)


def section(body: str, heading: str) -> str:
    return body.split(f"<h3>{heading}</h3>")[1].split("<h3>", maxsplit=1)[0]


def reverified(service, index: int) -> str:
    detail = page(service, f"/portal/entries/{index}")
    response = service.browser.post(
        f"/portal/entries/{index}/reverify", data={"csrf": csrf_of(detail)}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body[:2000]
    return body


def test_a_td_entry_shows_every_field_the_tcb_and_the_collateral(portal) -> None:
    receipt, evidence = submitted(portal, portal.td)
    assert receipt["verdict"]["status"] == "affirming", receipt["verdict"]
    index = receipt["entry"]["index"]
    publish(portal)
    body = page(portal, f"/portal/entries/{index}")
    record = record_of(portal, index)
    td = record["claims"]["td_report"]
    assert "TDX quote" in body
    assert "<dt>Evidence</dt><dd>intel-tdx</dd>" in body
    # header and every TD report field, as the quote holds it
    assert "0x00000081 (TDX)" in row_of(body, "TEE type")
    for label, key in (
        ("MRTD", "mr_td"), ("RTMR0", "rtmr0"), ("RTMR1", "rtmr1"), ("RTMR2", "rtmr2"),
        ("RTMR3", "rtmr3"), ("MRCONFIGID", "mr_config_id"), ("MROWNER", "mr_owner"),
        ("MROWNERCONFIG", "mr_owner_config"), ("MRSEAM", "mr_seam"), ("XFAM", "xfam"),
        ("TEE_TCB_SVN", "tee_tcb_svn"),
    ):  # fmt: skip
        assert td[key] in row_of(body, label), label
    attributes = row_of(body, "TD attributes")
    assert td["td_attributes"] in attributes
    assert "debug (bit 0) not set" in attributes
    assert '<code class="hash">no</code>' in row_of(body, "Debug")
    # the measurement against its reference image
    mrtd = row_of(body, "mr_td")
    assert 'class="pcr-match"' in mrtd
    assert f"matches</span> {TD_IMAGE}" in mrtd
    assert "not referenced" in row_of(body, "rtmr0")
    # report_data: the binding of the recorded result hash
    assert ResultHash.of(b"the answer").report_data_half().hex() in body
    assert "holds</span> the quote commits to the recorded result hash" in body
    # the TCB: status, advisories, the level that judged it, QE identity and TDX module
    tcb = record["claims"]["tcb"]
    shown = section(body, "TCB")
    assert '<strong class="tcb-status">UpToDate</strong>' in shown
    assert f"tcbDate <code>{tcb['platform']['tcb_date']}</code>" in shown
    number = tcb["platform"]["tcb_evaluation_data_number"]
    assert f"tcbEvaluationDataNumber <code>{number}</code>" in shown
    assert f'TD_QE: <span class="qe-status">{tcb["qe_identity"]["tcb_status"]}</span>' in shown
    if tcb["tdx_module"] is not None:
        assert f'<span class="module-status">{tcb["tdx_module"]["tcb_status"]}' in shown
    assert record["claims"]["fmspc"] in section(
        body, "Platform (the PCK certificate's SGX extension)"
    )
    # the PCK chain from the quote, windows against verified_at
    chain = section(body, "PCK certificate chain (from the quote)")
    for position in ("Root CA", "PCK CA", "PCK"):
        assert f"<td>{position}<div" in chain
    assert chain.count('class="badge ok">valid</span>') == 3
    assert chain.count('class="window"') == 3
    # the collateral that judged it: every document named, by role, downloadable by digest
    collateral = section(body, "Collateral that judged it")
    for role in ("TCB info", "QE identity", "PCK CA CRL", "Root CA CRL", "TCB Signing certificate"):
        assert f"<td>{role}</td>" in collateral, role
    for e in evidence.endorsements:
        digest = hashlib.sha256(e.data).hexdigest()
        suffix = "json" if e.kind in ("tcb-info", "qe-identity") else "der"
        assert f"/portal/entries/{index}/endorsements/{digest}.{suffix}" in collateral
    assert f"/portal/entries/{index}/evidence.bin" in body


def test_an_sgx_entry_shows_the_enclave_report(portal) -> None:
    receipt, _ = submitted(portal, portal.enclave)
    assert receipt["verdict"]["status"] == "affirming", receipt["verdict"]
    index = receipt["entry"]["index"]
    body = page(portal, f"/portal/entries/{index}")
    enclave = record_of(portal, index)["claims"]["enclave_report"]
    assert "SGX quote" in body
    assert "0x00000000 (SGX)" in row_of(body, "TEE type")
    assert enclave["mr_enclave"] in row_of(body, "MRENCLAVE")
    assert enclave["mr_signer"] in row_of(body, "MRSIGNER")
    assert f">{enclave['isv_prod_id']}</code>" in row_of(body, "ISV product ID")
    assert f">{enclave['isv_svn']}</code>" in row_of(body, "ISV SVN")
    assert "debug (bit 1) not set" in row_of(body, "Attributes")
    assert f"matches</span> {SGX_IMAGE}" in row_of(body, "mr_enclave")
    assert "TD_QE" not in body
    assert 'QE: <span class="qe-status">' in section(body, "TCB")


def test_a_debug_td_is_shown_refused_and_named(portal) -> None:
    receipt, _ = submitted(portal, portal.td.variant(debug=True))
    assert "debug_mode" in {r["code"] for r in receipt["verdict"]["reasons"]}
    body = page(portal, f"/portal/entries/{receipt['entry']['index']}")
    attributes = row_of(body, "TD attributes")
    assert "DEBUG (bit 0) set" in attributes
    assert "not allowed" in attributes
    assert "debug," in attributes or "(debug" in attributes


def test_downloads_are_byte_identical_to_what_was_recorded(portal) -> None:
    receipt, evidence = submitted(portal, portal.td)
    index = receipt["entry"]["index"]
    quote = portal.browser.get(f"/portal/entries/{index}/evidence.bin")
    assert quote.status_code == 200
    assert quote.data == evidence.data
    assert f'filename="entry-{index}-quote.bin"' in quote.headers["Content-Disposition"]
    named = record_of(portal, index)["endorsements"]
    assert sorted(e["kind"] for e in named) == sorted(e.kind for e in evidence.endorsements)
    sent = {hashlib.sha256(e.data).hexdigest(): e.data for e in evidence.endorsements}
    types = {"tcb-info": "application/json", "qe-identity": "application/json",
             "crl": "application/pkix-crl", "certificate": "application/pkix-cert"}  # fmt: skip
    for e in named:
        suffix = "json" if e["kind"] in ("tcb-info", "qe-identity") else "der"
        other = "der" if suffix == "json" else "json"
        url = f"/portal/entries/{index}/endorsements/{e['sha256']}"
        download = portal.browser.get(f"{url}.{suffix}")
        assert download.status_code == 200, e
        assert download.data == sent[e["sha256"]]
        assert download.mimetype == types[e["kind"]]
        assert portal.browser.get(f"{url}.{other}").status_code == 404  # one form per kind
    assert (
        portal.browser.get(f"/portal/entries/{index}/endorsements/{'0' * 64}.json").status_code
        == 404
    )


@pytest.mark.parametrize("which", ["td", "enclave"])
def test_reverify_agrees_with_the_recorded_verdict(portal, which) -> None:
    receipt, _ = submitted(portal, getattr(portal, which))
    assert receipt["verdict"]["status"] == "affirming"
    body = reverified(portal, receipt["entry"]["index"])
    shown = body.split('id="reverification"')[1]
    assert "The verdicts agree." in shown
    assert 'badge v-affirming">affirming' in shown.split("Re-verified now")[1]


def test_reverify_agrees_with_a_recorded_rejection(portal) -> None:
    platform = portal.td.variant(standing=TcbStanding(matching=False))
    receipt, _ = submitted(portal, platform)
    assert receipt["verdict"]["status"] == "contraindicated"
    body = reverified(portal, receipt["entry"]["index"])
    shown = body.split('id="reverification"')[1]
    assert "The verdicts agree." in shown
    assert "no_matching_tcb_level" in shown


@pytest.mark.parametrize(
    ("how", "code"),
    [("no-level", "no_matching_tcb_level"), ("tampered", "signature_invalid"),
     ("malformed", "malformed")],
)  # fmt: skip
def test_a_rejected_quote_is_shown_with_whatever_parsed(portal, how, code) -> None:
    platform = portal.td
    if how == "no-level":
        platform = portal.td.variant(standing=TcbStanding(matching=False))
    evidence = attest(portal, platform)
    if how == "tampered":
        data = bytearray(evidence.data)
        data[48 + 136] ^= 1  # a bit of MRTD
        evidence = type(evidence)(evidence.kind, bytes(data), evidence.endorsements)
    elif how == "malformed":
        evidence = type(evidence)(evidence.kind, evidence.data[:700], evidence.endorsements)
    reply = submit(portal, evidence)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    index = reply.json["entry"]["index"]
    assert code == reply.json["verdict"]["error"] or code in {
        r["code"] for r in reply.json["verdict"]["reasons"]
    }
    body = page(portal, f"/portal/entries/{index}")
    assert f"<code>{code}" in body
    if how == "malformed":
        assert "The quote could not be decoded" in body
        assert "<td>tcb-info</td>" in body  # the collateral named, still listed
    else:
        assert evidence.data[48 + 136 : 48 + 184].hex() in row_of(body, "MRTD")
        assert "No TCB evaluation is recorded" in body


def test_the_impact_page_lists_an_entry_a_later_tcb_info_marks_out_of_date(portal) -> None:
    receipt, _ = submitted(portal, portal.td)
    index = receipt["entry"]["index"]
    empty = page(portal, "/portal/impact")
    assert "No entry" in empty
    outdated = kept(
        portal,
        tcb_info_of(portal.td, days=20, standing=TcbStanding("OutOfDate", ("INTEL-SA-00837",))),
    )
    body = page(portal, "/portal/impact")
    row = row_of(body, f'<a href="/portal/entries/{index}">#{index}</a>')
    assert "UpToDate" in row
    assert "OutOfDate" in row
    assert "INTEL-SA-00837" in row
    assert f'href="/portal/collateral/{outdated}.json"' in row
    document = portal.browser.get(f"/portal/collateral/{outdated}.json")
    assert document.status_code == 200
    assert hashlib.sha256(document.data).hexdigest() == outdated
    assert document.mimetype == "application/json"
    # filters and paging
    assert f"#{index}</a>" not in page(portal, "/portal/impact?fmspc=90C06F000000")
    later = (SIM_AT + timedelta(days=21)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"#{index}</a>" not in page(portal, f"/portal/impact?since={later}")
    assert f"#{index}</a>" not in page(portal, f"/portal/impact?after={index}")
    assert page(portal, "/portal/impact?fmspc=zz", status=400)
    # linked from the overview
    assert 'href="/portal/impact"' in page(portal, "/portal/")
