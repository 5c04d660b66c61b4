"""The job runner and the HTTP client with an SEV-SNP attester: the submission body it sends
(issue #11's wire format) and the bad modes that apply to SNP."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature

from enclave_worker import NitroAttester, simulated_snp_measurement
from enclave_worker.binding import ResultDigest
from enclave_worker.client import LedgerClient
from enclave_worker.job import BadMode, Job, JobRunner, bad_modes, compute, not_applicable
from enclave_worker.snp_report import POLICY_DEBUG, parse_report
from tests.enclave_worker.snp_support import load_certificate, snp_platform
from tests.enclave_worker.test_snp_report import verify_report


class FakeService:
    """Issues nonces 01.., 02.., ... and keeps every submission (body and headers)."""

    def __init__(self) -> None:
        self.counter = itertools.count(1)
        self.nonces: list[bytes] = []
        self.submissions: list[tuple[dict[str, Any], httpx.Headers]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/challenges":
            nonce = bytes([next(self.counter)]) * 32
            self.nonces.append(nonce)
            return httpx.Response(201, json={"challenges": [{"nonce": nonce.hex()}]})
        self.submissions.append((json.loads(request.content), request.headers))
        return httpx.Response(201, json={"entry": {"index": len(self.submissions) - 1}})

    def client(self, **options: Any) -> LedgerClient:
        return LedgerClient("http://service", "tok", transport=httpx.MockTransport(self), **options)


def snp_runner(service: FakeService, image: str = "inference-snp") -> JobRunner:
    platform = snp_platform(image=image)
    return JobRunner(
        service.client(),
        platform,
        other_image=platform.variant(image=image + "-unapproved"),
        debug=platform.variant(debug=True),
    )


def test_snp_evidence_goes_in_the_evidence_body() -> None:
    service = FakeService()
    runner = snp_runner(service)
    runner.run(Job("job-1", b"an input"))
    ((body, headers),) = service.submissions
    assert set(body) == {"evidence", "result_hash", "job", "idempotency_key"}
    assert set(body["evidence"]) == {"kind", "data", "endorsements"}
    assert body["evidence"]["kind"] == "amd-sev-snp"
    assert body["result_hash"] == "sha256:" + hashlib.sha256(compute(b"an input")).hexdigest()
    assert body["job"] == {"id": "job-1", "input_sha256": hashlib.sha256(b"an input").hexdigest()}
    assert body["idempotency_key"] == headers["Idempotency-Key"] == "job-1"
    report = base64.b64decode(body["evidence"]["data"], validate=True)
    assert len(report) == 1184
    fields, _, _ = parse_report(report)
    user_data = ResultDigest.of(compute(b"an input")).user_data()
    assert fields.report_data == service.nonces[0] + hashlib.sha256(user_data).digest()
    assert fields.measurement == simulated_snp_measurement("inference-snp")
    endorsements = body["evidence"]["endorsements"]
    assert [e["kind"] for e in endorsements] == ["vcek", "ask", "ark"]
    assert all(set(e) == {"kind", "data"} for e in endorsements)
    vcek = base64.b64decode(endorsements[0]["data"], validate=True)
    assert vcek == runner.attester.chip.vcek  # type: ignore[attr-defined]
    verify_report(report, load_certificate(vcek))


def test_nitro_evidence_keeps_todays_body_unless_told_otherwise(sim_nsm) -> None:
    for evidence_body in (False, True):
        service = FakeService()
        runner = JobRunner(
            service.client(nitro_evidence_body=evidence_body), NitroAttester(sim_nsm)
        )
        runner.run(Job("job-n", b"x"))
        ((body, headers),) = service.submissions
        assert headers["Idempotency-Key"] == "job-n"
        if evidence_body:
            assert body["evidence"]["kind"] == "aws-nitro-enclave"
            assert body["evidence"]["endorsements"] == []
            document = base64.b64decode(body["evidence"]["data"])
        else:
            assert set(body) == {"attestation_document", "result_hash", "job"}
            document = base64.b64decode(body["attestation_document"])
        assert document[:7] == bytes.fromhex("8444a1013822a0")  # an NSM document


def submitted_report(service: FakeService, n: int = -1) -> bytes:
    return base64.b64decode(service.submissions[n][0]["evidence"]["data"])


@pytest.mark.parametrize("mode", bad_modes("amd-sev-snp"))
def test_each_snp_bad_mode_makes_its_fault(mode) -> None:
    service = FakeService()
    runner = snp_runner(service)
    runner.run(Job("good", b"in"))
    runner.run(Job("bad", b"in"), mode)
    good, _, _ = parse_report(submitted_report(service, 0))
    bad_report = submitted_report(service, 1)
    bad, _, _ = parse_report(bad_report)
    vcek = load_certificate(runner.attester.chip.vcek)  # type: ignore[attr-defined]
    if mode is BadMode.TAMPERED:
        with pytest.raises(InvalidSignature):
            verify_report(bad_report, vcek)
        assert bytes(a ^ b for a, b in zip(bad.measurement, good.measurement, strict=True)) == (
            b"\x01" + bytes(47)
        )
        return
    verify_report(bad_report, vcek)  # authentic, only wrong
    bound = hashlib.sha256(ResultDigest.of(compute(b"in")).user_data()).digest()
    expected = {
        BadMode.WRONG_IMAGE: ("measurement", simulated_snp_measurement("inference-snp-unapproved")),
        BadMode.DEBUG: ("policy", good.policy | POLICY_DEBUG),
        BadMode.WRONG_NONCE: ("report_data", bad.report_data),
        BadMode.REPLAY: ("report_data", service.nonces[0] + bound),
        BadMode.UNBOUND: ("report_data", bad.report_data),
    }[mode]
    assert getattr(bad, expected[0]) == expected[1]
    assert getattr(bad, expected[0]) != getattr(good, expected[0]) or mode is BadMode.REPLAY
    if mode is BadMode.WRONG_NONCE:
        assert bad.report_data[:32] not in service.nonces
        assert bad.report_data[32:] == bound
    if mode is BadMode.UNBOUND:
        assert bad.report_data[:32] == service.nonces[1]
        assert bad.report_data[32:] != bound
    assert service.submissions[1][0]["result_hash"] == service.submissions[0][0]["result_hash"]


def test_stale_does_not_apply_to_snp() -> None:
    assert BadMode.STALE not in bad_modes("amd-sev-snp")
    assert "no timestamp" in not_applicable("amd-sev-snp")[BadMode.STALE]
    assert bad_modes("aws-nitro-enclave") == tuple(BadMode)
    service = FakeService()
    with pytest.raises(ValueError, match="does not apply: an SEV-SNP report carries no timestamp"):
        snp_runner(service).run(Job("j", b"i"), BadMode.STALE)
    assert service.submissions == []


def test_a_bad_mode_needs_an_attester_of_the_same_kind(sim_nsm) -> None:
    service = FakeService()
    runner = JobRunner(service.client(), snp_platform(), debug=NitroAttester(sim_nsm))
    with pytest.raises(
        ValueError, match="needs an attester of amd-sev-snp, not of aws-nitro-enclave"
    ):
        runner.run(Job("j", b"i"), BadMode.DEBUG)
