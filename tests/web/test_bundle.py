"""Proof bundles: export from a real ledger, check offline, and catch every kind of tampering."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
from sqlalchemy import text

from attest_ledger.bundles.export import BundleError, BundleSelection, entry_path, export_bundle
from attest_ledger.bundles.verify import verify_bundle
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.note import NoteSigner, sign_note
from ledger.search import EntryFilter
from tests.support import simulated_nsm

pytestmark = pytest.mark.db


@pytest.fixture
def ledger(service, sim_pki):
    """Good attestations, a wrong image, an unknown nonce and an unbound result, checkpointed."""
    indices = []
    for n in range(5):
        result = b"answer %d" % n
        reply = service.submit(
            service.document(nonce=service.challenge(), result=result), result=result
        )
        assert reply.json["verdict"]["status"] == "affirming", reply.json
        indices.append(reply.json["entry"]["index"])
    other = simulated_nsm(sim_pki, image="something-else")
    bad = [
        service.document(nonce=service.challenge(), nsm=other),
        service.document(nonce=b"\x01" * 32),
        service.document(nonce=service.challenge(), result=b"not what was submitted"),
    ]
    for document in bad:
        reply = service.submit(document)
        assert reply.json["verdict"]["status"] == "contraindicated", reply.json
        indices.append(reply.json["entry"]["index"])
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)
    service.indices = indices
    return service


def export(service, selection=None, **kwargs) -> bytes:
    out = io.BytesIO()
    with service.runtime.sessions() as session:
        export_bundle(
            session, out, signer=service.runtime.signer,
            ear_key=service.runtime.ear_signer.public_jwk(),
            trust_anchors=[service.runtime.trust_anchor], selection=selection, **kwargs,
        )  # fmt: skip
    return out.getvalue()


def check(service, archive: bytes, **kwargs):
    """Both verifiers: the project's and the standalone one shipped in the bundle. They must
    agree on whether the bundle holds and on which items fail."""
    import tempfile

    from attest_ledger.bundles import verify_bundle as standalone

    report = verify_bundle(io.BytesIO(archive), service.runtime.log_key, **kwargs)
    if "known_checkpoint" not in kwargs:  # the standalone script takes no such option
        with tempfile.NamedTemporaryFile(suffix=".tar.gz") as handle:
            handle.write(archive)
            handle.flush()
            other = standalone.check(handle.name, standalone.Key(str(service.runtime.log_key)))
        assert {i for i, _ in other.failures} == {i for i, _ in report.failures}, (
            other.failures,
            report.failures,
        )
        assert other.count == report.entries or report.failures
    return report


def members(archive: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return [(m.name.removeprefix("bundle/"), tar.extractfile(m).read()) for m in tar]


def repack(files: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|") as tar,
    ):
        for name, data in files:
            info = tarfile.TarInfo(f"bundle/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def attestations(service) -> BundleSelection:
    return BundleSelection(EntryFilter(kind="attestation"))


def test_a_bundle_checks_offline_and_is_reproducible(ledger) -> None:
    archive = export(ledger, attestations(ledger))
    report = check(ledger, archive)
    assert report.ok, report.failures
    assert report.entries == 8
    assert report.rejudged == 8  # every attestation judged again from its evidence
    assert report.verdicts == {"affirming": 5, "contraindicated": 3}
    assert export(ledger, attestations(ledger)) == archive  # byte-identical
    names = [name for name, _ in members(archive)]
    assert names[:5] == ["README.txt", "manifest.json", "manifest.sig", "log-key.txt",
                         "checkpoint.txt"]  # fmt: skip
    assert entry_path(ledger.indices[0], "evidence.cbor") in names
    assert any(name.startswith("policies/") for name in names)
    manifest = json.loads(dict(members(archive))["manifest.json"])
    assert manifest["entries"]["count"] == 8
    assert "contraindicated" in dict(members(archive))["report.html"].decode()


def test_selections(ledger) -> None:
    result = BundleSelection(result_hashes=("sha256:" + "00" * 32,))
    with pytest.raises(BundleError, match="no entry"):
        export(ledger, result)
    picked = BundleSelection(indices=tuple(ledger.indices[:2]))
    report = check(ledger, export(ledger, picked))
    assert report.ok, report.failures
    assert report.entries == 2
    rejected = BundleSelection(EntryFilter(verdict="contraindicated"))
    report = check(ledger, export(ledger, rejected))
    assert report.ok, report.failures
    assert report.verdicts == {"contraindicated": 3}
    with pytest.raises(BundleError, match="no signed checkpoint has tree size 3"):
        export(ledger, picked, tree_size=3)


def test_consistency_from_a_checkpoint_the_regulator_holds(ledger) -> None:
    with ledger.runtime.sessions() as session:
        from ledger.checkpoints import latest_checkpoint

        held = latest_checkpoint(session).note
    ledger.fresh(result=b"later")
    with session_scope(ledger.runtime.sessions) as session:
        publish_checkpoint(session, ledger.runtime.signer)
    archive = export(ledger, attestations(ledger), known_checkpoint=held)
    report = check(ledger, archive, known_checkpoint=held)
    assert report.ok, report.failures
    assert report.consistency_from is not None
    unproven = export(ledger, attestations(ledger))
    assert not check(ledger, unproven, known_checkpoint=held).ok  # asked for, not there


def failures_of(ledger, files) -> list[tuple[str, str]]:
    report = check(ledger, repack(files))
    assert not report.ok
    return report.failures


def test_a_changed_byte_in_any_file_is_caught_and_named(ledger) -> None:
    files = members(export(ledger, attestations(ledger)))
    for n, (name, data) in enumerate(files):
        changed = bytearray(data)
        changed[len(changed) // 2] ^= 0x01
        tampered = [*files[:n], (name, bytes(changed)), *files[n + 1 :]]
        failures = failures_of(ledger, tampered)
        named = " ".join(item + " " + message for item, message in failures)
        stem = name.rsplit("/", 1)[0] if name.startswith("entries/") else name
        assert stem.split(".")[0] in named or "checkpoint.txt" in named, (name, failures)


def test_a_dropped_entry_is_caught(ledger) -> None:
    files = members(export(ledger, attestations(ledger)))
    gone = f"entries/{ledger.indices[2]:012d}/"
    failures = failures_of(ledger, [(n, d) for n, d in files if not n.startswith(gone)])
    assert failures == [("manifest.json", "names 8 entries, the bundle holds 7")]


def test_swapped_proofs_and_swapped_evidence_are_caught(ledger) -> None:
    files = dict(members(export(ledger, attestations(ledger))))
    a, b = ledger.indices[0], ledger.indices[1]
    order = [name for name, _ in members(export(ledger, attestations(ledger)))]
    for kind in ("proof.tlog-proof", "evidence.cbor"):
        swapped = dict(files)
        swapped[entry_path(a, kind)], swapped[entry_path(b, kind)] = (
            files[entry_path(b, kind)],
            files[entry_path(a, kind)],
        )
        failures = failures_of(ledger, [(name, swapped[name]) for name in order])
        items = {item for item, _ in failures}
        assert {f"entries/{a:012d}/{kind}", f"entries/{b:012d}/{kind}"} <= items, failures


def test_a_checkpoint_signed_by_another_key_is_refused(ledger) -> None:
    files = members(export(ledger, attestations(ledger)))
    note = dict(files)["checkpoint.txt"].decode()
    text = note[: note.rfind("\n\n") + 1]
    forged = sign_note(text, [NoteSigner.generate(ledger.runtime.log_key.name)])
    tampered = [(n, forged.encode() if n == "checkpoint.txt" else d) for n, d in files]
    failures = failures_of(ledger, tampered)
    assert failures[-1][0] == "bundle"
    assert "checkpoint.txt" in failures[-1][1]
    other = NoteSigner.generate("example.com/other").verifier()
    report = verify_bundle(io.BytesIO(repack(files)), other)
    assert not report.ok  # the right bundle, checked against the wrong key
    assert report.failures[0][0] == "log-key.txt"


def test_not_a_bundle(ledger) -> None:
    report = check(ledger, b"not gzip at all")
    assert report.failures[0][0] == "bundle"
    report = check(ledger, repack([("README.txt", b"hello")]))
    assert "missing" in report.failures[0][1]


def test_a_verdict_the_evidence_does_not_support_is_caught(ledger, sim_pki) -> None:
    """A ledger that recorded 'affirming' for a wrong image (a verifier bug, say): the proofs
    all hold, and the bundle verifier still refuses it."""
    from ledger.append import append, prepare_all
    from ledger.entry import NewEntry

    with ledger.runtime.sessions() as session:
        query = text("SELECT data FROM ledger_entries WHERE idx = :i")
        good = json.loads(session.execute(query, {"i": ledger.indices[0]}).scalar_one())
    wrong = ledger.document(
        nonce=b"\x02" * 32, result=b"answer 0", nsm=simulated_nsm(sim_pki, image="elsewhere")
    )
    record = {k: v for k, v in good.items() if k not in ("evidence_sha256", "ear")}  # no EAR
    with session_scope(ledger.runtime.sessions) as session:
        appended = append(session, prepare_all([NewEntry.from_record(record, evidence=wrong)]))
        publish_checkpoint(session, ledger.runtime.signer)
    index = appended[0].index
    report = check(ledger, export(ledger, BundleSelection(indices=(index,))))
    assert not report.ok
    [(item, message)] = report.failures
    assert item == f"entries/{index:012d}"
    assert message == (
        "re-verified as contraindicated (pcr_mismatch), recorded affirming (no reasons)"
    )


def test_export_over_the_api_and_from_the_portal(ledger) -> None:
    from attest_ledger.users import add_user
    from tests.web.test_portal import PASSWORD, sign_in

    reader = ledger.auth("auditor")
    response = ledger.http.get("/api/v1/export?kind=attestation", headers=reader)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/gzip"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.data == export(ledger, attestations(ledger))  # the CLI's bytes exactly
    assert check(ledger, response.data).ok
    picked = ",".join(str(i) for i in ledger.indices[:2])
    response = ledger.http.get(f"/api/v1/export?indices={picked}", headers=reader)
    assert check(ledger, response.data).entries == 2
    for query, status, code in (
        ("verdict=maybe", 400, "invalid_parameter"),
        ("indices=1,x", 400, "invalid_parameter"),
        ("result_hashes=sha256:zz", 400, "invalid_parameter"),
        ("tree_size=99999999999999999999", 400, "invalid_parameter"),
        ("tree_size=3", 404, "not_found"),
        ("result_hash=sha256:" + "0" * 64, 404, "nothing_to_export"),
        ("colour=red", 400, "invalid_parameter"),
    ):
        answer = ledger.http.get(f"/api/v1/export?{query}", headers=reader)
        assert answer.status_code == status, (query, answer.json)
        assert answer.json["code"] == code, (query, answer.json)
    assert ledger.http.get("/api/v1/export").status_code == 401
    assert ledger.http.get("/api/v1/export", headers=ledger.auth("worker-1")).status_code == 403

    with session_scope(ledger.runtime.sessions) as session:
        add_user(session, "ada", "auditor", PASSWORD)
    browser = ledger.app.test_client()
    browser.environ_base["wsgi.url_scheme"] = "https"
    assert sign_in(browser).status_code == 302
    page = browser.get("/portal/entries?kind=attestation").get_data(as_text=True)
    assert 'href="/portal/export?kind=attestation"' in page
    download = browser.get("/portal/export?kind=attestation")
    assert download.status_code == 200
    assert download.data == response_bytes(ledger)
    assert browser.get("/portal/export?verdict=maybe").status_code == 400
    assert ledger.app.test_client().get("/portal/export").status_code == 302  # sign in first


def response_bytes(ledger) -> bytes:
    return export(ledger, attestations(ledger))


def test_a_nul_in_a_recorded_job_does_not_break_exports(ledger) -> None:
    """Regression (issue #10): the export's first pass read each entry's policy revision by
    casting the entry bytes to PostgreSQL's JSONB, which cannot hold "\\u0000"; one such
    job, recorded for ever, made every export that included it fail."""
    result = b"nul"
    reply = ledger.submit(
        ledger.document(nonce=ledger.challenge(), result=result),
        result=result,
        job={"id": "a\u0000b"},
    )
    assert reply.status_code == 201, reply.json
    with session_scope(ledger.runtime.sessions) as session:
        publish_checkpoint(session, ledger.runtime.signer)
    report = check(ledger, export(ledger, attestations(ledger)))
    assert report.ok, report.failures
    assert report.entries == 9


def _append(ledger, record: dict, evidence: bytes) -> int:
    """Append a record as a ledger might have written it, and checkpoint it: without an EAR,
    as before EARs (the EAR of the record copied would say otherwise; tests/web/test_ear.py
    forges those)."""
    from ledger.append import append, prepare_all
    from ledger.entry import NewEntry

    record = {k: v for k, v in record.items() if k not in ("evidence_sha256", "ear")}
    with session_scope(ledger.runtime.sessions) as session:
        appended = append(session, prepare_all([NewEntry.from_record(record, evidence=evidence)]))
        publish_checkpoint(session, ledger.runtime.signer)
    return appended[0].index


def _record(ledger, index: int) -> dict:
    with ledger.runtime.sessions() as session:
        query = text("SELECT data FROM ledger_entries WHERE idx = :i")
        return json.loads(session.execute(query, {"i": index}).scalar_one())


def test_rejections_before_the_policy_step_are_judged_again_by_both(ledger) -> None:
    """Regression (issue #10, item 1): an entry whose evidence was rejected before the policy
    step (malformed, signature_invalid, untrusted_root, expired) named no trust anchor, and
    both verifiers failed the whole bundle ("its trust anchor None is not in trust/"). Every
    verdict names the anchor now, and both verifiers judge such entries again at the instant
    the service judged them, agreeing with the recorded rejection."""
    from datetime import timedelta

    from tests.support import SIM_AT, simulated_nsm, simulated_pki

    signed = ledger.document(nonce=ledger.challenge())
    tampered = signed[:-1] + bytes([signed[-1] ^ 1])
    foreign = ledger.document(nonce=ledger.challenge(), nsm=simulated_nsm(simulated_pki()))
    stale = ledger.document(nonce=ledger.challenge(), timestamp=SIM_AT - timedelta(minutes=10))
    expected = {}
    for evidence, code in (
        (b"\xa1not a document", "malformed"),
        (tampered, "signature_invalid"),
        (foreign, "untrusted_root"),
        (stale, "document_too_old"),
    ):
        reply = ledger.submit(evidence)
        assert reply.json["verdict"]["status"] == "contraindicated", reply.json
        expected[reply.json["entry"]["index"]] = code
    later = SIM_AT + timedelta(days=2)  # every simulated certificate below the root expired
    ledger.runtime.clock = lambda: later
    reply = ledger.submit(ledger.document(nonce=ledger.challenge(), timestamp=later))
    expected[reply.json["entry"]["index"]] = "expired"
    with session_scope(ledger.runtime.sessions) as session:
        publish_checkpoint(session, ledger.runtime.signer)
    anchor = ledger.runtime.trust_anchor.fingerprint
    for index, code in expected.items():
        record = _record(ledger, index)
        assert [r["code"] for r in record["reasons"]] == [code], record
        assert record["trust_anchor_sha256"] == anchor  # whatever the outcome
        assert record["verified_at"].endswith("Z")
    report = check(ledger, export(ledger))  # the whole ledger, as `make run`'s
    assert report.ok, report.failures
    assert report.rejudged == 8 + len(expected)
    assert report.notes == []  # the same reasons, not only the same verdict


def test_the_verdict_is_judged_at_the_recorded_instant(ledger) -> None:
    """A record saying 'affirming' for a document that was already too old at its
    verified_at is caught: the age is judged again, not set aside as service state."""
    from datetime import timedelta

    good = _record(ledger, ledger.indices[0])
    evidence = ledger.document(nonce=b"\x03" * 32, result=b"answer 0")
    record = {**good, "verified_at": "2026-06-01T12:10:00.000Z"}  # ten minutes late
    index = _append(ledger, record, evidence)
    report = check(ledger, export(ledger, BundleSelection(indices=(index,))))
    assert report.failures == [
        (
            f"entries/{index:012d}",
            "re-verified as contraindicated (document_too_old), recorded affirming (no reasons)",
        )
    ]
    on_time = {**good, "verified_at": "2026-06-01T12:00:01.000Z"}
    assert timedelta(seconds=1) < timedelta(minutes=5)
    index = _append(ledger, on_time, ledger.document(nonce=b"\x04" * 32, result=b"answer 0"))
    assert check(ledger, export(ledger, BundleSelection(indices=(index,)))).ok


def test_entries_recorded_without_an_anchor_are_judged_against_the_shipped_ones(
    ledger, sim_pki
) -> None:
    """Ledgers in the field hold rejections recorded with a null anchor (before issue #10).
    Their rejection stands when no anchor in the bundle makes the evidence pass; a rejection
    that an anchor in the bundle would turn into a pass is a failure, in both verifiers."""
    good = _record(ledger, ledger.indices[0])
    legacy = {
        **good,
        "verdict": "contraindicated",
        "error": "malformed",
        "image": None,
        "reasons": [{"code": "malformed", "message": "..."}],
        "trust_anchor_sha256": None,
    }
    index = _append(ledger, legacy, b"\xa1not a document")
    selection = BundleSelection(indices=(ledger.indices[0], index))
    report = check(ledger, export(ledger, selection))
    assert report.ok, report.failures
    assert report.notes == [(f"entries/{index:012d}", report.notes[0][1])]
    assert "no anchor in trust/ makes its evidence pass" in report.notes[0][1]
    passing = ledger.document(nonce=b"\x05" * 32, result=b"answer 0")
    index = _append(ledger, legacy, passing)  # a "rejection" the shipped anchor passes
    report = check(ledger, export(ledger, BundleSelection(indices=(index,))))
    [(item, message)] = report.failures
    assert item == f"entries/{index:012d}"
    assert message.startswith("names no trust anchor; re-verified as affirming against ")


def test_a_bundle_carries_the_anchors_its_entries_name_and_only_those(ledger) -> None:
    """Regression (issue #10, item 4): export shipped the configured anchor (AWS's unless
    ATTEST_LEDGER_TRUST_ROOT was set again), and the bundle failed its own verification.
    The exporter resolves the anchors the selected entries name, and refuses, naming them,
    when it does not hold one."""
    from attest_ledger.bundles.export import UnknownTrustAnchor, known_trust_anchors
    from tests.support import anchor_for, simulated_nsm, simulated_pki
    from verifier import AWS_NITRO_ROOT_G1_SHA256

    names = [name for name, _ in members(export(ledger, attestations(ledger)))]
    simulated = ledger.runtime.trust_anchor.fingerprint
    assert [n for n in names if n.startswith("trust/")] == [f"trust/{simulated}.pem"]

    other = simulated_pki()
    good = _record(ledger, ledger.indices[0])
    evidence = ledger.document(nonce=b"\x06" * 32, result=b"answer 0",
                               nsm=simulated_nsm(other, image="inference-v1"))  # fmt: skip
    index = _append(ledger, {**good, "trust_anchor_sha256": anchor_for(other).fingerprint},
                    evidence)  # fmt: skip
    with pytest.raises(UnknownTrustAnchor) as caught:
        export(ledger)
    assert caught.value.fingerprints == (anchor_for(other).fingerprint,)
    assert "--trust-root" in str(caught.value)
    out = io.BytesIO()
    with ledger.runtime.sessions() as session:
        export_bundle(session, out, signer=ledger.runtime.signer,
                      ear_key=ledger.runtime.ear_signer.public_jwk(),
                      trust_anchors=known_trust_anchors(ledger.runtime.trust_anchor,
                                                        anchor_for(other)))  # fmt: skip
    archive = out.getvalue()
    shipped = sorted(n for n, _ in members(archive) if n.startswith("trust/"))
    assert shipped == sorted(
        f"trust/{f}.pem" for f in (simulated, anchor_for(other).fingerprint)
    )  # AWS's root is known, but no entry names it: not shipped
    assert f"trust/{AWS_NITRO_ROOT_G1_SHA256}.pem" not in shipped
    report = check(ledger, archive)
    assert report.ok, report.failures
    assert report.rejudged >= 9
    answer = ledger.http.get(f"/api/v1/export?indices={index}", headers=ledger.auth("auditor"))
    assert answer.status_code == 409, answer.json
    assert answer.json["code"] == "unknown_trust_anchor"
    assert anchor_for(other).fingerprint in answer.json["detail"]


def _tar_header(name: bytes, size: int, kind: bytes = b"0") -> bytes:
    """A ustar header written by hand: sizes and types no honest writer would produce."""
    header = bytearray(512)
    header[: len(name)] = name
    header[100:108] = b"0000644\0"
    header[108:124] = b"0000000\0" * 2
    if size < 8**11:
        header[124:136] = b"%011o\0" % size
    else:  # GNU base-256
        header[124:136] = bytes([0x80]) + size.to_bytes(11, "big")
    header[136:148] = b"00000000000\0"
    header[156:157] = kind
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _raw_tar(parts: list[bytes]) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        for part in parts:
            gz.write(part)
        gz.write(bytes(1024))
    return out.getvalue()


def _member(name: str, data: bytes) -> bytes:
    return _tar_header(f"bundle/{name}".encode(), len(data)) + data + bytes(-len(data) % 512)


def test_memory_stays_bounded_whatever_a_header_declares(ledger) -> None:
    """Regression (issue #10, item 5): tarfile reads a PAX extended header whole before the
    member it belongs to, so a bundle whose README carried a 1 GiB PAX header made both
    verifiers allocate 2 GB and still pass. Headers are read at most 64 KiB now, and a
    member's data only up to the size the format allows for its name."""
    import tracemalloc

    files = members(export(ledger, attestations(ledger)))
    size = 48 << 20  # real bytes (they compress to almost nothing): tarfile read them all
    record = b"comment=" + b"a" * size + b"\n"
    length = len(record) + len(str(len(record) + 8)) + 1
    record = b"%d " % length + record
    assert len(record) == length
    padded = record + bytes(-len(record) % 512)
    pax = _tar_header(b"./PaxHeaders/README.txt", len(record), b"x") + padded
    archive = _raw_tar([pax, *(_member(n, d) for n, d in files)])
    for verify in (_ours, _standalone):
        tracemalloc.start()
        try:
            failures = verify(ledger, archive)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert [item for item, _ in failures] == ["bundle"], failures
        assert "more than the 65536 allowed" in failures[0][1]
        assert peak < 16 << 20, (verify.__name__, peak)
    # a member declaring gigabytes it does not have: named, skipped in bounded reads
    evidence = next(n for n, _ in files if n.endswith("evidence.cbor"))
    for declared in (3 << 30, 2**70):
        huge = _tar_header(f"bundle/{evidence}".encode(), declared) + b"x" * 512
        parts = [_member(n, d) for n, d in files if n != evidence]
        at = next(i for i, (n, _) in enumerate(files) if n == evidence)
        archive = _raw_tar([*parts[:at], huge])
        for verify in (_ours, _standalone):
            failures = verify(ledger, archive)
            assert failures[-1][0] == "bundle", failures
            assert (evidence, f"declares {declared} bytes, more than the 65536 allowed") in (
                failures
            )


def _ours(ledger, archive: bytes) -> list[tuple[str, str]]:
    return verify_bundle(io.BytesIO(archive), ledger.runtime.log_key).failures


def _standalone(ledger, archive: bytes) -> list[tuple[str, str]]:
    from attest_ledger.bundles import verify_bundle as standalone

    key = standalone.Key(str(ledger.runtime.log_key))
    return standalone.check(io.BytesIO(archive), key).failures


def test_a_tampered_consistency_proof_is_a_named_failure_in_both(ledger) -> None:
    """Regression (issue #10, item 5): a consistency.json of the wrong shape crashed both
    verifiers (a list, numbers as strings, hashes of the wrong length or not hex...)."""
    with ledger.runtime.sessions() as session:
        from ledger.checkpoints import latest_checkpoint

        held = latest_checkpoint(session).note
    ledger.fresh(result=b"later")
    with session_scope(ledger.runtime.sessions) as session:
        publish_checkpoint(session, ledger.runtime.signer)
    files = members(export(ledger, attestations(ledger), known_checkpoint=held))
    good = json.loads(dict(files)["consistency.json"])
    for junk in (
        [], "x", 5, None, {}, {**good, "from_size": str(good["from_size"])},
        {**good, "to_size": 2**80}, {**good, "hashes": ["ab"]}, {**good, "hashes": ["zz" * 32]},
        {**good, "hashes": "00" * 32}, {**good, "hashes": [None]}, {**good, "from_checkpoint": 5},
        {**good, "from_checkpoint": ["x"]}, {**good, "extra": 1}, {**good, "from_size": True},
        {**good, "hashes": ["00" * 32] * 10_000},
        {**good, "from_checkpoint": good["from_checkpoint"][:-2] + "\n"},  # bad base64 padding
    ):  # fmt: skip
        raw = json.dumps(junk).encode()
        tampered = [(n, raw if n == "consistency.json" else d) for n, d in files]
        archive = repack(tampered)
        for verify in (_ours, _standalone):
            failures = verify(ledger, archive)
            assert [i for i, _ in failures] == ["consistency.json"], (junk, failures)
    nested = b"[" * 100_000 + b"]" * 100_000
    archive = repack([(n, nested if n == "consistency.json" else d) for n, d in files])
    for verify in (_ours, _standalone):
        assert [i for i, _ in verify(ledger, archive)] == ["consistency.json"]


def test_both_verifiers_name_the_same_items_on_mutated_bundles(ledger) -> None:
    """Differential fuzzing of the bundle layer (issue #10, item 5): changed, dropped,
    reordered and duplicated members, bad names, truncated gzip, junk in the manifest, the
    consistency proof and the proofs. Both verifiers must name the same failing items and
    never raise. ``ATTEST_LEDGER_FUZZ_CASES`` runs more."""
    import os
    import random

    with ledger.runtime.sessions() as session:
        from ledger.checkpoints import latest_checkpoint

        held = latest_checkpoint(session).note
    ledger.submit(b"\xa1not a document")  # a rejection before the policy step, too
    with session_scope(ledger.runtime.sessions) as session:
        publish_checkpoint(session, ledger.runtime.signer)
    files = members(export(ledger, known_checkpoint=held))
    names = [n for n, _ in files]
    rng = random.Random(1005)
    junk = [b"", b"{}", b"[]", b"\xff\xfe", b"null", b'{"format": 1}', b"x" * 5000,
            b"c2sp.org/tlog-proof@v1\nindex 0\n\n", b"-----BEGIN CERTIFICATE-----\n"]  # fmt: skip
    cases = max(60, int(os.environ.get("ATTEST_LEDGER_FUZZ_CASES", "0")) // 20)
    for n in range(cases):
        mutated = list(files)
        for _ in range(rng.choice([1, 1, 2, 3])):
            at = rng.randrange(len(mutated))
            name, data = mutated[at]
            move = rng.randrange(8)
            if move == 0 and data:
                changed = bytearray(data)
                changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
                mutated[at] = (name, bytes(changed))
            elif move == 1:
                del mutated[at]
            elif move == 2:
                other = rng.randrange(len(mutated))
                mutated[at], mutated[other] = mutated[other], mutated[at]
            elif move == 3:
                mutated.insert(rng.randrange(len(mutated)), (name, data))
            elif move == 4:
                mutated[at] = (rng.choice(["../x", "entries/1/entry.json", "trust/x.pem",
                                           "Manifest.json", "entries/" + "9" * 12 + "/x",
                                           "é\u202e", rng.choice(names)]), data)  # fmt: skip
            elif move == 5:
                mutated[at] = (name, rng.choice(junk))
            elif move == 6:
                mutated.append((rng.choice(names), rng.choice(junk)))
            else:
                mutated[at] = (name, data[: rng.randrange(len(data) + 1)])
        archive = repack(mutated)
        if rng.random() < 0.1:
            archive = archive[: rng.randrange(len(archive))]
        ours, theirs = _ours(ledger, archive), _standalone(ledger, archive)
        assert sorted({i for i, _ in ours}) == sorted({i for i, _ in theirs}), (n, ours, theirs)


def test_odd_fields_in_a_proven_entry_are_judged_not_a_crash(ledger) -> None:
    """A proven entry may still hold anything its ledger wrote: reasons that are not a
    list, a verified_at in another form, a result hash that is not one. Both verifiers name
    the entry, or judge it, and agree; neither raises."""
    good = _record(ledger, ledger.indices[0])
    odd = [
        {**good, "reasons": 5},
        {**good, "reasons": "pcr_mismatch"},
        {**good, "verified_at": "2026-06-01T12:00:00.000+00:00"},
        {**good, "verified_at": None},
        {**good, "result_hash": "sha256:zz"},
        {**good, "policy_revision": "1"},
        {**good, "trust_anchor_sha256": 5},
    ]
    indices = [
        _append(ledger, record, ledger.document(nonce=bytes([n]) * 32, result=b"answer 0"))
        for n, record in enumerate(odd)
    ]
    report = check(ledger, export(ledger, BundleSelection(indices=tuple(indices))))
    failed = {item for item, _ in report.failures}
    assert f"entries/{indices[0]:012d}" not in failed  # judged: affirming, as recorded
    assert f"entries/{indices[2]:012d}/entry.json" in failed
    assert f"entries/{indices[4]:012d}/entry.json" in failed
    assert f"entries/{indices[5]:012d}" in failed
