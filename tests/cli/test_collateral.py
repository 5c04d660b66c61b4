"""Intel DCAP collateral kept by the service (issue #12): imported by an operator, fetched from
a configured PCCS (here a local HTTP server serving Intel's real collateral files), never
fetched without one, kept once by SHA-256 and chosen for a quote by platform and time."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import threading
import urllib.parse
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from cryptography import x509
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from attest_ledger.collateral import (
    CRL,
    PCK_PLATFORM_CA,
    QE_IDENTITY,
    TCB_INFO,
    CollateralError,
    documents_in_file,
    select_for_quote,
)
from attest_ledger.models import CollateralDocument
from tests.cli.support import run
from tests.support import FIXTURES

pytestmark = pytest.mark.db

TDX = FIXTURES / "tdx"
PHALA = TDX / "phala_dcapqvl_tdx_quote_collateral.json"
PCS_BODY = TDX / "tdx_gtg_sample_tcbinfo_response_v5.json"
#: inside the Phala TDX collateral's window (fixture README)
IN_WINDOW = datetime(2025, 6, 19, 11, 16, 3, tzinfo=UTC)


def kept(settings) -> list[CollateralDocument]:
    engine = create_engine(settings.database_url)
    with Session(engine) as session:
        rows = list(session.execute(select(CollateralDocument)).scalars())
        session.expunge_all()
    engine.dispose()
    return rows


def test_dcap_qvl_collateral_becomes_the_documents_intel_signed() -> None:
    documents = documents_in_file(PHALA.read_bytes())
    kinds = [kind for kind, _ in documents]
    assert kinds.count(TCB_INFO) == kinds.count(QE_IDENTITY) == 1
    assert kinds.count(CRL) == 2
    raw = json.loads(PHALA.read_bytes())
    tcb = dict(documents)[TCB_INFO]
    # the exact text Intel signed, verbatim, inside a PCS body beside its signature
    assert raw["tcb_info"].encode() in tcb
    assert json.loads(tcb)["signature"] == raw["tcb_info_signature"]
    certificates = [data for kind, data in documents if kind == "certificate"]
    names = {x509.load_der_x509_certificate(d).subject.rfc4514_string() for d in certificates}
    assert any("Intel SGX TCB Signing" in n for n in names)
    assert not any("Root CA" in n.split(",")[0] for n in names)  # roots are pinned, not kept
    assert len(set(documents)) == len(documents)  # each once


@pytest.mark.parametrize(
    "junk",
    [b"", b"{}", b'{"tcb_info": 5}', b"[1]", b"not collateral", b"-----BEGIN CERTIFICATE-----\nx",
     b'{"tcbInfo": {}}', b"\x30\x03\x02\x01\x00"],
)  # fmt: skip
def test_what_is_not_collateral_is_refused_by_name(junk) -> None:
    with pytest.raises(CollateralError):
        documents_in_file(junk)


def test_import_keeps_each_document_once_and_chooses_by_platform_and_time(capsys, settings) -> None:
    code, out, err = run(capsys, settings, "collateral", "import", str(PHALA), str(PCS_BODY))
    assert code == 0, err
    assert "new" in out
    rows = kept(settings)
    assert {r.kind for r in rows} == {TCB_INFO, QE_IDENTITY, CRL, "certificate"}
    for row in rows:
        assert row.sha256 == hashlib.sha256(row.data).digest()
        assert row.source == "import"
    tdx_tcb = [r for r in rows if r.kind == TCB_INFO]
    assert {r.fmspc for r in tdx_tcb} == {"b0c06f000000", "90c06f000000"}  # case folded
    again = run(capsys, settings, "collateral", "import", str(PHALA))
    assert again[0] == 0
    assert " 0 new" in again[1]
    assert len(kept(settings)) == len(rows)
    code, out, _ = run(capsys, settings, "collateral", "list", "--fmspc", "B0C06F000000")
    assert code == 0
    assert out.count("tcb-info") == 1
    engine = create_engine(settings.database_url)
    with Session(engine) as session:
        chosen = select_for_quote(
            session, tdx=True, fmspc="B0C06F000000", pck_issuer=PCK_PLATFORM_CA, at=IN_WINDOW
        )
        assert set(chosen) == {"tcb-info", "qe-identity", "pck-crl", "root-crl", "tcb-signing"}
        assert json.loads(chosen["tcb-info"].data)["tcbInfo"]["fmspc"] == "B0C06F000000"
        # before the collateral was issued, there is none to choose
        early = select_for_quote(
            session, tdx=True, fmspc="b0c06f000000", pck_issuer=PCK_PLATFORM_CA,
            at=datetime(2025, 1, 1, tzinfo=UTC),
        )  # fmt: skip
        assert "tcb-info" not in early
        # an SGX quote of the same FMSPC is not judged by TDX TCB info
        assert "tcb-info" not in select_for_quote(
            session, tdx=False, fmspc="b0c06f000000", pck_issuer=None, at=IN_WINDOW
        )
    engine.dispose()


def test_an_unreadable_file_is_refused_and_nothing_kept(capsys, settings, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"enclaveIdentity": 5, "signature": "00"}')
    code, _, err = run(capsys, settings, "collateral", "import", str(PHALA), str(bad))
    assert code == 2
    assert "bad.json" in err
    assert kept(settings) == []


class _Pccs(http.server.BaseHTTPRequestHandler):
    """Intel's PCS API v4 paths, answered from the real collateral files, with the issuer
    chains in the headers as PCS sends them; counts every request."""

    files: ClassVar[dict[str, tuple[bytes, dict[str, str]]]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        path = urllib.parse.urlsplit(self.path).path
        found = self.files.get(path)
        if found is None:
            self.send_error(404)
            return
        body, headers = found
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pccs():
    raw = json.loads(PHALA.read_bytes())
    chain = urllib.parse.quote(raw["tcb_info_issuer_chain"])
    _Pccs.files = {
        "/tdx/certification/v4/tcb": (
            b'{"tcbInfo":' + raw["tcb_info"].encode() + b',"signature":"'
            + raw["tcb_info_signature"].encode() + b'"}',
            {"TCB-Info-Issuer-Chain": chain},
        ),
        "/tdx/certification/v4/qe/identity": (
            b'{"enclaveIdentity":' + raw["qe_identity"].encode() + b',"signature":"'
            + raw["qe_identity_signature"].encode() + b'"}',
            {"SGX-Enclave-Identity-Issuer-Chain": chain},
        ),
        "/sgx/certification/v4/pckcrl": (
            bytes.fromhex(raw["pck_crl"]),
            {"SGX-PCK-CRL-Issuer-Chain": urllib.parse.quote(raw["pck_crl_issuer_chain"])},
        ),
        "/sgx/certification/v4/rootcacrl": (raw["root_ca_crl"].encode(), {}),  # hex, as PCCS
    }  # fmt: skip
    _Pccs.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pccs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_from_a_configured_pccs_keeps_what_it_serves(capsys, settings, pccs) -> None:
    configured = dataclasses.replace(settings, pccs_url=pccs)
    code, out, err = run(
        capsys, configured, "collateral", "fetch", "--tee", "tdx", "--fmspc", "B0C06F000000"
    )
    assert code == 0, err
    assert f"fetched from {pccs}" in out
    assert any(r.startswith("/tdx/certification/v4/tcb?fmspc=b0c06f000000") for r in _Pccs.requests)
    rows = kept(settings)
    assert {r.source for r in rows} == {"pccs"}
    imported = {hashlib.sha256(d).digest() for _, d in documents_in_file(PHALA.read_bytes())}
    # what the PCCS served is, byte for byte, what the import of the same collateral keeps
    assert {r.sha256 for r in rows} == imported


def test_nothing_is_fetched_without_a_configured_url(capsys, settings, pccs) -> None:
    code, _, err = run(
        capsys, settings, "collateral", "fetch", "--tee", "tdx", "--fmspc", "B0C06F000000"
    )
    assert code == 2
    assert "ATTEST_LEDGER_PCCS_URL" in err
    assert _Pccs.requests == []


def test_a_pccs_that_fails_is_a_clear_error_and_keeps_nothing(capsys, settings, pccs) -> None:
    configured = dataclasses.replace(settings, pccs_url=pccs + "/nowhere")
    code, _, err = run(
        capsys, configured, "collateral", "fetch", "--tee", "sgx", "--fmspc", "00A067110000"
    )
    assert code == 1
    assert "HTTP 404" in err
    engine = create_engine(settings.database_url)
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(CollateralDocument)).scalar() == 0
    engine.dispose()
