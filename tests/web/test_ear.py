"""Every verdict a signed EAR (issue #14): the receipt and the entry carry it, the API
publishes its key, the key is kept, and both bundle verifiers check it, naming the same item.
The EARs of SEV-SNP, TDX, SGX and TPM verdicts are checked in their bundle tests
(``test_every_verdict_of_the_*_service_is_a_signed_ear``)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import stat
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from attest_ledger.bundles import verify_bundle as standalone
from attest_ledger.bundles.export import BundleSelection
from attest_ledger.bundles.verify import verify_bundle
from attest_ledger.ear import (
    CPU,
    EarError,
    EarKeyError,
    EarSigner,
    build_ear,
    load_public_keys,
    verify_ear,
)
from attest_ledger.runtime import Runtime
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from tests.web.ear_support import every_verdict_is_a_signed_ear
from tests.web.test_bundle import _append, _record, export, members, repack

pytestmark = pytest.mark.db


def _payload(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def both(service, archive: bytes, ear_key: bytes | None = None) -> list[str]:
    """The failing items, which both verifiers must name alike."""
    keys = load_public_keys(ear_key) if ear_key is not None else ()
    report = verify_bundle(io.BytesIO(archive), service.runtime.log_key, ear_keys=keys)
    other = standalone.check(
        io.BytesIO(archive),
        standalone.Key(str(service.runtime.log_key)),
        ear_key=standalone.ear_keys(ear_key) if ear_key is not None else None,
    )
    items = sorted({i for i, _ in report.failures})
    assert sorted({i for i, _ in other.failures}) == items, (other.failures, report.failures)
    return items


@pytest.fixture
def verdicts(service, sim_pki):
    """An affirming verdict, a rejected one, checkpointed."""
    from tests.support import simulated_nsm

    good = service.fresh()
    bad = service.submit(
        service.document(nonce=service.challenge(), nsm=simulated_nsm(sim_pki, image="other"))
    )
    assert (good.json["verdict"]["status"], bad.json["verdict"]["status"]) == (
        "affirming",
        "contraindicated",
    )
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)
    service.replies = [good.json, bad.json]
    return service


def test_the_receipt_carries_the_ear_the_entry_commits_to(verdicts) -> None:
    good, bad = verdicts.replies
    keys = verdicts.http.get("/api/v1/ear-keys").json["keys"]
    for reply in (good, bad):
        entry = _record(verdicts, reply["entry"]["index"])
        assert reply["ear"] == entry["ear"]  # the leaf hashes the EAR itself
        ear = verify_ear(reply["ear"], keys)
        assert ear.header == {"alg": "ES256", "typ": "JWT", "kid": verdicts.runtime.ear_signer.kid}
        claims = ear.claims
        assert claims["ear.status"] == reply["verdict"]["status"]
        assert claims["submods"][CPU]["ear.status"] == reply["verdict"]["status"]
        assert (
            claims["submods"][CPU]["attestation-ledger.evidence-sha256"]
            == (reply["evidence_sha256"])
        )
        assert claims["attestation-ledger.verified-at"] == reply["verdict"]["verified_at"]
        assert claims["ear.verifier-id"]["developer"] == "attestation-ledger"
        # the challenge, as EAT's eat_nonce
        nonce = base64.urlsafe_b64decode(claims["eat_nonce"] + "=")
        assert nonce.hex() == entry["nonce"]
    good_claims, bad_claims = (_payload(r["ear"]) for r in (good, bad))
    assert good_claims["submods"][CPU]["ear.trustworthiness-vector"]  # appraised
    assert good_claims["submods"][CPU]["ear.appraisal-policy-id"] == good["verdict"]["policy"]
    reasons = bad_claims["submods"][CPU]["attestation-ledger.reasons"]
    assert reasons == [r["code"] for r in bad["verdict"]["reasons"]]
    assert set(reasons) == {"pcr_mismatch"}
    # a duplicate's receipt answers with the stored entry, EAR included
    assert every_verdict_is_a_signed_ear(verdicts) == {
        "aws-nitro-enclave affirming": 1,
        "aws-nitro-enclave contraindicated": 1,
    }


def test_the_jwks_endpoint_is_public_and_cacheable(service) -> None:
    reply = service.http.get("/api/v1/ear-keys")
    assert reply.status_code == 200
    assert reply.headers["Cache-Control"] == "public, max-age=3600"
    [key] = reply.json["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in key  # never the private part
    # its kid is the RFC 7638 thumbprint, as the standalone verifier computes it by hand
    assert list(standalone.ear_keys(json.dumps(reply.json).encode())) == [key["kid"]]
    assert load_public_keys(json.dumps(key).encode())[0]["kid"] == key["kid"]


def test_the_key_is_kept_and_reused(service) -> None:
    path = service.runtime.settings.ear_key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Runtime.build(service.runtime.settings, publish=False)
    try:
        assert again.ear_signer.kid == service.runtime.ear_signer.kid
    finally:
        again.close()
    with pytest.raises(EarKeyError, match="never replaced"):
        EarSigner.create(path)
    path.chmod(0o644)
    with pytest.raises(EarKeyError, match="readable by others"):
        EarSigner.load(path)
    path.chmod(0o600)
    elsewhere = replace(service.runtime.settings, ear_key=path.parent / "keys" / "other.pem")
    other = Runtime.build(elsewhere, publish=False)
    try:
        assert other.ear_signer.kid != service.runtime.ear_signer.kid  # ATTEST_LEDGER_EAR_KEY
    finally:
        other.close()


def test_an_honest_bundle_checks_every_ear_in_both_verifiers(verdicts) -> None:
    archive = export(verdicts)
    files = dict(members(archive))
    manifest = json.loads(files["manifest.json"])
    assert manifest["ear_key"] == {"file": "ear-key.jwk", "kid": verdicts.runtime.ear_signer.kid}
    assert "ear-key.jwk" in manifest["files"]
    assert both(verdicts, archive) == []
    jwks = json.dumps(verdicts.runtime.ear_signer.jwks()).encode()
    assert both(verdicts, archive, ear_key=jwks) == []
    private = verdicts.runtime.settings.ear_key_path.read_bytes()
    assert private not in archive  # the private key is never shipped


def test_a_tampered_ear_is_named_by_both(verdicts) -> None:
    """An entry (proven in the log) whose EAR's signature was changed, or whose EAR another
    key signed: both verifiers name entries/N/ear."""
    good = _record(verdicts, verdicts.replies[0]["entry"]["index"])
    evidence = verdicts.document(nonce=b"\x07" * 32)
    head, body, signature = good["ear"].split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    tampered = _append(verdicts, good, evidence)  # appended without its EAR: then give one
    forged = [
        _append_with_ear(verdicts, good, f"{head}.{body}.{flipped}", b"\x08"),
        _append_with_ear(verdicts, good, EarSigner.generate().sign(_payload(good["ear"])), b"\x09"),
        _append_with_ear(verdicts, good, "not a JWS", b"\x0a"),
    ]
    selection = BundleSelection(indices=(tampered, *forged))
    items = both(verdicts, export(verdicts, selection))
    assert items == [f"entries/{i:012d}/ear" for i in forged]
    report = verify_bundle(io.BytesIO(export(verdicts, selection)), verdicts.runtime.log_key)
    messages = dict(report.failures)
    assert messages[f"entries/{forged[0]:012d}/ear"] == "its signature does not verify"
    assert messages[f"entries/{forged[1]:012d}/ear"].startswith("signed by a key not given")
    assert messages[f"entries/{forged[2]:012d}/ear"] == "not a compact JWS"


def _append_with_ear(service, record: dict, ear: str, nonce_byte: bytes) -> int:
    """Append ``record`` with ``ear`` (a proven entry the ledger key checkpoints)."""
    from ledger.append import append, prepare_all
    from ledger.entry import NewEntry

    evidence = service.document(nonce=nonce_byte * 32)
    body = {k: v for k, v in record.items() if k != "evidence_sha256"}
    body["ear"] = ear
    with session_scope(service.runtime.sessions) as session:
        appended = append(session, prepare_all([NewEntry.from_record(body, evidence=evidence)]))
        publish_checkpoint(session, service.runtime.signer)
    return appended[0].index


def test_an_ear_that_says_another_status_is_named_by_both(verdicts) -> None:
    """Signed by the right key, but saying 'contraindicated' of an affirming entry (or another
    worker, another result hash): both verifiers name it, whatever the rejudging says."""
    good = _record(verdicts, verdicts.replies[0]["entry"]["index"])
    evidence = verdicts.document(nonce=b"\x0b" * 32)
    digest = hashlib.sha256(evidence).hexdigest()
    claims = build_ear(
        {**good, "verdict": "contraindicated"}, evidence_sha256=digest, trustworthiness_vector={}
    )
    index = _append_with_ear(verdicts, good, verdicts.runtime.ear_signer.sign(claims), b"\x0b")
    # _append_with_ear made a document with the same nonce byte: the same evidence digest
    archive = export(verdicts, BundleSelection(indices=(index,)))
    assert both(verdicts, archive) == [f"entries/{index:012d}/ear"]
    report = verify_bundle(io.BytesIO(archive), verdicts.runtime.log_key)
    [(_, message)] = report.failures
    assert "its status is 'contraindicated', the entry's 'affirming'" in message
    other_worker = build_ear(
        {**good, "worker": "worker-2"}, evidence_sha256=digest, trustworthiness_vector={}
    )
    index = _append_with_ear(
        verdicts, good, verdicts.runtime.ear_signer.sign(other_worker), b"\x0b"
    )
    archive = export(verdicts, BundleSelection(indices=(index,)))
    assert both(verdicts, archive) == [f"entries/{index:012d}/ear"]


def test_an_entry_from_before_ears_is_accepted(verdicts) -> None:
    good = _record(verdicts, verdicts.replies[0]["entry"]["index"])
    index = _append(verdicts, good, verdicts.document(nonce=b"\x0c" * 32))  # without "ear"
    assert "ear" not in _record(verdicts, index)
    assert both(verdicts, export(verdicts, BundleSelection(indices=(index,)))) == []


def test_the_bundles_ear_key_is_checked_against_the_manifest_and_the_one_given(verdicts) -> None:
    files = members(export(verdicts))
    other = EarSigner.generate()
    swapped = [
        (n, json.dumps(other.public_jwk()).encode() if n == "ear-key.jwk" else d) for n, d in files
    ]
    assert "ear-key.jwk" in both(verdicts, repack(swapped))  # changed: the manifest's digest
    given = json.dumps(other.jwks()).encode()
    items = both(verdicts, repack(files), ear_key=given)  # not the key the regulator holds
    assert "ear-key.jwk" in items
    assert sum(i.endswith("/ear") for i in items) == 2  # and no EAR verifies with theirs
    private = load_pem_private_key(verdicts.runtime.settings.ear_key_path.read_bytes(), None)
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    assert both(verdicts, repack(files), ear_key=pem) == []  # the right key, as PEM
    dropped = [(n, d) for n, d in files if n != "ear-key.jwk"]
    items = both(verdicts, repack(dropped))
    assert "ear-key.jwk" in items  # the manifest names it
    assert sum(i.endswith("/ear") for i in items) == 2  # nothing to check them with


# --- the parsers, fuzzed: only our own errors ------------------------------------------------

_TOKEN = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda a, b, c: f"{a}.{b}.{c}",
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=120),
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=120),
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=120),
    ),
)
_SIGNER = EarSigner.generate()


@settings(max_examples=300, deadline=None)
@given(token=_TOKEN)
def test_arbitrary_tokens_raise_only_our_errors(token: str) -> None:
    with pytest.raises(EarError):
        verify_ear(token, _SIGNER.jwks()["keys"])
    with pytest.raises(standalone.Bad):
        standalone.ear_claims(token, standalone.ear_keys(json.dumps(_SIGNER.jwks()).encode()))


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=200), st.builds(
    lambda v: json.dumps(v).encode(),
    st.recursive(st.none() | st.text(max_size=20) | st.integers(),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                      max_size=4)),
)))  # fmt: skip
def test_arbitrary_key_files_raise_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EarKeyError):
        load_public_keys(data)
    with contextlib.suppress(standalone.Bad):
        standalone.ear_keys(data)


def test_the_entry_page_shows_the_ear_checked_by_the_service(portal) -> None:
    from tests.web.conftest import page, publish

    receipt = portal.fresh()
    publish(portal)
    index = receipt.json["entry"]["index"]
    detail = page(portal, f"/portal/entries/{index}")
    assert '<span class="badge ok">signature valid</span>' in detail
    assert portal.runtime.ear_signer.kid in detail
    assert "&#34;ear.status&#34;: &#34;affirming&#34;" in detail  # the decoded claims
    download = portal.browser.get(f"/portal/entries/{index}/ear.jwt")
    assert download.status_code == 200
    assert download.mimetype == "application/jwt"
    assert download.data.decode() == receipt.json["ear"]
    # an entry whose EAR another key signed: the page says it does not hold
    good = _record(portal, index)
    forged = _append_with_ear(
        portal, good, EarSigner.generate().sign(_payload(good["ear"])), b"\x0d"
    )
    detail = page(portal, f"/portal/entries/{forged}")
    assert '<span class="badge bad">does not hold</span> signed by a key not given' in detail
    # an entry without one: no EAR panel, and no download
    plain = _append(portal, good, portal.document(nonce=b"\x0e" * 32))
    assert 'id="ear"' not in page(portal, f"/portal/entries/{plain}")
    assert portal.browser.get(f"/portal/entries/{plain}/ear.jwt").status_code == 404


_GOOD_JWK = _SIGNER.public_jwk()


@settings(max_examples=400, deadline=None)
@given(
    edits=st.dictionaries(
        st.sampled_from(["kty", "crv", "x", "y", "alg", "use", "kid", "d", "key_ops"]),
        st.none() | st.integers() | st.sampled_from(["EC", "P-256", "P-384", "Pm256", "RSA", "",
                                                     _GOOD_JWK["x"], _GOOD_JWK["y"], "AA"]),
        max_size=3,
    ),
    dropped=st.sets(st.sampled_from(["kty", "crv", "x", "y", "alg", "use", "kid"]), max_size=2),
    encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]),
)  # fmt: skip
def test_both_key_loaders_take_the_same_jwks(edits, dropped, encoding) -> None:
    """The project's and the standalone verifier's EAR key loaders accept the same key files
    and name the same keys (a bundle's ear-key.jwk is read by both)."""
    jwk = {k: v for k, v in {**_GOOD_JWK, **edits}.items() if k not in dropped}
    if encoding == "latin-1":
        jwk["alg"] = "ES256\xe9"
    data = json.dumps(jwk, ensure_ascii=False).encode(encoding)
    try:
        ours = [k["kid"] for k in load_public_keys(data)]
    except EarKeyError:
        ours = None
    try:
        theirs = list(standalone.ear_keys(data))
    except standalone.Bad:
        theirs = None
    assert ours == theirs, (jwk, ours, theirs)
