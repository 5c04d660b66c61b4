"""Proof bundles of TPM 2.0 verdicts (issue #13): swtpm quotes judged on the ``enrolled`` path
and the real GCP vTPM quote on the ``gcp`` path travel with the enrolment entries their AKs
rely on (``enrolments/``, each with its inclusion proof), the Google roots and the AK
certificates; both verifiers (the project's and the standalone one shipped in the bundle)
judge every quote again at its recorded instant, event-log replay included, and agree;
dropping or forging an enrolment is caught and named by both."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from enclave_worker.job import tamper
from enclave_worker.tpm import TpmAttester
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from tests.web.conftest import build_service
from tests.web.test_bundle import members, repack
from tests.web.test_snp_bundle import both, export
from tests.web.test_tpm_submissions import (
    IMAGE,
    MODEL,
    attester,  # noqa: F401 - a fixture: imported, pytest finds it here
    enrol,
    model_event_digest,
    quote,
    submit,
    swtpm,  # noqa: F401 - a fixture
)
from verifier import Endorsement, EndorsementKind, Evidence, EvidenceKind
from verifier.tpm import GCP_EKAK_ROOT_SHA256, from_json

pytestmark = pytest.mark.db

GCP_SAMPLE = Path(__file__).parents[1] / "fixtures" / "tpm" / "vaportpm_test-gcp-amd-fixture.json"


def _codes(reply) -> set[str]:
    assert reply.status_code == 201, reply.json
    return {r["code"] for r in reply.json["verdict"]["reasons"]}


@pytest.fixture
def mixed(db_url, tmp_path, sim_pki, sim_nsm, attester, swtpm):  # noqa: F811, PLR0917 - fixtures
    """Nitro, enrolled swtpm quotes of every outcome and the real GCP quote, checkpointed."""
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm)
    reference = {"events": [{"pcr": 23, "digest": {"sha256": model_event_digest(MODEL)},
                             "label": "model"}]}  # fmt: skip
    with session_scope(service.runtime.sessions) as session:
        service.runtime.policies.add_reference(session, IMAGE, "tpm2-quote", reference)
        service.runtime.policies.allow(session, "worker-1", IMAGE)
    service.attester = attester
    result = b"nitro"
    document = service.document(nonce=service.challenge(), result=result)
    nitro = service.submit(document, result=result)
    assert nitro.json["verdict"]["status"] == "affirming"
    codes = [_codes(submit(service, quote(service)))]  # before its enrolment
    # the enrolment comes a second later (the service's clock is fixed in these tests): an
    # enrolment counts from its own instant on, for the service and for both bundle judges
    later = service.runtime.clock() + timedelta(seconds=1)
    service.runtime.clock = lambda: later
    enrol(service, attester, "rack1-node3")
    codes.append(_codes(submit(service, quote(service))))
    codes.append(_codes(submit(service, quote(service))))
    other = TpmAttester(swtpm.tcti, Path(attester.state_dir), model="other-model")
    codes.append(_codes(submit(service, quote(service, other))))
    codes.append(_codes(submit(service, tamper(quote(service)))))
    codes.append(_codes(submit(service, quote(service), result=b"not what was attested")))
    container, endorsements = from_json(GCP_SAMPLE.read_text())
    gcp = Evidence(EvidenceKind.TPM2_QUOTE, container, endorsements)
    codes.append(_codes(submit(service, gcp)))
    assert codes == [
        {"ak_unendorsed"}, set(), set(), {"event_missing"}, {"tpm_signature_invalid"},
        {"result_binding_mismatch"},
        # a cloud quote carries the nonce alone: the result hash is not bound
        {"nonce_unknown", "event_missing", "result_binding_missing"},
    ], codes  # fmt: skip
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)
    yield service
    service.runtime.close()


def test_a_tpm_bundle_is_judged_again_by_both_verifiers(mixed) -> None:
    archive = export(mixed)
    report, standalone = both(mixed, archive)
    assert report.ok, report.failures
    assert not standalone.failures, standalone.failures
    assert not standalone.notes, standalone.notes  # same codes, not only the same status
    assert report.rejudged == standalone.rejudged == 8
    assert report.verdicts["affirming"] == 3
    assert report.verdicts["contraindicated"] == 5
    files = dict(members(archive))
    manifest = json.loads(files["manifest.json"])
    assert GCP_EKAK_ROOT_SHA256 in manifest["trust_anchors"]
    assert len(manifest["enrolments"]) == 1
    [enrolment] = manifest["enrolments"]
    assert f"enrolments/{enrolment:012d}.json" in files
    assert f"enrolments/{enrolment:012d}.tlog-proof" in files
    record = json.loads(files[f"enrolments/{enrolment:012d}.json"])
    assert (record["kind"], record["name"]) == ("tpm_enrolment", "rack1-node3")
    kinds = {
        e["kind"]
        for name, data in files.items()
        if name.endswith("/entry.json")
        for e in json.loads(data).get("endorsements", [])
    }
    assert {"ak-certificate", "certificate"} <= kinds


def test_dropping_an_enrolment_is_named_and_changes_the_verdicts(mixed) -> None:
    files = members(export(mixed))
    dropped = [(n, d) for n, d in files if not n.startswith("enrolments/")]
    report, standalone = both(mixed, repack(dropped))
    failed = {item for item, _ in report.failures}
    assert "enrolments/" in failed  # the manifest names it
    # the two affirmed quotes now have nothing vouching for their AK
    assert sum(item.startswith("entries/") for item in failed) >= 2
    assert failed == {item for item, _ in standalone.failures}


def test_an_enrolment_entry_changed_is_caught_by_its_proof(mixed) -> None:
    files = members(export(mixed))
    name = next(n for n, _ in files if n.startswith("enrolments/") and n.endswith(".json"))
    changed = [
        (n, d.replace(b'"rack1-node3"', b'"rack1-node4"') if n == name else d) for n, d in files
    ]
    report, standalone = both(mixed, repack(changed))
    assert name in {item for item, _ in report.failures}
    assert name in {item for item, _ in standalone.failures}


def test_an_ak_certificate_endorsement_kind_survives_the_round_trip() -> None:
    _, endorsements = from_json(GCP_SAMPLE.read_text())
    assert endorsements[0].kind is EndorsementKind.AK_CERTIFICATE
    assert all(isinstance(e, Endorsement) for e in endorsements)


def test_every_verdict_of_the_tpm_service_is_a_signed_ear(mixed) -> None:
    from tests.web.ear_support import every_verdict_is_a_signed_ear

    """Every verdict, of every kind and outcome, rejections included, is an EAR signed by
    the key the API publishes, saying what its entry says."""
    assert every_verdict_is_a_signed_ear(mixed) == {
        "aws-nitro-enclave affirming": 1,
        "tpm2-quote contraindicated": 5,
        "tpm2-quote affirming": 2,
    }


def test_enrolments_moved_after_the_entries_are_named_by_both(mixed) -> None:
    """The exporter writes every enrolment before the entries; an archive reordered so that
    they come after the quotes that rely on them is named, the same way, by both verifiers
    (before, the project's verifier judged with the enrolments it had seen when it first
    built its TPM scheme, the standalone one with those it had seen at each entry)."""
    files = members(export(mixed))
    enrolments = [(n, d) for n, d in files if n.startswith("enrolments/")]
    assert enrolments
    reordered = [(n, d) for n, d in files if not n.startswith("enrolments/")] + enrolments
    report, standalone = both(mixed, repack(reordered))
    failed = {item for item, _ in report.failures}
    assert {name for name, _ in enrolments} <= failed
    assert failed == {item for item, _ in standalone.failures}


_JUNK = [b"", b"{}", b"[]", b"null", b"5", b'"x"', b"\xff\xfe", b"{" * 5000, b"[" * 100_000,
         b'{"v": 1, "kind": "tpm_enrolment"}', b'{"kty": "EC"}', b'{"keys": []}',
         b'{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}',
         b'{"kty": "EC", "crv": "P-521", "x": "", "y": ""}', b'{"kty": "RSA", "n": 5}',
         b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
         b"c2sp.org/tlog-proof@v1\nindex 0\n\n", b"\x00" * 64]  # fmt: skip


def _json_edits(data: bytes, rng) -> bytes:
    """``data`` (JSON) with one field swapped for a value of another type, dropped or added."""
    try:
        value = json.loads(data)
    except ValueError:
        return data
    if not isinstance(value, dict) or not value:
        return data
    key = rng.choice(sorted(value))
    move = rng.randrange(3)
    if move == 0:
        value[key] = rng.choice([None, 5, -1, 2**70, "", "x", [], {}, True, "zz" * 32, "00" * 32])
    elif move == 1:
        del value[key]
    else:
        value[rng.choice(["extra", "keys", "kid", "action", "at", "ak_public"])] = rng.choice(
            [None, 5, "x", [dict(value)], {"k": 1}]
        )
    return json.dumps(value).encode()


def test_both_verifiers_name_the_same_items_on_mutated_tpm_bundles(mixed) -> None:
    """Differential fuzzing of a TPM bundle with an enrolment and an EAR key: its
    ``enrolments/*.json`` and ``.tlog-proof``, ``ear-key.jwk`` and the manifest changed a bit,
    a field, to junk, dropped or duplicated, and any member changed as in the bundle-level
    fuzz. Both verifiers must name the same failing items and never raise.
    ``ATTEST_LEDGER_FUZZ_CASES`` runs more."""
    import os
    import random

    from tests.web.test_bundle import _ours, _standalone

    files = members(export(mixed))
    targets = [n for n, _ in files if n.startswith("enrolments/")] + ["ear-key.jwk"]
    assert "ear-key.jwk" in dict(files)
    assert len(targets) == 3, targets
    targets.append("manifest.json")
    rng = random.Random(1413)
    cases = max(80, int(os.environ.get("ATTEST_LEDGER_FUZZ_CASES", "0")) // 20)
    for n in range(cases):
        mutated = list(files)
        for _ in range(rng.choice([1, 1, 2])):
            name = rng.choice(targets) if rng.random() < 0.8 else rng.choice(mutated)[0]
            at = next((i for i, (m, _) in enumerate(mutated) if m == name), None)
            if at is None:
                continue
            data = mutated[at][1]
            move = rng.randrange(6)
            if move == 0 and data:
                changed = bytearray(data)
                changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
                mutated[at] = (name, bytes(changed))
            elif move == 1:
                mutated[at] = (name, _json_edits(data, rng))
            elif move == 2:
                mutated[at] = (name, rng.choice(_JUNK))
            elif move == 3:
                del mutated[at]
            elif move == 4:
                mutated.insert(rng.randrange(len(mutated) + 1), (name, rng.choice([data, b"{}"])))
            else:
                mutated[at] = (name, data[: rng.randrange(len(data) + 1)])
        archive = repack(mutated)
        ours, theirs = _ours(mixed, archive), _standalone(mixed, archive)
        assert sorted({i for i, _ in ours}) == sorted({i for i, _ in theirs}), (n, ours, theirs)
