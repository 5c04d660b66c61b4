"""TPM 2.0 quotes on the ``aws-nitrotpm`` path through the service (issue #13), without AWS
hardware: a real software TPM (swtpm) quotes over the service's challenge, and a simulated
NitroTPM document (:class:`~enclave_worker.SimulatedNitroTpm`, signed by the simulated Nitro
PKI whose root the service is configured with, so the TPM scheme's ``nitro_anchor`` is that
root) vouches for its AK. No AK is enrolled anywhere in this module: the document alone
endorses it, and every way the document can fail to bind the quote is recorded with its
reason; proof bundles of these verdicts are judged again by both verifiers."""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import timedelta
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from enclave_worker import SimulatedNitroTpm, SimulatedNitroWarning
from enclave_worker.attester import Evidence
from enclave_worker.binding import ResultDigest
from enclave_worker.job import tamper
from enclave_worker.swtpm import Swtpm
from enclave_worker.tpm import TpmAttester, encode_container
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from tests.support import SIM_AT, anchor_for
from tests.web.conftest import build_service
from tests.web.test_bundle import members
from tests.web.test_snp_bundle import both, export
from tests.web.test_tpm_submissions import codes_of, model_event_digest, stored, submit

pytestmark = pytest.mark.db

IMAGE = "inference-nitrotpm"
MODEL = "nitrotpm-model"
RESULT = b"the answer"


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory):
    with Swtpm(tmp_path_factory.mktemp("swtpm"), manufacture=True) as running:
        yield running


@pytest.fixture(scope="module")
def tpm_attester(swtpm, tmp_path_factory) -> TpmAttester:
    state = tmp_path_factory.mktemp("attester")
    return TpmAttester(swtpm.tcti, state, banks=("sha256", "sha384"), model=MODEL)


def nitrotpm_of(attester: TpmAttester, pki) -> SimulatedNitroTpm:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        return SimulatedNitroTpm(attester, pki, clock=lambda: SIM_AT)


@pytest.fixture
def service(db_url, tmp_path, sim_pki, sim_nsm, tpm_attester):
    built = build_service(db_url, tmp_path, sim_pki, sim_nsm)
    reference = {"events": [{"pcr": 23, "digest": {"sha256": model_event_digest(MODEL)},
                             "label": "model"}]}  # fmt: skip
    with session_scope(built.runtime.sessions) as session:
        built.runtime.policies.add_reference(session, IMAGE, "tpm2-quote", reference)
        built.runtime.policies.allow(session, "worker-1", IMAGE)
    built.nitrotpm = nitrotpm_of(tpm_attester, sim_pki)
    yield built
    built.runtime.close()


def attest(service, nitrotpm=None, *, result=RESULT) -> Evidence:
    return (nitrotpm or service.nitrotpm).attest(
        nonce=service.challenge(), result=ResultDigest.of(result)
    )


def other_point() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def with_document(evidence: Evidence, document: bytes) -> Evidence:
    container = cbor2.loads(evidence.data)
    container["nitro_document"] = document
    return Evidence(evidence.kind, encode_container(container))


def unbound(service, how: str) -> Evidence:
    """A quote over the service's challenge whose NitroTPM document does not bind it."""
    nitrotpm = service.nitrotpm
    if how == "another-key":  # the document names another key than the quote's AK
        quote, log = nitrotpm.tpm.measured_quote(
            nonce=service.challenge(), result=ResultDigest.of(RESULT)
        )
        document = nitrotpm.document(
            nonce=quote.extra_data[:32], pcrs=nitrotpm.tpm.read_pcrs("sha384"),
            public_key=other_point(),
        )  # fmt: skip
        return Evidence("tpm2-quote", nitrotpm.tpm.container(quote, log, nitro_document=document))
    if how == "another-nonce":  # the document of another quote (same AK, same PCRs)
        earlier = cbor2.loads(attest(service).data)["nitro_document"]
        return with_document(attest(service), earlier)
    if how == "other-pcrs":  # a document made when PCR 23 held another job's value
        quote, log = nitrotpm.tpm.measured_quote(
            nonce=service.challenge(), result=ResultDigest.of(RESULT)
        )
        pcrs = {**nitrotpm.tpm.read_pcrs("sha384"), 23: hashlib.sha384(b"another").digest()}
        document = nitrotpm.document(nonce=quote.extra_data[:32], pcrs=pcrs)
        return Evidence("tpm2-quote", nitrotpm.tpm.container(quote, log, nitro_document=document))
    raise AssertionError(how)


def test_a_nitrotpm_quote_is_affirmed_without_any_enrolment(service, sim_pki) -> None:
    evidence = attest(service)
    reply = submit(service, evidence)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    assert reply.json["verdict"]["image"] == IMAGE
    record = stored(service, reply.json["entry"]["index"])
    claims = record["claims"]
    assert claims["ak"]["path"] == "aws-nitrotpm"
    assert claims["ak"]["enrolment"] is None
    assert (
        claims["ak"]["sha256"] == hashlib.sha256(service.nitrotpm.tpm.ak_public_der()).hexdigest()
    )
    document = cbor2.loads(evidence.data)["nitro_document"]
    assert claims["nitro_document"] == {
        "module_id": f"{sim_pki.instance_id}-tpm0000000000000000",
        "timestamp": "2026-06-01T12:00:00.000Z",  # SIM_AT, the document's own time
        "sha256": hashlib.sha256(document).hexdigest(),
    }
    assert sorted(claims["pcrs"]) == ["sha256", "sha384"]
    assert anchor_for(sim_pki).fingerprint in record["trust_anchors"]
    assert record["nonce"] == claims["quote"]["extra_data"][:64]
    with service.runtime.sessions() as session:
        enrolments = session.execute(
            text("SELECT count(*) FROM ledger_entries WHERE kind = 'tpm_enrolment'")
        ).scalar_one()
    assert enrolments == 0


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("another-key", "public_key (65 bytes) is not the AK's point"),
        ("another-nonce", "nonce is not the quote's extraData"),
        ("other-pcrs", "nitrotpm_pcrs[23] is not the quoted sha384 PCR 23"),
    ],
)
def test_a_document_that_does_not_bind_the_quote_is_ak_binding_invalid(service, how, named) -> None:
    reply = submit(service, unbound(service, how))
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes_of(reply) == {"ak_binding_invalid"}, reply.json["verdict"]
    [reason] = reply.json["verdict"]["reasons"]
    assert named in reason["message"], reason
    record = stored(service, reply.json["entry"]["index"])
    assert record["error"] == "ak_binding_invalid"


def test_an_expired_simulated_chain_is_expired(service, sim_pki) -> None:
    lapsed = sim_pki.leaf.certificate.not_valid_after_utc + timedelta(minutes=5)
    service.runtime.clock = lambda: lapsed
    reply = submit(service, attest(service))  # stamped SIM_AT, judged hours later
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes_of(reply) == {"expired"}, reply.json["verdict"]


def test_the_document_does_not_stand_in_for_the_quotes_signature(service) -> None:
    reply = submit(service, tamper(attest(service)))
    assert codes_of(reply) == {"tpm_signature_invalid"}


def test_another_model_is_event_missing_on_the_nitrotpm_path(
    service, swtpm, tpm_attester, sim_pki
) -> None:
    other = TpmAttester(swtpm.tcti, Path(tpm_attester.state_dir), banks=("sha256", "sha384"),
                        model="other-model")  # fmt: skip
    reply = submit(service, attest(service, nitrotpm_of(other, sim_pki)))
    assert codes_of(reply) == {"event_missing"}
    assert stored(service, reply.json["entry"]["index"])["claims"]["ak"]["path"] == "aws-nitrotpm"


def test_a_bundle_of_nitrotpm_verdicts_is_judged_again_by_both_verifiers(service, sim_pki) -> None:
    outcomes = [codes_of(submit(service, attest(service)))]
    outcomes += [codes_of(submit(service, unbound(service, how)))
                 for how in ("another-key", "another-nonce")]  # fmt: skip
    outcomes.append(codes_of(submit(service, attest(service), result=b"not what was attested")))
    lapsed = sim_pki.leaf.certificate.not_valid_after_utc + timedelta(minutes=5)
    service.runtime.clock = lambda: lapsed
    outcomes.append(codes_of(submit(service, attest(service))))
    assert outcomes == [set(), {"ak_binding_invalid"}, {"ak_binding_invalid"},
                        {"result_binding_mismatch"}, {"expired"}], outcomes  # fmt: skip
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)

    archive = export(service)
    report, standalone = both(service, archive)
    assert report.ok, report.failures
    assert not standalone.failures, standalone.failures
    assert not standalone.notes, standalone.notes  # the same codes, not only the same status
    assert report.rejudged == standalone.rejudged == 5
    assert report.verdicts["affirming"] == 1
    assert report.verdicts["contraindicated"] == 4
    files = dict(members(archive))
    manifest = json.loads(files["manifest.json"])
    assert anchor_for(sim_pki).fingerprint in manifest["trust_anchors"]
    assert manifest.get("enrolments", []) == []  # nothing enrolled: the documents vouch
