"""The auditor portal's SEV-SNP entry pages (issue #11), through Flask's test client on a real
database: simulated SNP guests submit through the API, and the pages show what the stored
report says against the recorded policy revision, its endorsements and the instant it was
judged at; re-verify runs the SNP scheme again on what is stored."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from markupsafe import escape
from sqlalchemy import text

from attest_ledger.intake import anchors_of
from enclave_worker import SimulatedAmdWarning
from enclave_worker.binding import ResultDigest
from ledger.db import session_scope
from tests.enclave_worker.snp_support import amd_pki, fixture, load_certificate, snp_platform
from tests.web.conftest import (
    NOW,
    build_service,
    csrf_of,
    page,
    publish,
    signed_in,
)
from verifier import ResultHash, SnpVerifier

pytestmark = pytest.mark.db

IMAGE = "inference-snp"
#: Inside every window of the real samples (tests/fixtures/snp/README.md).
REAL_AT = datetime(2025, 9, 1, tzinfo=UTC)


@pytest.fixture
def snp(db_url, tmp_path, sim_pki, sim_nsm):
    """The service trusting the simulated AMD root, worker-1 allowed one SEV-SNP image (and,
    as every service of these tests, the Nitro image), an auditor signed in."""
    ark = tmp_path / "simulated-ark.pem"
    ark.write_bytes(amd_pki().ark_pem())
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm, snp_trust_root_path=ark)
    service.platform = snp_platform(image=IMAGE)
    with session_scope(service.runtime.sessions) as session:
        service.runtime.policies.add_reference(
            session, IMAGE, "amd-sev-snp", {"measurement": service.platform.measurement.hex()}
        )
        service.runtime.policies.allow(session, "worker-1", IMAGE)
    yield signed_in(service)
    service.runtime.close()


@pytest.fixture
def amd(db_url, tmp_path, sim_pki, sim_nsm):
    """The service trusting only AMD's pinned ARKs, as in production."""
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm)
    yield signed_in(service)
    service.runtime.close()


def submit(service, kind, data, endorsements, *, result=b"the answer", who="worker-1"):
    body = {
        "evidence": {
            "kind": kind,
            "data": base64.b64encode(data).decode(),
            "endorsements": [
                {"kind": k, "data": base64.b64encode(d).decode()} for k, d in endorsements
            ],
        },
        "result_hash": str(ResultHash.of(result)),
        "job": {"id": "snp-job"},
    }
    reply = service.http.post("/api/v1/attestations", json=body, headers=service.auth(who))
    assert reply.status_code == 201, reply.json
    return reply.json


def attest(service, platform=None, *, result=b"the answer", drop=(), extra=()):
    """A fresh challenge, a report from ``platform`` binding ``result``, submitted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        evidence = (platform or service.platform).attest(
            nonce=service.challenge(), result=ResultDigest.of(result)
        )
    endorsements = [(e.kind, e.data) for e in evidence.endorsements if e.kind not in drop]
    return submit(service, evidence.kind, evidence.data, [*endorsements, *extra]), evidence


def reasons(receipt) -> list[str]:
    return [r["code"] for r in receipt["verdict"]["reasons"]]


def reverified(service, index: int) -> str:
    detail = page(service, f"/portal/entries/{index}")
    response = service.browser.post(
        f"/portal/entries/{index}/reverify", data={"csrf": csrf_of(detail)}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body[:2000]
    return body


def row_of(body: str, label: str) -> str:
    """The table row whose first cell is ``label``."""
    found = re.search(rf"<tr[^>]*>\s*<td[^>]*>{re.escape(label)}</td>.*?</tr>", body, re.S)
    assert found, f"no row {label!r}"
    return found.group(0)


def test_an_affirming_snp_entry_shows_the_report_against_its_reference(snp) -> None:
    receipt, evidence = attest(snp)
    assert receipt["verdict"]["status"] == "affirming", receipt["verdict"]
    index = receipt["entry"]["index"]
    publish(snp)
    body = page(snp, f"/portal/entries/{index}")
    report = evidence.data
    assert "SEV-SNP attestation report" in body
    assert "<dt>Evidence</dt><dd>amd-sev-snp</dd>" in body
    assert "<dt>Version</dt><dd>3</dd>" in body
    assert "Genoa" in body
    assert "its <strong>VCEK</strong>" in body
    assert report[0x1A0:0x1E0].hex() in body  # chip_id
    assert report[0x140:0x160].hex() in body  # report_id
    measurement = row_of(body, "measurement")
    assert 'class="pcr-match"' in measurement
    assert snp.platform.measurement.hex() in measurement
    assert f"matches</span> {IMAGE}" in measurement
    assert "not referenced" in row_of(body, "host_data")  # the image lists none
    assert f"Compared with the reference values of {IMAGE}" in body
    # report_data: the challenge as is, and the binding of the recorded result hash
    assert report[0x50:0x70].hex() in body
    assert ResultHash.of(b"the answer").report_data_half().hex() in body
    assert "holds</span> the report commits to the recorded result hash" in body
    # the guest policy, judged by the recorded settings
    assert "not allowed" not in body
    assert "<td>no</td>" in row_of(body, "Debugging allowed (bit 19)")
    assert "allowed</span>" in row_of(body, "SMT allowed (bit 16)")
    # the TCB: reported, certified by the VCEK, current, committed, launch (Genoa's default)
    tcb = row_of(body, "microcode")
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)', tcb)] == [84, 84, 84, 84, 84]
    assert "fmc" not in re.sub(r"<[^>]+>", " ", body.split("<h3>TCB</h3>")[1].split("</table>")[0])
    # the chain ARK -> ASK -> VCEK, every window drawn against verified_at
    chain = body.split("<h3>Certificate chain</h3>")[1].split("</table>")[0]
    for position in ("ARK", "ASK", "VCEK"):
        assert f"<td>{position}<div" in chain
    assert chain.count('class="badge ok">valid</span>') == 3
    assert chain.count('class="window"') == 3
    assert "one of the trust anchors the entry names" in chain
    assert "At verified_at" in chain
    assert snp.runtime.clock().strftime("%Y-%m-%dT%H:%M:%S") in body  # the instant judged at
    # downloads: the report and every endorsement the entry names, by SHA-256
    assert f"/portal/entries/{index}/evidence.bin" in body
    assert f"/portal/entries/{index}/evidence.cbor" not in body
    for e in evidence.endorsements:
        digest = hashlib.sha256(e.data).hexdigest()
        assert f"/portal/entries/{index}/endorsements/{digest}.der" in body
    assert 'id="browser-check"' in body
    assert "data-proof-url" in body


def test_every_download_is_what_the_entry_names(snp) -> None:
    receipt, evidence = attest(snp)
    index = receipt["entry"]["index"]
    report = snp.browser.get(f"/portal/entries/{index}/evidence.bin")
    assert report.status_code == 200
    assert report.data == evidence.data
    assert report.mimetype == "application/octet-stream"
    assert f'filename="entry-{index}-report.bin"' in report.headers["Content-Disposition"]
    assert hashlib.sha256(report.data).hexdigest() == receipt_record(snp, index)["evidence_sha256"]
    named = receipt_record(snp, index)["endorsements"]
    assert {e["kind"] for e in named} == {"vcek", "ask", "ark"}
    for e in named:
        download = snp.browser.get(f"/portal/entries/{index}/endorsements/{e['sha256']}.der")
        assert download.status_code == 200, e
        assert hashlib.sha256(download.data).hexdigest() == e["sha256"]
        assert download.mimetype == "application/pkix-cert"
        load_certificate(download.data)  # a certificate, as named
    # only what the entry names: another entry's endorsement, another digest, another form
    nitro = snp.fresh()
    other = nitro.json["entry"]["index"]
    for path in (
        f"/portal/entries/{other}/endorsements/{named[0]['sha256']}.der",
        f"/portal/entries/{index}/endorsements/{'0' * 64}.der",
        f"/portal/entries/{index}/endorsements/{named[0]['sha256'].upper()}.der",
        f"/portal/entries/{index}/endorsements/..%2Fevidence.der",
        f"/portal/entries/{index}/evidence.cbor",  # not a Nitro document
    ):
        assert snp.browser.get(path).status_code == 404, path
    assert snp.browser.get(f"/portal/entries/{other}/evidence.cbor").status_code == 200


def receipt_record(service, index: int) -> dict:
    with service.runtime.sessions() as session:
        data = session.execute(
            text("SELECT data FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).scalar_one()
    return json.loads(bytes(data))


def test_a_mismatched_measurement_is_shown_in_red_with_the_expected_value(snp) -> None:
    other = snp.platform.variant(image="something-else")
    receipt, _ = attest(snp, other)
    assert reasons(receipt) == ["measurement_mismatch"]
    index = receipt["entry"]["index"]
    body = page(snp, f"/portal/entries/{index}")
    measurement = row_of(body, "measurement")
    assert 'class="pcr-mismatch"' in measurement
    assert 'class="badge bad">mismatch</span>' in measurement
    assert other.measurement.hex() in measurement
    assert f'{IMAGE} expects <code class="hash">{snp.platform.measurement.hex()}</code>' in (
        measurement
    )
    assert "<code>measurement_mismatch</code>" in body
    again = reverified(snp, index)
    assert "The verdicts agree." in again
    assert "<li><code>measurement_mismatch</code> measurement: expected" in again


def test_launch_values_an_image_lists_are_compared_too(snp) -> None:
    host_data = bytes(range(32))
    with session_scope(snp.runtime.sessions) as session:
        snp.runtime.policies.add_reference(
            session,
            "with-host-data",
            "amd-sev-snp",
            {"measurement": snp.platform.measurement.hex(), "host_data": "ab" * 32},
        )
        snp.runtime.policies.deny(session, "worker-1", IMAGE)
        snp.runtime.policies.allow(session, "worker-1", "with-host-data")
    receipt, _ = attest(snp, snp.platform.variant(host_data=host_data))
    assert reasons(receipt) == ["host_data_mismatch"]
    body = page(snp, f"/portal/entries/{receipt['entry']['index']}")
    row = row_of(body, "host_data")
    assert 'class="pcr-mismatch"' in row
    assert host_data.hex() in row
    assert f'with-host-data expects <code class="hash">{"ab" * 32}</code>' in row
    assert 'class="pcr-match"' in row_of(body, "measurement")
    assert "not referenced" in row_of(body, "id_key_digest")


def test_a_debug_guest_is_shown_refused_by_the_recorded_settings(snp) -> None:
    receipt, evidence = attest(snp, snp.platform.variant(debug=True))
    assert reasons(receipt) == ["debug_mode"]
    index = receipt["entry"]["index"]
    body = page(snp, f"/portal/entries/{index}")
    debug = row_of(body, "Debugging allowed (bit 19)")
    assert 'class="pcr-mismatch"' in debug
    assert "<td>yes</td>" in debug
    assert "not allowed</span>" in debug
    policy = int.from_bytes(evidence.data[8:16], "little")
    assert f"Guest policy <code>0x{policy:x}</code>" in body
    assert "The verdicts agree." in reverified(snp, index)
    # allowed by a later revision: the entry is still judged by the one it names
    with session_scope(snp.runtime.sessions) as session:
        snp.runtime.policies.set_scheme_options(session, "amd-sev-snp", allow_debug=True)
    assert "not allowed</span>" in row_of(
        page(snp, f"/portal/entries/{index}"), "Debugging allowed (bit 19)"
    )
    later, _ = attest(snp, snp.platform.variant(debug=True))
    assert later["verdict"]["status"] == "warning"
    assert "allowed</span>" in row_of(
        page(snp, f"/portal/entries/{later['entry']['index']}"), "Debugging allowed (bit 19)"
    )


def test_a_report_without_its_vcek_still_shows_what_it_says(snp) -> None:
    receipt, _ = attest(snp, drop=("vcek",))
    assert reasons(receipt) == ["endorsement_missing"]
    index = receipt["entry"]["index"]
    body = page(snp, f"/portal/entries/{index}")
    assert "its <strong>VCEK</strong>" in body
    assert snp.platform.measurement.hex() in body
    assert "the report is signed by its VCEK, and none came with it" in body
    assert "/endorsements/" in body  # the ASK and ARK it came with
    vcek = hashlib.sha256(snp.platform.chip.vcek).hexdigest()
    assert vcek not in body
    assert "<code>endorsement_missing</code>" in body
    again = reverified(snp, index)
    assert "The verdicts agree." in again
    assert "<li><code>endorsement_missing</code>" in again


def test_a_tcb_below_the_minimum_is_marked(snp) -> None:
    with session_scope(snp.runtime.sessions) as session:
        snp.runtime.policies.set_scheme_options(
            session, "amd-sev-snp", min_tcb={"snp": 30, "microcode": 80}
        )
    receipt, _ = attest(snp)
    assert reasons(receipt) == ["tcb_too_old"]
    body = page(snp, f"/portal/entries/{receipt['entry']['index']}")
    snp_row = row_of(body, "snp")
    assert 'class="pcr-mismatch"' in snp_row
    assert "too old</span>" in snp_row
    assert re.findall(r'<td class="num">(\d+|—)', snp_row)[-1] == "30"
    microcode = row_of(body, "microcode")
    assert "too old" not in microcode
    assert re.findall(r'<td class="num">(\d+|—)', microcode)[-1] == "80"
    assert re.findall(r'<td class="num">(\d+|—)', row_of(body, "tee"))[-1] == "—"


def test_malformed_evidence_still_renders_and_reverifies(snp) -> None:
    receipt = submit(snp, "amd-sev-snp", b"x" * 100, [])
    assert receipt["verdict"]["error"] == "malformed"
    index = receipt["entry"]["index"]
    publish(snp)
    body = page(snp, f"/portal/entries/{index}")
    assert "The report could not be decoded: <code>malformed: report:" in body
    assert "(100 bytes)" in body
    assert "None: nothing came with the report." in body
    assert "cannot be checked" in body
    assert snp.browser.get(f"/portal/entries/{index}/evidence.bin").data == b"x" * 100
    again = reverified(snp, index)
    assert "The verdicts agree." in again


def test_an_unreadable_vcek_is_shown_as_it_is_with_visible_text(snp) -> None:
    """The portal's text rules hold for SEV-SNP pages: a certificate's subject is the
    submitter's text, shown escaped and with every hiding character marked."""
    hostile = '<script>alert("x")</script>\u202eevil'
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostile)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    forged = certificate.public_bytes(Encoding.DER)
    receipt, _ = attest(snp, drop=("vcek",), extra=[("vcek", forged)])
    assert reasons(receipt) == ["chain_invalid"]
    body = page(snp, f"/portal/entries/{receipt['entry']['index']}")
    assert "<script>alert" not in body
    assert "\u202e" not in body
    subject = certificate.subject.rfc4514_string()  # RFC 4514 escapes < > and "
    assert str(escape(subject.replace("\u202e", "⟨U+202E⟩"))) in body
    chain = body.split("<h3>Certificate chain</h3>")[1].split("</table>")[0]
    assert "<td>VCEK<div" in chain
    assert "valid</span>" in chain


def test_a_real_vlek_report_shows_its_cloud_provider_and_amds_pinned_path(amd) -> None:
    """AMD's own VLEK sample (AWS, Milan, VMPL 1), judged by a service trusting only AMD's
    pinned roots at 2025-09-01: the ASVK and ARK are the packaged ones; the VLEK came with
    it. Its report_data binds no result of ours, which is the one reason."""
    report, vlek = fixture("trustee_snp_test-vlek-report.bin"), fixture("trustee_snp_test-vlek.der")
    nonce = report[0x50:0x70]
    with session_scope(amd.runtime.sessions) as session:
        amd.runtime.policies.add_reference(
            session, "aws-vlek-sample", "amd-sev-snp", {"measurement": report[0x90:0xC0].hex()}
        )
        amd.runtime.policies.allow(session, "worker-1", "aws-vlek-sample")
        amd.runtime.policies.set_scheme_options(session, "amd-sev-snp", max_vmpl=1)
        worker = session.execute(text("SELECT id FROM api_clients WHERE name = 'worker-1'"))
        session.execute(
            text("INSERT INTO challenges (nonce, client_id, expires_at) VALUES (:n, :c, :e)"),
            {"n": nonce, "c": worker.scalar_one(), "e": REAL_AT + timedelta(minutes=5)},
        )
    amd.runtime.clock = lambda: REAL_AT
    receipt = submit(amd, "amd-sev-snp", report, [("vlek", vlek)])
    amd.runtime.clock = lambda: NOW  # the portal session is judged by the clock too
    assert reasons(receipt) == ["result_binding_mismatch"], receipt["verdict"]
    index = receipt["entry"]["index"]
    body = page(amd, f"/portal/entries/{index}")
    assert "a <strong>VLEK</strong>" in body
    assert '<code class="wrap">CN=cc-us-east-2.amazonaws.com</code>' in body
    assert "masked (all zero)" in body  # a VLEK report's chip_id
    assert "Milan" in body
    assert "<dt>VMPL</dt><dd>1</dd>" in body
    assert "allowed</span>" in row_of(body, "VMPL")
    chain = body.split("<h3>Certificate chain</h3>")[1].split("</table>")[0]
    assert "<td>ASVK<div" in chain
    assert "packaged with this verifier" in chain
    assert "pinned in this verifier" in chain
    assert "CN=SEV-VLEK-Milan" in chain
    assert "one of the trust anchors the entry names" in chain
    assert chain.count('class="badge ok">valid</span>') == 3  # at 2025-09-01
    # the VLEK certifies the reported TCB (microcode 217), not the current one (220)
    microcode = row_of(body, "microcode")
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)', microcode)][:3] == [217, 217, 220]
    assert "does not hold</span>" in body
    vlek_digest = hashlib.sha256(vlek).hexdigest()
    download = amd.browser.get(f"/portal/entries/{index}/endorsements/{vlek_digest}.der")
    assert download.data == vlek
    again = reverified(amd, index)
    assert "The verdicts agree." in again
    assert "as of 2025-09-01 00:00:00 UTC" in again
    assert "<li><code>result_binding_mismatch</code>" in again


def test_reverify_runs_the_snp_scheme_on_what_is_stored(snp) -> None:
    receipt, _ = attest(snp)
    index = receipt["entry"]["index"]
    body = reverified(snp, index)
    recorded, again = body.split('id="reverification"')[1].split("<h3>Re-verified now")
    assert "v-affirming" in recorded
    assert "v-affirming" in again.split("</div>")[0]
    assert "The verdicts agree." in body
    assert "The report, its endorsements as stored" in body
    assert "judged against trust anchors" not in body  # the service holds the same roots


def test_reverify_says_when_the_service_holds_other_roots_now(snp) -> None:
    receipt, _ = attest(snp)
    index = receipt["entry"]["index"]
    snp.runtime.intake.schemes["amd-sev-snp"] = SnpVerifier()  # AMD's pinned roots only
    body = reverified(snp, index)
    recorded = hashlib.sha256(amd_pki().ark.der).hexdigest()
    assert f"the entry was judged against trust anchors {recorded}" in body
    assert ", ".join(anchors_of(SnpVerifier())) in body
    assert "untrusted_root" in body
    assert "The verdicts differ." in body


def test_the_entry_list_and_overview_read_by_evidence_kind(snp) -> None:
    snp.fresh()  # a Nitro enclave
    attest(snp)
    attest(snp, snp.platform.variant(debug=True))
    publish(snp)
    listing = page(snp, "/portal/entries?evidence_kind=amd-sev-snp")
    rows = re.findall(r"<tr>\s*<td class=\"num\">.*?</tr>", listing, re.S)
    assert len(rows) == 2
    assert all("amd-sev-snp" in row for row in rows)
    assert '<option value="amd-sev-snp" selected>' in listing
    assert "Evidence kind<select" in listing
    everything = page(snp, "/portal/entries?kind=attestation")
    assert "aws-nitro-enclave" in everything
    overview = page(snp, "/portal/")
    table = overview.split("<h2>By evidence kind</h2>")[1].split("</table>")[0]
    cells = re.sub(r"<[^>]+>", " ", table).split()
    snp_row = cells[cells.index("amd-sev-snp") : cells.index("amd-sev-snp") + 5]
    assert snp_row == ["amd-sev-snp", "1", "0", "1", "2"]
    nitro_row = cells[cells.index("aws-nitro-enclave") : cells.index("aws-nitro-enclave") + 5]
    assert nitro_row == ["aws-nitro-enclave", "1", "0", "0", "1"]
    assert 'href="/portal/entries?evidence_kind=amd-sev-snp&amp;verdict=contraindicated"' in table
    assert "affirming: 2" in overview  # the chart counts every kind, as before
