"""``attest-ledger worker run --tee ...`` and ``worker pki --tee amd-sev-snp``: the options,
the refusals, and what a run sends and prints, against a stand-in for the service (a real
HTTP server in a thread; the run against the real service is an end-to-end test)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from attest_ledger.cli import main
from attest_ledger.settings import Settings
from enclave_worker import simulated_snp_measurement
from enclave_worker.snp_report import POLICY_DEBUG, parse_report
from tests.enclave_worker.snp_support import amd_keys, amd_pki, load_certificate
from tests.enclave_worker.test_snp_report import verify_report


class Service:
    """Answers challenges and submissions as the API does, and keeps what it was sent."""

    def __init__(self) -> None:
        self.counter = itertools.count(1)
        self.nonces: list[bytes] = []
        self.bodies: list[dict[str, Any]] = []
        self.untrusted = False
        #: The reasons of every verdict (a composite's carry their submod).
        self.reasons: list[dict[str, Any]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/api/v1/challenges":
                    nonce = hashlib.sha256(str(next(service.counter)).encode()).digest()
                    service.nonces.append(nonce)
                    self._answer({"challenges": [{"nonce": nonce.hex()}]})
                    return
                service.bodies.append(body)
                verdict: dict[str, Any] = {"status": "affirming", "reasons": service.reasons}
                if service.untrusted:
                    verdict = {
                        "status": "contraindicated",
                        "reasons": [],
                        "error": "untrusted_root",
                    }
                index = len(service.bodies) - 1
                self._answer({"entry": {"index": index, "leaf_hash": f"{index:064x}"},
                              "verdict": verdict})  # fmt: skip

            def _answer(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def service() -> Iterator[Service]:
    running = Service()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()
    thread.join()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=None, ledger_key_path=tmp_path / "ledger.key")


@pytest.fixture
def amd_root(tmp_path) -> Path:
    """The session's simulated AMD PKI, persisted where `worker run` looks by default."""
    directory = tmp_path / "simulated-amd"
    amd_pki().save(directory)
    return directory


def run(capsys, settings, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def test_an_snp_worker_submits_reports_and_prints_json_lines(
    capsys, settings, service, amd_root
) -> None:
    code, out, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "amd-sev-snp", "--count", "8", "--mix", "--image", "snp-image", "--name", "w",
    )  # fmt: skip
    assert code == 0, err
    assert "SIMULATED SEV-SNP (not AMD hardware)" in err
    assert "creating a NEW one" not in err  # the persisted root was found
    assert "8 affirming" in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["bad"] for line in lines] == [None] * 3 + ["wrong-image"] + [None] * 3 + [
        "wrong-nonce"  # the mix skips "stale", which does not apply to SNP
    ]
    assert [line["index"] for line in lines] == list(range(8))
    assert all(set(line) == {"job", "bad", "index", "leaf_hash", "verdict", "reasons"}
               for line in lines)  # fmt: skip
    ark = amd_pki().ark.der
    for n, body in enumerate(service.bodies):
        assert set(body) == {"evidence", "result_hash", "job", "idempotency_key"}
        assert body["idempotency_key"] == body["job"]["id"] == lines[n]["job"]
        evidence = body["evidence"]
        assert evidence["kind"] == "amd-sev-snp"
        kinds = [e["kind"] for e in evidence["endorsements"]]
        assert kinds == ["vcek", "ask", "ark"]
        assert base64.b64decode(evidence["endorsements"][2]["data"]) == ark
        report = base64.b64decode(evidence["data"])
        vcek = load_certificate(base64.b64decode(evidence["endorsements"][0]["data"]))
        verify_report(report, vcek)
        fields, _, _ = parse_report(report)
        image = "snp-image-unapproved" if n == 3 else "snp-image"
        assert fields.measurement == simulated_snp_measurement(image)
        assert (fields.report_data[:32] == service.nonces[n]) is (n != 7)
        assert not fields.policy & POLICY_DEBUG


def test_a_nitro_worker_still_sends_todays_body(capsys, settings, service) -> None:
    code, out, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t", "--count", "1"
    )
    assert code == 0, err
    assert "SIMULATED NSM" in err
    (body,) = service.bodies
    assert set(body) == {"attestation_document", "result_hash", "job"}
    assert json.loads(out)["verdict"] == "affirming"


def test_an_snp_worker_says_when_its_root_is_not_the_services(
    capsys, settings, service, amd_root
) -> None:
    service.untrusted = True
    code, _, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "amd-sev-snp", "--count", "2", "--bad", "debug",
    )  # fmt: skip
    assert code == 0
    assert "2 submissions were judged untrusted_root" in err
    assert "--simulated-amd" in err
    assert str(amd_root / "ark.pem") in err
    for body in service.bodies:
        fields, _, _ = parse_report(base64.b64decode(body["evidence"]["data"]))
        assert fields.policy & POLICY_DEBUG


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tee", "amd-sev-snp", "--bad", "stale"], "does not apply to amd-sev-snp: an SEV-SNP"),
        (["--tee", "amd-sev-snp", "--simulated-pki", "x"], "give --simulated-amd"),
        (["--simulated-amd", "x"], "give --simulated-pki"),
        (["--tee", "amd-sev-snp", "--device", "--bad", "debug"], "needs simulated hardware"),
        (["--device", "--bad", "wrong-image"], "needs simulated hardware"),
        (["--tee", "amd-sev-snp", "--device", "--simulated-amd", "x"], "takes no simulated root"),
    ],
)
def test_options_that_do_not_fit_are_refused(capsys, settings, argv, message) -> None:
    code, out, err = run(capsys, settings, "worker", "run", "--token", "t", *argv)
    assert code == 2
    assert message in err
    assert out == ""


def test_the_tee_must_be_one_we_know(capsys, settings) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["worker", "run", "--tee", "arm-cca"], settings=settings)
    assert exited.value.code == 2
    assert "invalid choice: 'arm-cca'" in capsys.readouterr().err


def test_the_real_snp_device_is_refused_cleanly_where_absent(
    capsys, settings, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("enclave_worker.tsm.TSM_REPORT", tmp_path / "no" / "tsm" / "report")
    code, out, err = run(
        capsys, settings, "worker", "run", "--token", "t", "--tee", "amd-sev-snp", "--device"
    )
    assert code == 2
    assert "not a confidential VM with configfs-tsm" in err
    assert "Traceback" not in err
    assert out == ""


def test_worker_pki_creates_the_simulated_amd_root(capsys, settings, tmp_path, monkeypatch) -> None:
    keys = iter(amd_keys())
    monkeypatch.setattr("enclave_worker.simulated_amd._new_rsa_key", lambda: next(keys))
    code, out, _ = run(capsys, settings, "worker", "pki", "--tee", "amd-sev-snp")
    assert code == 0
    directory = tmp_path / "simulated-amd"
    assert out.strip() == str(directory / "ark.pem")
    assert stat.S_IMODE((directory / "ark.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "ask.key").stat().st_mode) == 0o600
    first = (directory / "ark.pem").read_bytes()
    assert b"ARK-Genoa (simulated)" in load_certificate(first).subject.rfc4514_string().encode()
    assert run(capsys, settings, "worker", "pki", "--tee", "amd-sev-snp")[0] == 0
    assert (directory / "ark.pem").read_bytes() == first  # kept, no new key asked for
