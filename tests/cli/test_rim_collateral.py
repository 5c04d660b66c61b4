"""NVIDIA RIMs as collateral of the service (issue #14, contract section 5): imported by an
operator (NVIDIA's real VBIOS RIM, simulated driver and VBIOS RIMs, RIM service JSON),
fetched from a RIM service or a mirror (a real HTTP server on loopback), kept once by
SHA-256, and chosen for a device report by kind, version and chip; a device judged after
``RimSource.complete`` passes the verifier's RIM checks."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.server
import json
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger import rim_collateral
from attest_ledger.collateral import CollateralError
from attest_ledger.models import CollateralDocument
from attest_ledger.rim_collateral import (
    RimDocument,
    RimFetcher,
    RimSource,
    describe_rim,
    device_chip,
    documents_in_file,
    keep_rims,
    rim_ids,
    select_rim,
)
from attest_ledger.settings import Settings
from enclave_worker import SimulatedGpu, SimulatedNvidiaPki, SimulatedNvidiaWarning
from enclave_worker.simulated_rim import SimulatedRim
from tests.cli.support import run
from tests.support import SIM_AT
from tests.verifier.nvidia.support import (
    AT,
    JSON_FILES,
    NV,
    PROD_RIM,
    hex_policy,
    hex_report,
    hopper_chain,
    json_device,
)
from verifier import Endorsement, EndorsementKind, Evidence, EvidenceKind, TrustAnchor
from verifier.errors import PolicyViolation
from verifier.nvidia import NvidiaImage, NvidiaPolicy, NvidiaVerifier, RimKind, parse_report

pytestmark = pytest.mark.db

#: NVIDIA's id of the real VBIOS RIM (nvtrust names the sample 1010_0200_882_96005E0001_PROD)
REAL_VBIOS_ID = "NV_GPU_VBIOS_1010_0200_882_96005E0001"
NONCE = bytes(range(32))


# --- simulated devices and their RIMs ----------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> SimulatedNvidiaPki:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return SimulatedNvidiaPki.generate(at=SIM_AT)


def _gpu(pki: SimulatedNvidiaPki, **kwargs: object) -> SimulatedGpu:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return SimulatedGpu(pki, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def devices(pki: SimulatedNvidiaPki) -> dict[str, SimulatedGpu]:
    hopper = _gpu(pki, arch="HOPPER", driver="590.12")
    return {
        "hopper": hopper,
        "hopper-newer": hopper.variant(driver="590.13"),
        "blackwell": _gpu(pki, arch="BLACKWELL", driver="590.12"),
        "switch": _gpu(pki, arch="LS10"),
    }


def _rims(gpu: SimulatedGpu) -> dict[str, bytes]:
    rim = SimulatedRim(gpu)
    out = {"vbios": rim.vbios()}
    if gpu.arch != "LS10":
        out["driver"] = rim.driver()
    return out


def _verifier_evidence(evidence: object) -> Evidence:
    """The worker's Evidence as the verifier's (same fields)."""
    kind = EvidenceKind(evidence.kind)  # type: ignore[attr-defined]
    endorsements = tuple(
        Endorsement(EndorsementKind(e.kind), e.data)
        for e in evidence.endorsements  # type: ignore[attr-defined]
    )
    return Evidence(kind, evidence.data, endorsements)  # type: ignore[attr-defined]


def device(gpu: SimulatedGpu) -> Evidence:
    """The device's report and chain, without RIMs (as the worker sends it)."""
    return _verifier_evidence(gpu.evidence(NONCE))


def rims_of(evidence: Evidence) -> list[bytes]:
    return [e.data for e in evidence.endorsements if e.kind is EndorsementKind.RIM]


def kept(factory: sessionmaker[Session]) -> list[CollateralDocument]:
    with factory() as session:
        rows = list(session.execute(select(CollateralDocument)).scalars())
        session.expunge_all()
    return rows


def keep(factory: sessionmaker[Session], *documents: RimDocument, source: str = "test") -> int:
    with factory() as session, session.begin():
        return keep_rims(session, documents, source=source)


# --- RIM ids ----------------------------------------------------------------------------------


def test_the_id_of_nvidias_report_is_its_vbios_rims() -> None:
    report = parse_report(hex_report())
    chip = device_chip(Evidence(EvidenceKind.NVIDIA_GPU, report.raw, hopper_chain()), report)
    assert chip == "GH100"
    ids = rim_ids(report, chip)
    assert ids[RimKind.VBIOS] == REAL_VBIOS_ID
    # nvtrust names the sample RIM by the id without its prefix
    assert (
        "nv_rim_vbios_" + REAL_VBIOS_ID.removeprefix("NV_GPU_VBIOS_") + "_PROD.swidtag" == PROD_RIM
    )
    assert ids[RimKind.DRIVER] == "NV_GPU_DRIVER_GH100_535.86.09"
    assert (report.project, report.project_sku, report.chip_sku) == ("1010", "0200", "882")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (JSON_FILES[0], {"vbios": "NV_GPU_VBIOS_G520_0200_885_9600A50001",
                         "driver": "NV_GPU_DRIVER_GH100_590.12"}),
        (JSON_FILES[1], {"vbios": "NV_GPU_VBIOS_G525_0220_886_9700E40011",
                         "driver": "NV_GPU_CC_DRIVER_GB100_590.48.01"}),
        # NVIDIA's SDK tests name this switch's RIM switchVBIOSRim_NV_SWITCH_BIOS_5612_...
        (JSON_FILES[2], {"vbios": "NV_SWITCH_BIOS_5612_0002_890_9610550001"}),
    ],
)  # fmt: skip
def test_ids_of_nvidias_evidence_are_as_nvidias_verifiers_build_them(name, expected) -> None:
    data, chain, _, _ = json_device(name)
    report = parse_report(data)
    chip = device_chip(Evidence(EvidenceKind.NVIDIA_GPU, data, chain), report)
    assert {str(k): v for k, v in rim_ids(report, chip).items()} == expected


def test_without_a_chain_or_chip_info_a_driver_id_is_not_guessed() -> None:
    report = parse_report(hex_report())  # Hopper reports carry no chip info
    assert device_chip(Evidence(EvidenceKind.NVIDIA_GPU, report.raw, ()), report) is None
    assert rim_ids(report, None)[RimKind.DRIVER] is None


def test_a_simulated_report_without_project_fields_has_no_vbios_id(devices) -> None:
    report = parse_report(devices["hopper"].report(NONCE))
    assert report.project is None
    assert report.chip_sku is None
    ids = rim_ids(report, "GH100")
    assert ids == {RimKind.VBIOS: None, RimKind.DRIVER: "NV_GPU_DRIVER_GH100_590.12"}


def test_unreadable_project_fields_read_as_none() -> None:
    report = parse_report(hex_report())
    opaque = dict(report.opaque)
    opaque[17] = b"\xff\xfe\x00"
    opaque[18] = b"\x00"
    odd = dataclasses.replace(report, opaque=opaque)
    assert odd.project is None
    assert odd.project_sku is None
    assert odd.chip_sku == "882"


# --- describing ------------------------------------------------------------------------------


def test_describe_nvidias_vbios_rim() -> None:
    info = describe_rim((NV / PROD_RIM).read_bytes())
    assert (info.kind, info.version, info.product) == ("vbios", "96.00.5e.00.01", "GH100")
    assert info.rim_id is None  # a GPU VBIOS RIM does not say its board
    assert info.tag_id.startswith("560b6686")
    assert info.not_before == datetime(2023, 6, 23, 9, 30, 33, tzinfo=UTC)
    assert info.not_after == datetime(2025, 6, 22, 9, 30, 33, tzinfo=UTC)
    assert describe_rim((NV / PROD_RIM).read_bytes(), REAL_VBIOS_ID).rim_id == REAL_VBIOS_ID


def test_describe_simulated_rims_derives_the_ids_the_rim_says_enough_for(devices) -> None:
    hopper, switch = _rims(devices["hopper"]), _rims(devices["switch"])
    driver = describe_rim(hopper["driver"])
    assert (driver.kind, driver.version, driver.rim_id) == (
        "driver", "590.12", "NV_GPU_DRIVER_GH100_590.12",
    )  # fmt: skip
    assert describe_rim(_rims(devices["blackwell"])["driver"]).rim_id == (
        "NV_GPU_CC_DRIVER_GB100_590.12"
    )
    assert describe_rim(switch["vbios"]).rim_id == "NV_SWITCH_BIOS_5612_0002_890_9610550001"
    assert describe_rim(hopper["vbios"]).rim_id is None


@pytest.mark.parametrize(
    "rim_id",
    ["NV_GPU_DRIVER_GH100_590.13", "NV_GPU_VBIOS_1010_0200_882_96005E0001", "rim", "NV_GPU_X_1"],
)
def test_an_id_that_does_not_name_the_rim_is_refused(devices, rim_id) -> None:
    with pytest.raises(CollateralError, match=r"does not name a driver RIM of version 590\.12"):
        describe_rim(_rims(devices["hopper"])["driver"], rim_id)


@pytest.mark.parametrize(
    "junk",
    [b"", b"<", b"<a/>", b"not xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>',
     b"<SoftwareIdentity/>", b"\x00" * 70000],
)  # fmt: skip
def test_an_unreadable_rim_is_refused_with_our_error(junk) -> None:
    with pytest.raises(CollateralError, match="RIM"):
        describe_rim(junk)


def test_service_json_and_named_files() -> None:
    xml = (NV / PROD_RIM).read_bytes()
    body = json.dumps({"id": REAL_VBIOS_ID, "rim": base64.b64encode(xml).decode(),
                       "sha256": hashlib.sha256(xml).hexdigest(), "request_id": "r1",
                       "rim_format": "TCG"}).encode()  # fmt: skip
    assert documents_in_file(body) == [RimDocument(xml, REAL_VBIOS_ID)]
    assert documents_in_file(xml, name=f"{REAL_VBIOS_ID}.xml") == [RimDocument(xml, REAL_VBIOS_ID)]
    assert documents_in_file(xml, name=PROD_RIM) == [RimDocument(xml, None)]
    # a misleading file name is a hint, not a claim
    assert documents_in_file(xml, name="NV_GPU_DRIVER_GH100_1.0.xml") == [RimDocument(xml, None)]
    for bad in (b'{"rim": 5}', b'{"rim": "%%%"}', b'{"id": 5, "rim": ""}', b"[]", b"{",
                json.dumps({"id": "NV_GPU_DRIVER_GH100_1.0",
                            "rim": base64.b64encode(xml).decode()}).encode()):  # fmt: skip
        with pytest.raises(CollateralError):
            documents_in_file(bad)


# --- the CLI ----------------------------------------------------------------------------------


def rows_of(settings) -> list[CollateralDocument]:
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            rows = list(session.execute(select(CollateralDocument)).scalars())
            session.expunge_all()
    finally:
        engine.dispose()
    return rows


def test_import_rims_and_list_them(capsys, settings, tmp_path, devices) -> None:
    rims = _rims(devices["hopper"])
    (tmp_path / "driver.xml").write_bytes(rims["driver"])
    (tmp_path / "vbios.swidtag").write_bytes(rims["vbios"])
    xml = (NV / PROD_RIM).read_bytes()
    (tmp_path / "service.json").write_text(
        json.dumps({"id": REAL_VBIOS_ID, "rim": base64.b64encode(xml).decode()})
    )
    files = [str(tmp_path / n) for n in ("driver.xml", "vbios.swidtag", "service.json")]
    code, out, err = run(capsys, settings, "collateral", "import", *files)
    assert code == 0, err
    assert "3 documents read, 3 new" in out
    rows = {r.sha256: r for r in rows_of(settings)}
    real = rows[hashlib.sha256(xml).digest()]
    assert (real.kind, real.tee, real.version, real.name, real.source) == (
        "rim", "vbios", "96.00.5e.00.01", REAL_VBIOS_ID, "import",
    )  # fmt: skip
    assert real.fmspc is None
    assert real.issued_at == datetime(2023, 6, 23, 9, 30, 33, tzinfo=UTC)
    driver = rows[hashlib.sha256(rims["driver"]).digest()]
    assert (driver.tee, driver.version, driver.name) == (
        "driver", "590.12", "NV_GPU_DRIVER_GH100_590.12",
    )  # fmt: skip
    again = run(capsys, settings, "collateral", "import", str(NV / PROD_RIM))
    assert again[0] == 0
    assert " 0 new" in again[1]
    code, out, _ = run(capsys, settings, "collateral", "list", "--kind", "rim")
    assert code == 0
    assert out.count("rim ") == 3
    assert REAL_VBIOS_ID in out
    assert "NV_GPU_DRIVER_GH100_590.12" in out
    assert "(no id)" in out
    assert run(capsys, settings, "collateral", "list", "--kind", "crl")[1] == ""


def test_an_unreadable_rim_file_is_refused_and_nothing_kept(capsys, settings, tmp_path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes((NV / PROD_RIM).read_bytes().replace(b"colloquialVersion=", b"version2="))
    code, _, err = run(capsys, settings, "collateral", "import", str(NV / PROD_RIM), str(bad))
    assert code == 2
    assert "bad.xml" in err
    assert "colloquialVersion" in err
    assert rows_of(settings) == []


def test_intel_collateral_still_imports(capsys, settings) -> None:
    phala = Path(NV).parent / "tdx" / "phala_dcapqvl_tdx_quote_collateral.json"
    code, _, err = run(capsys, settings, "collateral", "import", str(phala))
    assert code == 0, err
    assert {r.kind for r in rows_of(settings)} >= {"tcb-info", "qe-identity", "crl"}


def test_fetch_rim_needs_a_url(capsys, settings) -> None:
    code, _, err = run(capsys, settings, "collateral", "fetch-rim", REAL_VBIOS_ID)
    assert code == 2
    assert "ATTEST_LEDGER_RIM_URL" in err


def test_settings_read_the_rim_url(tmp_path) -> None:
    env = {"ATTEST_LEDGER_DATA_DIR": str(tmp_path), "ATTEST_LEDGER_RIM_URL": "http://rims.test"}
    assert Settings.from_env(env).rim_url == "http://rims.test"
    assert Settings.from_env({"ATTEST_LEDGER_DATA_DIR": str(tmp_path)}).rim_url is None


# --- a RIM service on loopback ----------------------------------------------------------------


class _RimService(http.server.BaseHTTPRequestHandler):
    """/v1/rim/<id> answered as NVIDIA's RIM service does (JSON, the RIM base64 in "rim"),
    or as a static mirror (the XML itself); counts every request."""

    rims: ClassVar[dict[str, bytes]] = {}
    raw: ClassVar[bool] = False
    lie_about_id: ClassVar[bool] = False
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        rim_id = self.path.removeprefix("/v1/rim/")
        xml = self.rims.get(rim_id)
        if not self.path.startswith("/v1/rim/") or xml is None:
            self.send_error(404)
            return
        if self.raw:
            body, kind = xml, "application/xml"
        else:
            answered = "NV_GPU_DRIVER_GH100_0.0" if self.lie_about_id else rim_id
            body = json.dumps({"id": answered, "rim": base64.b64encode(xml).decode(),
                               "sha256": hashlib.sha256(xml).hexdigest(),
                               "request_id": "test", "rim_format": "TCG"}).encode()  # fmt: skip
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    _RimService.rims, _RimService.requests = {}, []
    _RimService.raw = _RimService.lie_about_id = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RimService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_rim_from_the_service_keeps_it_by_id(capsys, settings, service) -> None:
    _RimService.rims = {REAL_VBIOS_ID: (NV / PROD_RIM).read_bytes()}
    configured = dataclasses.replace(settings, rim_url=service + "/v1/rim/")
    code, out, err = run(capsys, configured, "collateral", "fetch-rim", REAL_VBIOS_ID)
    assert code == 0, err
    assert "1 new" in out
    (row,) = rows_of(settings)
    assert (row.name, row.source, row.tee) == (REAL_VBIOS_ID, "rim-service", "vbios")
    assert _RimService.requests == [f"/v1/rim/{REAL_VBIOS_ID}"]
    code, _, err = run(capsys, configured, "collateral", "fetch-rim", "NV_GPU_DRIVER_GH100_1.2")
    assert code == 1
    assert "HTTP 404" in err


def test_the_fetcher_refuses_what_it_did_not_ask_for(service, devices) -> None:
    xml = (NV / PROD_RIM).read_bytes()
    _RimService.rims = {REAL_VBIOS_ID: xml, "NV_GPU_DRIVER_GH100_590.12": xml}
    fetcher = RimFetcher(service)
    try:
        assert fetcher.fetch(REAL_VBIOS_ID) == RimDocument(xml, REAL_VBIOS_ID)
        with pytest.raises(CollateralError, match="does not name a vbios RIM"):
            fetcher.fetch("NV_GPU_DRIVER_GH100_590.12")  # a VBIOS RIM under a driver id
        _RimService.lie_about_id = True
        with pytest.raises(CollateralError, match="answered with"):
            fetcher.fetch(REAL_VBIOS_ID)
        _RimService.lie_about_id, _RimService.raw = False, True
        assert fetcher.fetch(REAL_VBIOS_ID) == RimDocument(xml, REAL_VBIOS_ID)  # a mirror
        with pytest.raises(CollateralError, match="not an NVIDIA RIM id"):
            fetcher.fetch("../../etc/passwd")
    finally:
        fetcher.close()
    with pytest.raises(CollateralError, match="expected http"):
        RimFetcher("ftp://rims.test")
    unreachable = RimFetcher("http://127.0.0.1:9", timeout=2)
    with pytest.raises(CollateralError, match=r"127\.0\.0\.1:9"):
        unreachable.fetch(REAL_VBIOS_ID)
    unreachable.close()


def test_a_directory_mirror(tmp_path, devices) -> None:
    driver = _rims(devices["hopper"])["driver"]
    (tmp_path / "NV_GPU_DRIVER_GH100_590.12.xml").write_bytes(driver)
    for base in (str(tmp_path), tmp_path.as_uri()):
        fetcher = RimFetcher(base)
        assert fetcher.fetch("NV_GPU_DRIVER_GH100_590.12").data == driver
        with pytest.raises(CollateralError, match=r"NV_GPU_DRIVER_GH100_590\.13\.xml"):
            fetcher.fetch("NV_GPU_DRIVER_GH100_590.13")
        fetcher.close()


# --- completing a device's RIMs ---------------------------------------------------------------


def _keep_all(factory, devices) -> dict[str, dict[str, bytes]]:
    out = {name: _rims(gpu) for name, gpu in devices.items()}
    keep(factory, *(RimDocument(d) for rims in out.values() for d in rims.values()))
    return out


def test_complete_adds_the_rims_of_the_reports_version_and_chip(session_factory, devices) -> None:
    rims = _keep_all(session_factory, devices)
    source = RimSource(session_factory)
    at = SIM_AT + timedelta(hours=1)
    for name in ("hopper", "hopper-newer", "blackwell"):
        completed = source.complete(device(devices[name]), at)
        assert sorted(rims_of(completed)) == sorted(rims[name].values()), name
    switch = source.complete(device(devices["switch"]), at)
    assert rims_of(switch) == [rims["switch"]["vbios"]]  # an NVSwitch has no driver RIM


def test_no_rim_of_another_version_or_chip_is_chosen(session_factory, devices) -> None:
    rims = _rims(devices["blackwell"])
    keep(session_factory, RimDocument(_rims(devices["hopper-newer"])["driver"]),
         RimDocument(rims["driver"]), RimDocument(rims["vbios"]))  # fmt: skip
    completed = RimSource(session_factory).complete(device(devices["hopper"]), SIM_AT)
    # Hopper 590.12: the kept drivers are Hopper 590.13 and Blackwell 590.12; the VBIOS is
    # Blackwell's (another version)
    assert rims_of(completed) == []
    with session_factory() as session:
        assert select_rim(session, kind="driver", version="590.12", chip="GH100", at=SIM_AT) is None
        chosen = select_rim(session, kind="driver", version="590.12", chip="GB100", at=SIM_AT)
        assert chosen is not None
        assert bytes(chosen.data) == rims["driver"]
        # signed after the instant judged: not chosen
        early = SIM_AT - timedelta(days=2)
        assert select_rim(session, kind="driver", version="590.12", chip="GB100", at=early) is None


def test_the_most_recently_signed_and_the_named_rim_come_first(session_factory, devices) -> None:
    hopper = devices["hopper"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        later = SimulatedNvidiaPki.generate(at=SIM_AT + timedelta(days=3))
    old, new = SimulatedRim(hopper).driver(), SimulatedRim(hopper, pki=later).driver()
    keep(session_factory, RimDocument(old), RimDocument(new))
    at = SIM_AT + timedelta(days=10)
    with session_factory() as session:
        chosen = select_rim(session, kind="driver", version="590.12", chip="GH100", at=at)
        assert chosen is not None
        assert bytes(chosen.data) == new
    # the real VBIOS RIM: kept without id, then again under its id; the id is recorded
    xml = (NV / PROD_RIM).read_bytes()
    keep(session_factory, RimDocument(xml))
    keep(session_factory, RimDocument(xml, REAL_VBIOS_ID))
    with session_factory() as session:
        row = session.get(CollateralDocument, hashlib.sha256(xml).digest())
        assert row is not None
        assert row.name == REAL_VBIOS_ID


def test_a_choice_is_remembered_until_a_rim_is_kept_here_or_it_expires(
    session_factory, devices
) -> None:
    """Every GPU of a fleet asks the same question of each report: the answer is remembered
    (no query, no RIM parsed again) for choice_seconds, and forgotten at once when this
    source keeps a RIM; a RIM another process keeps is seen once the choice expires."""
    hopper = devices["hopper"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        later = SimulatedNvidiaPki.generate(at=SIM_AT + timedelta(days=3))
    old, new = SimulatedRim(hopper).driver(), SimulatedRim(hopper, pki=later).driver()
    keep(session_factory, RimDocument(old))
    source = RimSource(session_factory, choice_seconds=3600)
    at = SIM_AT + timedelta(days=10)
    first = source.complete(device(hopper), at)
    assert old in rims_of(first)
    keep(session_factory, RimDocument(new))  # by another process: an import
    assert old in rims_of(source.complete(device(hopper), at))  # remembered
    plain = device(hopper)
    vbios = Endorsement(EndorsementKind.RIM, SimulatedRim(hopper, pki=later).vbios())
    attached = Evidence(plain.kind, plain.data, (*plain.endorsements, vbios))
    source.complete(attached, at)  # a RIM kept here: the choices are forgotten
    assert new in rims_of(source.complete(device(hopper), at))
    expiring = RimSource(session_factory, choice_seconds=0)
    assert new in rims_of(expiring.complete(device(hopper), at))


def test_a_choice_read_while_a_rim_is_kept_is_used_but_not_remembered(
    session_factory, devices
) -> None:
    """Review (gunicorn threads): thread A reads a choice, thread B keeps a newer RIM and
    forgets the choices, then A remembers its (now stale) answer: the new RIM was hidden for
    choice_seconds. Played in order here: B's keep runs as A's read session closes."""
    hopper = devices["hopper"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        later = SimulatedNvidiaPki.generate(at=SIM_AT + timedelta(days=3))
    old, new = SimulatedRim(hopper).driver(), SimulatedRim(hopper, pki=later).driver()
    keep(session_factory, RimDocument(old))
    armed: list[Evidence] = []

    class KeepsOnClose(Session):  # a real session; closing it lets "thread B" run
        def close(self) -> None:
            super().close()
            if armed:
                source.complete(armed.pop(), at)

    source = RimSource(sessionmaker(class_=KeepsOnClose, **session_factory.kw), choice_seconds=3600)
    at = SIM_AT + timedelta(days=10)
    plain = device(hopper)
    vbios = Endorsement(EndorsementKind.RIM, SimulatedRim(hopper).vbios())
    source._keep_attached([vbios], at)  # known from now on: only the driver is chosen below
    with_vbios = Evidence(plain.kind, plain.data, (*plain.endorsements, vbios))
    newer = Endorsement(EndorsementKind.RIM, new)
    armed.append(Evidence(plain.kind, plain.data, (*plain.endorsements, newer)))
    assert old in rims_of(source.complete(with_vbios, at))  # read before the keep
    assert not armed
    assert new in rims_of(source.complete(with_vbios, at))  # not the stale choice


def test_failed_fetches_are_remembered_in_bounded_memory(session_factory, service) -> None:
    """Review: the ids asked for derive from unverified reports (any driver version): the
    memory of failed fetches must not grow with them."""
    source = RimSource(session_factory, fetcher=RimFetcher(service), retry_seconds=3600)
    for n in range(rim_collateral._FAILED_MEMORY + 5):
        assert not source._fetch(f"NV_GPU_DRIVER_GH100_1.{n}")
    assert len(source._failed) == rim_collateral._FAILED_MEMORY
    assert "NV_GPU_DRIVER_GH100_1.0" not in source._failed  # the oldest forgotten first
    assert not source._fetch(f"NV_GPU_DRIVER_GH100_1.{rim_collateral._FAILED_MEMORY}")
    assert len(_RimService.requests) == rim_collateral._FAILED_MEMORY + 5  # not asked again


def test_attached_rims_are_kept_and_used_as_they_came(session_factory, devices) -> None:
    hopper = devices["hopper"]
    rims = _rims(hopper)
    kept_vbios = RimDocument(_rims(devices["hopper"])["vbios"])
    keep(session_factory, kept_vbios)
    bare = device(hopper)
    driver = Endorsement(EndorsementKind.RIM, rims["driver"])
    attached = Evidence(bare.kind, bare.data, (*bare.endorsements, driver))
    completed = RimSource(session_factory).complete(attached, SIM_AT)
    assert rims_of(completed) == [rims["driver"], rims["vbios"]]
    assert completed.endorsements[: len(attached.endorsements)] == attached.endorsements
    row = {r.sha256: r for r in kept(session_factory)}[hashlib.sha256(rims["driver"]).digest()]
    assert (row.source, row.name) == ("worker", "NV_GPU_DRIVER_GH100_590.12")
    # an unreadable attached RIM is not kept; the verifier will judge it
    junk = Evidence(
        bare.kind, bare.data, (*bare.endorsements, Endorsement(EndorsementKind.RIM, b"<x/>"))
    )
    assert len(rims_of(RimSource(session_factory).complete(junk, SIM_AT))) == 3
    assert len(kept(session_factory)) == 2


def test_bad_evidence_and_other_kinds_are_left_as_they_are(session_factory, devices) -> None:
    source = RimSource(session_factory, fetcher=RimFetcher("http://127.0.0.1:9", timeout=1))
    for evidence in (
        Evidence(EvidenceKind.NVIDIA_GPU, b"not a report", ()),
        Evidence(EvidenceKind.NVIDIA_GPU, b"", (Endorsement(EndorsementKind.RIM, b"\x00"),)),
        Evidence(EvidenceKind.AWS_NITRO_ENCLAVE, b"\x01\x02", ()),
    ):
        assert source.complete(evidence, SIM_AT) is evidence


def test_a_missing_rim_is_fetched_once_kept_and_used(session_factory, service, devices) -> None:
    hopper = devices["hopper"]
    rims = _rims(hopper)
    _RimService.rims = {"NV_GPU_DRIVER_GH100_590.12": rims["driver"]}
    source = RimSource(session_factory, fetcher=RimFetcher(service))
    first = source.complete(device(hopper), SIM_AT)
    assert rims_of(first) == [rims["driver"]]  # no VBIOS id to fetch: no project fields
    assert _RimService.requests == ["/v1/rim/NV_GPU_DRIVER_GH100_590.12"]
    second = source.complete(device(hopper), SIM_AT)
    assert rims_of(second) == [rims["driver"]]
    assert len(_RimService.requests) == 1  # kept: not fetched again
    (row,) = kept(session_factory)
    assert (row.name, row.source) == ("NV_GPU_DRIVER_GH100_590.12", "rim-service")


def test_a_failed_fetch_is_not_retried_for_the_same_id_within_the_backoff(
    session_factory, service, devices
) -> None:
    source = RimSource(session_factory, fetcher=RimFetcher(service), retry_seconds=3600)
    hopper = device(devices["hopper"])
    assert rims_of(source.complete(hopper, SIM_AT)) == []
    assert rims_of(source.complete(hopper, SIM_AT)) == []
    assert _RimService.requests == ["/v1/rim/NV_GPU_DRIVER_GH100_590.12"]
    # another id is asked for at once
    source.complete(device(devices["blackwell"]), SIM_AT)
    assert _RimService.requests[-1] == "/v1/rim/NV_GPU_CC_DRIVER_GB100_590.12"
    # once the backoff has passed it is asked again, and what is served then is used
    _RimService.rims = {"NV_GPU_DRIVER_GH100_590.12": _rims(devices["hopper"])["driver"]}
    source.retry_seconds = 0
    assert len(rims_of(source.complete(hopper, SIM_AT))) == 1
    assert _RimService.requests.count("/v1/rim/NV_GPU_DRIVER_GH100_590.12") == 2


def test_nothing_is_fetched_without_a_fetcher(session_factory, service, devices) -> None:
    assert rims_of(RimSource(session_factory).complete(device(devices["hopper"]), SIM_AT)) == []
    assert _RimService.requests == []


# --- judged after completing ------------------------------------------------------------------


def test_a_simulated_gpu_completed_from_kept_rims_passes_the_rim_checks(
    session_factory, pki, devices
) -> None:
    _keep_all(session_factory, devices)
    verifier = NvidiaVerifier(
        trust_anchors=[TrustAnchor.from_der(pki.device_root.der, name="simulated device root")],
        rim_anchors=[TrustAnchor.from_der(pki.rim_root.der, name="simulated RIM root")],
    )
    source = RimSource(session_factory)
    at = SIM_AT + timedelta(hours=1)
    for name, arch in (("hopper", "HOPPER"), ("blackwell", "BLACKWELL")):
        gpu = devices[name]
        policy = NvidiaPolicy(
            name=f"{name}-policy",
            images=(NvidiaImage(name, arch, (gpu.driver,), (gpu.vbios,)),),
        )  # requires the driver and the VBIOS RIM
        completed = source.complete(device(gpu), at)
        result = verifier.verify(completed, at=at, policy=policy, nonce=NONCE)
        assert str(result.status) == "affirming", (name, result.violations)
        compared = {str(c.kind) for c in result.claims.rims}  # type: ignore[attr-defined]
        assert compared == {"driver", "vbios"}


def test_nvidias_report_completed_from_the_service_passes_the_rim_checks(
    session_factory, service
) -> None:
    _RimService.rims = {REAL_VBIOS_ID: (NV / PROD_RIM).read_bytes()}
    source = RimSource(session_factory, fetcher=RimFetcher(service))
    evidence = Evidence(EvidenceKind.NVIDIA_GPU, hex_report(), hopper_chain())
    completed = source.complete(evidence, AT)
    assert rims_of(completed) == [(NV / PROD_RIM).read_bytes()]
    # the driver RIM NV_GPU_DRIVER_GH100_535.86.09 was asked for too (not served)
    assert f"/v1/rim/{REAL_VBIOS_ID}" in _RimService.requests
    assert "/v1/rim/NV_GPU_DRIVER_GH100_535.86.09" in _RimService.requests
    result = NvidiaVerifier().verify(completed, at=AT, policy=hex_policy())
    assert str(result.status) != "contraindicated", result.violations
    (vbios,) = result.claims.rims  # type: ignore[attr-defined]
    assert (vbios.kind, vbios.matched, vbios.mismatched) == ("vbios", 12, ())


def test_with_nothing_kept_the_verdict_says_which_rims_are_missing(
    session_factory, pki, devices
) -> None:
    """The negative of the above: nothing kept, nothing fetched, the verifier says so."""
    verifier = NvidiaVerifier(
        trust_anchors=[TrustAnchor.from_der(pki.device_root.der, name="simulated device root")],
        rim_anchors=[TrustAnchor.from_der(pki.rim_root.der, name="simulated RIM root")],
    )
    gpu = devices["hopper"]
    policy = NvidiaPolicy(
        name="h", images=(NvidiaImage("h", "HOPPER", (gpu.driver,), (gpu.vbios,)),)
    )
    completed = RimSource(session_factory).complete(device(gpu), SIM_AT)
    assert rims_of(completed) == []
    with pytest.raises(PolicyViolation) as caught:
        verifier.verify(completed, at=SIM_AT, policy=policy, nonce=NONCE)
    assert {v.code for v in caught.value.violations} == {"rim_missing"}


def test_an_attached_rim_verify_refuses_judges_its_device_only(session_factory, devices) -> None:
    """A RIM store's ``verify`` (the service: signed under the RIM roots it trusts) decides
    whether a worker's RIM may be kept for others; refused, it is used as it came, never kept,
    and not read again."""
    hopper = devices["hopper"]
    asked: list[bytes] = []

    def refuse(data: bytes, at: datetime) -> bool:
        asked.append(data)
        return False

    source = RimSource(session_factory, verify=refuse)
    rim = SimulatedRim(hopper).driver()
    plain = device(hopper)
    attached = Evidence(
        plain.kind, plain.data, (*plain.endorsements, Endorsement(EndorsementKind.RIM, rim))
    )
    assert rims_of(source.complete(attached, SIM_AT)) == [rim]  # as it came
    assert kept(session_factory) == []
    assert rims_of(source.complete(plain, SIM_AT)) == []  # not handed to another device
    source.complete(attached, SIM_AT)
    assert asked == [rim]  # refused once, remembered
