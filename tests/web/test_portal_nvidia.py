"""The auditor portal's composite entries (issue #14), through Flask's test client on a real
database: a simulated SEV-SNP guest's evidence with its simulated GPUs' reports and RIMs,
submitted through the API exactly as tests/web/test_composite_submissions.py does. The entry
page shows the composite verdict (overall, the CPU's own, the composition reasons, a row per
device linking to its page) and the EAR's submods; a device's page shows its chain, its
nonce (expected, recomputed, reported), its FWID and every measurement block against the
RIMs, and serves the report and each endorsement byte for byte."""

from __future__ import annotations

import base64
import hashlib
import re
import warnings

import pytest

from enclave_worker.simulated_nvidia import SimulatedGpu, SimulatedNvidiaWarning
from tests.web.conftest import csrf_of, signed_in
from tests.web.test_composite_submissions import (  # noqa: F401 - fixtures, used by name
    composite,
    cpu_evidence,
    device_evidence,
    nvidia_pki,
    stored,
    submit,
)

pytestmark = pytest.mark.db


@pytest.fixture
def portal(composite):  # noqa: F811 - the imported fixture
    """The composite service with an auditor signed in."""
    return signed_in(composite)


def get(service, path: str, status: int = 200) -> str:
    response = service.browser.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:3000]
    return response.get_data(as_text=True)


def status(service, path: str) -> int:
    return int(service.browser.get(path).status_code)


def section(body: str, ident: str) -> str:
    found = re.search(rf'<section class="panel" id="{ident}">.*?</section>', body, re.S)
    assert found, f"no section {ident}"
    return found.group(0)


def section_by(body: str, ident: str) -> str:
    found = re.search(rf'<div class="compare" id="{ident}">.*?</p>\s*</div>', body, re.S)
    assert found, f"no {ident}"
    return found.group(0)


def rows(body: str, table_class: str) -> list[str]:
    table = re.search(rf'<table class="[^"]*\b{table_class}\b[^"]*">.*?</table>', body, re.S)
    assert table, f"no table {table_class}"
    return re.findall(r"<tr[^>]*data-[a-z]+=.*?</tr>", table.group(0), re.S)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def measurement(body: str, block: int) -> str:
    found = re.search(rf'<tr class="([^"]+)" data-block="{block}" .*?</tr>', body, re.S)
    assert found, f"no block {block}"
    return found.group(0)


def composite_entry(service, devices_of=None) -> tuple[int, bytes]:
    """Submit the CPU evidence with its GPUs (``devices_of(nonce)``: the device list, by
    default both GPUs' evidence); the entry's index and the challenge."""
    nonce = service.challenge()
    devices = (
        devices_of(nonce)
        if devices_of is not None
        else [device_evidence(g, nonce, i) for i, g in enumerate(service.gpus)]
    )
    reply = submit(service, cpu_evidence(service, nonce), devices)
    assert reply.status_code == 201, reply.json
    return reply.json["entry"]["index"], nonce


def test_an_affirming_composite_shows_each_device_and_the_ears_submods(portal) -> None:
    index, _ = composite_entry(portal)
    body = get(portal, f"/portal/entries/{index}")
    panel = section(body, "composite")
    assert "Composite verdict" in panel
    facts = text_of(panel)
    assert "Overall affirming" in facts
    assert "CPU evidence affirming amd-sev-snp" in facts
    assert "no composition reason" in facts
    listed = rows(panel, "devices")
    assert [re.search(r'data-submod="([^"]+)"', r).group(1) for r in listed] == ["gpu0", "gpu1"]
    record = stored(portal, index)
    probe = portal.gpus[0]
    for row, device in zip(listed, record["devices"], strict=True):
        cells = text_of(row)
        assert f'href="/portal/entries/{index}/devices/{device["submod"]}"' in row
        for expected in ("nvidia-gpu", "HOPPER", "affirming", probe.driver, probe.vbios, "SPT",
                         "h100-cc"):  # fmt: skip
            assert expected in cells, (expected, cells)
    ear = rows(section(body, "ear"), "ear-submods")
    assert [text_of(r).split()[:2] for r in ear] == [
        ["cpu0", "affirming"], ["gpu0", "affirming"], ["gpu1", "affirming"],
    ]  # fmt: skip
    assert "signature valid" in section(body, "ear")


def test_a_device_page_shows_its_chain_nonce_fwid_and_every_measurement(portal) -> None:
    index, challenge = composite_entry(portal)
    record = stored(portal, index)
    device = record["devices"][1]
    body = get(portal, f"/portal/entries/{index}/devices/gpu1")
    nonce = text_of(section(body, "device-nonce"))
    assert device["nonce"] in nonce
    assert challenge.hex() in nonce
    assert "recomputed here: the same" in nonce
    assert "holds the report was made for this challenge" in nonce
    assert 'SHA-256("attestation-ledger:gpu-nonce:v1:" || challenge' in nonce.replace("&#34;", '"')
    report = section(body, "device-report")
    assert "matches the leaf" in report
    assert portal.gpus[1].fwid.hex() in report
    # every block: those a RIM lists matched, with the RIMs named; none mismatched
    blocks = re.findall(r'<tr class="m-([a-z]+)[^"]*" data-block="(\d+)"', report)
    statuses = {status for status, _ in blocks}
    assert statuses <= {"matched", "unreferenced"}, statuses
    assert len({b for _, b in blocks}) == len(blocks) == 64
    rims = {e["sha256"] for e in device["endorsements"] if e["kind"] == "rim"}
    assert len(rims) == 2
    for digest in rims:
        assert digest in report
    first = measurement(report, 1)
    assert "m-matched" in first
    assert 'data-index="0"' in first
    assert "vbios RIM" in first or "driver RIM" in first
    chain = section(body, "device-chain")
    named = device["endorsements"]
    certificates = [e["sha256"] for e in named if e["kind"] == "device-certificate"]
    assert len(certificates) == 5
    assert chain.count('<span class="badge ok">valid</span>') == 5
    for digest in certificates:
        assert digest[:16] in chain
    assert "FMC LF" in chain  # the leaf's subject
    assert "trust anchor" in chain  # the root, named by the entry's trust_anchors


def test_a_device_report_and_its_endorsements_download_byte_for_byte(portal) -> None:
    index, _ = composite_entry(portal)
    device = stored(portal, index)["devices"][0]
    base = f"/portal/entries/{index}/devices/gpu0"
    report = portal.browser.get(f"{base}/report.bin")
    assert report.status_code == 200
    assert hashlib.sha256(report.data).hexdigest() == device["evidence_sha256"]
    assert "attachment" in report.headers["Content-Disposition"]
    page_body = get(portal, base)
    for named in device["endorsements"]:
        suffix = "xml" if named["kind"] == "rim" else "der"
        url = f"{base}/endorsements/{named['sha256']}.{suffix}"
        assert url in page_body
        got = portal.browser.get(url)
        assert got.status_code == 200, url
        assert hashlib.sha256(got.data).hexdigest() == named["sha256"]
        other = "der" if suffix == "xml" else "xml"  # only under its kind's suffix
        assert status(portal, f"{base}/endorsements/{named['sha256']}.{other}") == 404
    # the report is no endorsement; another device's or an unnamed digest is not served here
    assert status(portal, f"{base}/endorsements/{device['evidence_sha256']}.der") == 404
    gpu1 = stored(portal, index)["devices"][1]
    foreign = next(e for e in gpu1["endorsements"] if e["kind"] == "device-certificate")
    assert status(portal, f"{base}/endorsements/{foreign['sha256']}.der") == 404
    assert status(portal, f"{base}/endorsements/{'0' * 64}.der") == 404


def test_a_mismatched_measurement_is_marked_at_its_index(portal) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        bad = SimulatedGpu(portal.gpus[0].pki, blocks={7: b"\x5a" * 48})

    def devices(nonce):
        return [device_evidence(portal.gpus[0], nonce, 0), device_evidence(bad, nonce, 1)]

    index, _ = composite_entry(portal, devices)
    body = get(portal, f"/portal/entries/{index}")
    panel = section(body, "composite")
    assert "Overall contraindicated" in text_of(panel)
    gpu1 = next(r for r in rows(panel, "devices") if 'data-submod="gpu1"' in r)
    assert "contraindicated" in gpu1
    assert "measurement_mismatch" in gpu1
    assert "gpu1" in text_of(rows(section(body, "ear"), "ear-submods")[2])
    assert "measurement_mismatch" in text_of(rows(section(body, "ear"), "ear-submods")[2])
    whole = get(portal, f"/portal/entries/{index}/devices/gpu1")
    report = section(whole, "device-report")
    row = measurement(report, 7)
    assert "m-mismatched" in row
    assert 'data-index="6"' in row
    assert "5a" * 48 in row  # the reported value
    assert bad.measurements[6].hex() in row  # what the RIM expects
    assert re.findall(r'<tr class="m-mismatched', report) == ['<tr class="m-mismatched']
    assert "m-matched" in measurement(report, 8)
    # the other device is untouched
    assert "m-mismatched" not in section(
        get(portal, f"/portal/entries/{index}/devices/gpu0"), "device-report"
    )


def test_a_replayed_gpu_report_shows_its_nonce_mismatch(portal) -> None:
    first = portal.challenge()
    devices = [device_evidence(g, first, i) for i, g in enumerate(portal.gpus)]
    assert submit(portal, cpu_evidence(portal, first), devices).status_code == 201
    second = portal.challenge()  # another CPU evidence, the same GPU reports
    reply = submit(portal, cpu_evidence(portal, second), devices)
    index = reply.json["entry"]["index"]
    body = get(portal, f"/portal/entries/{index}")
    facts = text_of(section(body, "composite"))
    assert "Overall contraindicated" in facts
    assert "CPU evidence affirming" in facts
    nonce = text_of(section(get(portal, f"/portal/entries/{index}/devices/gpu0"), "device-nonce"))
    record = stored(portal, index)
    expected, reported = record["devices"][0]["nonce"], record["devices"][0]["claims"]["nonce"]
    assert expected != reported
    assert f"Expected {expected}" in nonce
    assert f"Reported {reported}" in nonce
    assert "does not hold" in nonce
    assert second.hex() in nonce


def test_missing_devices_are_a_composition_reason(portal) -> None:
    index, _ = composite_entry(portal, lambda nonce: [])
    panel = section(get(portal, f"/portal/entries/{index}"), "composite")
    facts = text_of(panel)
    assert "Overall contraindicated" in facts
    assert "CPU evidence affirming" in facts
    assert "devices_missing" in facts
    assert "1 GPU(s) required, 0 given" in facts
    assert "No device was given" in facts
    get(portal, f"/portal/entries/{index}/devices/gpu0", 404)


def test_a_single_evidence_entry_has_no_composite_panel(portal) -> None:
    reply = submit(portal, cpu_evidence(portal, portal.challenge("worker-2")), [], who="worker-2")
    index = reply.json["entry"]["index"]
    body = get(portal, f"/portal/entries/{index}")
    assert 'id="composite"' not in body
    get(portal, f"/portal/entries/{index}/devices/gpu0", 404)


@pytest.mark.parametrize(
    "path",
    ["devices/gpu9", "devices/cpu0", "devices/composite", "devices/gpu0x", "devices/..%2f1",
     "devices/gpu9/report.bin", "devices/gpu0/endorsements/zz.der"],
)  # fmt: skip
def test_what_no_device_names_is_not_found(portal, path) -> None:
    index, _ = composite_entry(portal)
    get(portal, f"/portal/entries/{index}/{path}", 404)
    get(portal, "/portal/entries/987654/devices/gpu0", 404)


def test_a_report_or_rim_that_does_not_parse_is_shown_as_such(portal) -> None:
    """Stored bytes the parsers refuse (a device's report, a RIM) leave a note on the device's
    page, with the parser's code; the rest of the page is there."""
    garbage = base64.b64encode(b"not an SPDM report").decode()
    not_a_rim = base64.b64encode(b"<SoftwareIdentity>not a RIM</SoftwareIdentity>").decode()

    def devices(nonce):
        listed = [device_evidence(g, nonce, i) for i, g in enumerate(portal.gpus)]
        listed[1]["data"] = garbage
        rims = [e for e in listed[0]["endorsements"] if e["kind"] == "rim"]
        rims[0]["data"] = not_a_rim
        return listed

    index, _ = composite_entry(portal, devices)
    body = get(portal, f"/portal/entries/{index}/devices/gpu1")
    report = text_of(section(body, "device-report"))
    assert "The report could not be read: malformed" in report
    assert "kept as submitted (18 bytes)" in report
    assert "m-matched" not in body
    assert "Device certificate chain" in body
    assert status(portal, f"/portal/entries/{index}/devices/gpu1/report.bin") == 200
    body = get(portal, f"/portal/entries/{index}/devices/gpu0")
    report = section(body, "device-report")
    assert "unreadable" in report
    assert "malformed" in report
    assert "m-matched" in report  # the other RIM still compares its indexes


def test_reverifying_a_composite_judges_its_cpu_evidence_against_the_cpus_own_verdict(
    portal,
) -> None:
    """Re-verify judges the CPU evidence again (not the devices): it is compared with the
    CPU's recorded status and reasons, so a device's rejection is not a disagreement."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        bad = SimulatedGpu(portal.gpus[0].pki, blocks={7: b"\x5a" * 48})

    def devices(nonce):
        return [device_evidence(portal.gpus[0], nonce, 0), device_evidence(bad, nonce, 1)]

    index, _ = composite_entry(portal, devices)
    body = get(portal, f"/portal/entries/{index}")
    form = {"csrf": csrf_of(body)}
    again = portal.browser.post(f"/portal/entries/{index}/reverify", data=form)
    assert again.status_code == 200
    compared = text_of(section_by(again.get_data(as_text=True), "reverification"))
    assert "The verdicts agree." in compared, compared
    assert "Recorded (the CPU evidence) affirming" in compared
    assert "measurement_mismatch" not in compared
    assert "the devices are not judged again here" in compared
