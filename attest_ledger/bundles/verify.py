"""``verify-bundle``: check a proof bundle offline, with nothing but the ledger's public key.

Reads the archive once, as a stream (see :mod:`attest_ledger.bundles.export` for the layout), and
names every item that fails. Trusts nothing in the archive on its own: the key is the
caller's, the checkpoint and the manifest must be signed by it, every entry and policy must
be proven into that checkpoint, every evidence file must have the digest its entry names,
every endorsement the digest it is named by, every entry's EAR the signature of the bundle's
EAR key (or the caller's) and the entry's own verdict, and every attestation of every scheme,
rejections included, is judged again at the instant the service judged it (its
``verified_at``) against the anchors, endorsements and policy revision it names. The archive
is read with every read bounded (:mod:`attest_ledger.bundles.archive`). The standalone
verifier shipped in every bundle (:mod:`attest_ledger.bundles.verify_bundle`) makes the same checks
with its own code and must name the same failing items.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from attest_ledger.bundles.archive import ArchiveError, BoundedTar
from attest_ledger.bundles.export import EAR_KEY_FILE, FORMAT, check_manifest_signature
from attest_ledger.ear import (
    EarError,
    compose_status,
    ear_disagreements,
    load_public_keys,
    recorded_devices,
    verify_ear,
)
from attest_ledger.explain import SERVICE_STATE_CODES, compare, judge_again, recorded_instant
from attest_ledger.intake import (
    CHALLENGE_BYTES,
    carried_nonce,
    composition_reasons,
    judge_devices,
)
from attest_ledger.policy_store import (
    NVIDIA,
    SCHEMES,
    SGX,
    SNP,
    TDX,
    TPM,
    PolicyConfig,
    PolicyError,
)
from ledger.checkpoint import CheckpointBody, parse_tlog_proof
from ledger.entry import MAX_EVIDENCE_BYTES, parse_entry
from ledger.errors import LedgerError
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.note import NoteVerifier, open_note
from ledger.search import VERDICTS
from verifier import (
    AMD_ARK_SHA256,
    AWS_NITRO_ROOT_G1_SHA256,
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    NitroVerifier,
    PolicyInvalid,
    ResultHash,
    Scheme,
    SchemePolicy,
    SnpVerifier,
    TrustAnchor,
    VerifierError,
)
from verifier.nitro.policy import NITRO_KINDS
from verifier.nvidia import NvidiaPolicy, NvidiaVerifier
from verifier.tdx import INTEL_SGX_ROOT_CA_SHA256, DcapVerifier
from verifier.tpm import (
    GCP_EKAK_ROOT_SHA256,
    GCP_VTPM_ROOT_2018_SHA256,
    Enrolment,
    StaticEnrolments,
    TpmVerifier,
)

__all__ = ["SERVICE_STATE_CODES", "BundleReport", "shown", "verify_bundle"]

_HEADER = ("README.txt", "manifest.json", "manifest.sig", "log-key.txt", "checkpoint.txt")
_ENTRY = re.compile(r"entries/([0-9]{12})/(entry\.json|evidence\.(?:cbor|bin)|proof\.tlog-proof)")
_POLICY = re.compile(r"policies/([0-9]{12})\.(json|tlog-proof)")
_ENROLMENT = re.compile(r"enrolments/([0-9]{12})\.(json|tlog-proof)")
_TRUST = re.compile(r"trust/([0-9a-f]{64})\.pem")
_ENDORSEMENT = re.compile(r"endorsements/([0-9a-f]{64})\.der")
_VENDOR_ROOTS = {
    AWS_NITRO_ROOT_G1_SHA256: "AWS Nitro root G1",
    **{fingerprint: f"AMD ARK-{product}" for product, fingerprint in AMD_ARK_SHA256.items()},
    INTEL_SGX_ROOT_CA_SHA256: "Intel SGX Root CA",
    GCP_EKAK_ROOT_SHA256: "Google EK/AK CA Root",
    GCP_VTPM_ROOT_2018_SHA256: "Google vTPM EK root (2018)",
}
_SMALL = 1 << 20
#: an enrolment entry or its proof: a few hundred bytes; the standalone verifier's bound too
_ENROLMENT_MEMBER = 64 * 1024


@dataclass
class BundleReport:
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: agreements worth a look: the same verdict, reached for other reasons
    notes: list[tuple[str, str]] = field(default_factory=list)
    entries: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    rejudged: int = 0
    tree_size: int | None = None
    origin: str | None = None
    anchors: list[str] = field(default_factory=list)
    consistency_from: int | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, item: str, message: str) -> None:
        self.failures.append((item, message))


class _Abort(Exception):
    """A failure that makes the rest of the bundle uncheckable."""


@dataclass
class _State:
    key: NoteVerifier
    report: BundleReport
    known_checkpoint: str | None
    #: the roots the caller requires (SHA-256 of the DER); empty: those the bundle names
    trust_roots: frozenset[str]
    #: the EAR keys the caller requires (JWKs with their kid); empty: the bundle's
    given_ear_keys: list[dict[str, Any]] = field(default_factory=list)
    #: the keys each entry's EAR is checked against
    ear_keys: list[dict[str, Any]] = field(default_factory=list)
    header: dict[str, bytes] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    checkpoint: CheckpointBody | None = None
    note: str | None = None
    anchors: dict[str, TrustAnchor] = field(default_factory=dict)
    endorsements: dict[str, bytes] = field(default_factory=dict)
    schemes: dict[tuple[str, frozenset[str]], Scheme] = field(default_factory=dict)
    #: NVIDIA verifiers by (device roots, RIM roots)
    device_schemes: dict[tuple[frozenset[str], frozenset[str]], Scheme] = field(
        default_factory=dict
    )
    policies: dict[int, PolicyConfig] = field(default_factory=dict)
    policy_files: dict[int, dict[str, bytes]] = field(default_factory=dict)
    #: TPM attestation keys enrolled, by the SHA-256 of the key, from enrolments/
    #: AK SHA-256 -> its first "enrolled" and "revoked" entries seen ({at, index, name, ek})
    enrolments: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    enrolment_files: dict[int, dict[str, bytes]] = field(default_factory=dict)
    enrolment_entries: set[int] = field(default_factory=set)
    current: int | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    last_index: int = -1
    digest: Any = field(default_factory=hashlib.sha256)
    seen: set[str] = field(default_factory=set)


def verify_bundle(
    archive_file: IO[bytes],
    key: NoteVerifier,
    *,
    known_checkpoint: str | None = None,
    trust_roots: Sequence[TrustAnchor] = (),
    progress: Callable[[int], None] | None = None,
    ear_keys: Sequence[dict[str, Any]] = (),
) -> BundleReport:
    """Check everything; the report lists every failure (item, message), empty if none.
    ``known_checkpoint``: a signed checkpoint the caller holds, which the bundle must prove
    consistent. ``trust_roots``: require the evidence to chain to these anchors, and the
    bundle to carry no other. ``ear_keys``: require every EAR to be signed by one of these
    (JWKs with their ``kid``, :func:`attest_ledger.ear.load_public_keys`), and the bundle's
    EAR key to be one of them."""
    roots = frozenset(a.fingerprint for a in trust_roots)
    state = _State(key, BundleReport(), known_checkpoint, roots, list(ear_keys), list(ear_keys))
    try:
        archive = BoundedTar(archive_file)
        for full, size in archive:
            name = full.removeprefix("bundle/")
            if not full.startswith("bundle/"):
                raise _Abort(f"{shown(full)[:200]}: not a regular file under bundle/")
            limit = MAX_EVIDENCE_BYTES if name.endswith((".cbor", ".bin")) else _SMALL
            if name.startswith("enrolments/"):
                limit = _ENROLMENT_MEMBER
            if name in state.seen or size > limit:
                state.report.fail(
                    name,
                    "appears twice in the archive"
                    if name in state.seen
                    else f"declares {size} bytes, more than the {limit} allowed",
                )
                archive.skip(size)  # in bounded chunks: memory stays flat
                continue
            state.seen.add(name)
            _member(state, name, archive.read(size), progress)
        _flush_entry(state)
        _finish(state)
    except (_Abort, ArchiveError) as exc:
        state.report.fail("bundle", str(exc))
    except (OSError, EOFError, zlib.error) as exc:
        state.report.fail("bundle", f"not a readable gzip tar archive: {exc}")
    return state.report


def shown(text: str) -> str:
    """Names come from the archive: never print control characters to a terminal."""
    return text if text.isprintable() else ascii(text)


def _member(state: _State, name: str, data: bytes, progress: Callable[[int], None] | None) -> None:
    if name in (*_HEADER, "consistency.json", EAR_KEY_FILE):
        if state.manifest is not None:
            state.report.fail(name, "comes after the entries began")
        state.header[name] = data
        return
    if name in ("report.html", "verify_bundle.py"):
        state.header[name] = data
        return
    if state.manifest is None:
        _check_header(state)
    if found := _TRUST.fullmatch(name):
        _add_anchor(state, name, found.group(1), data)
    elif found := _ENDORSEMENT.fullmatch(name):
        _add_endorsement(state, name, found.group(1), data)
    elif found := _POLICY.fullmatch(name):
        index = int(found.group(1))
        state.policy_files.setdefault(index, {})[found.group(2)] = data
        if len(state.policy_files[index]) == 2:
            _add_policy(state, index)
    elif found := _ENROLMENT.fullmatch(name):
        if state.current is not None or state.last_index >= 0:
            # the quotes judged so far could not have seen it (the exporter writes every
            # enrolment before the entries): named, not used
            state.report.fail(name, "comes after the entries began")
            return
        index = int(found.group(1))
        state.enrolment_files.setdefault(index, {})[found.group(2)] = data
        if len(state.enrolment_files[index]) == 2:
            _add_enrolment(state, index)
    elif found := _ENTRY.fullmatch(name):
        index = int(found.group(1))
        if index != state.current:
            _flush_entry(state)
            state.current = index
        state.files[found.group(2)] = data
        if found.group(2) == "proof.tlog-proof":
            _flush_entry(state)
            if progress is not None:
                progress(state.report.entries)
    else:
        state.report.fail(name, "not a file a bundle holds")


def _check_header(state: _State) -> None:
    missing = [n for n in _HEADER if n not in state.header]
    if missing:
        raise _Abort(f"missing {', '.join(missing)} before the entries")
    report, key = state.report, state.key
    given = state.header["log-key.txt"].decode(errors="replace").strip()
    if given != str(key):
        report.fail("log-key.txt", f"names another key ({given[:60]}) than the one given")
    try:
        state.note = state.header["checkpoint.txt"].decode()
        state.checkpoint = CheckpointBody.parse(open_note(state.note, [key]).text)
    except (LedgerError, UnicodeDecodeError) as exc:
        raise _Abort(f"checkpoint.txt: {exc}") from None
    report.tree_size, report.origin = state.checkpoint.tree_size, state.checkpoint.origin
    manifest = state.header["manifest.json"]
    try:
        check_manifest_signature(manifest, state.header["manifest.sig"].decode(), key)
        info = json.loads(manifest)
    except (LedgerError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Abort(f"manifest.sig: {exc}") from None
    if problem := _manifest_problem(info):
        raise _Abort(f"manifest.json: {problem}")
    state.manifest = info
    if info.get("format") != FORMAT:
        raise _Abort(f"manifest.json: format {str(info.get('format'))[:40]!r}, expected {FORMAT}")
    for name, digest in info["files"].items():
        found = state.header.get(name)
        if found is None:
            report.fail(name, "missing (the manifest names it)")
        elif hashlib.sha256(found).hexdigest() != digest:
            report.fail(name, "changed: its SHA-256 is not the one the signed manifest names")
    expected = {
        "tree_size": state.checkpoint.tree_size,
        "root_hash": state.checkpoint.root_hash.hex(),
    }
    if info.get("checkpoint") != expected or info.get("origin") != state.checkpoint.origin:
        report.fail("manifest.json", "names another checkpoint than checkpoint.txt")
    _check_ear_key(state)
    _check_consistency(state)


def _check_ear_key(state: _State) -> None:
    """ear-key.jwk: the key the manifest names (by its thumbprint), one the caller gave if
    any; then the key every entry's EAR is checked against."""
    named, raw = (state.manifest or {}).get("ear_key"), state.header.get(EAR_KEY_FILE)
    if named is None:
        if raw is not None:
            state.report.fail(EAR_KEY_FILE, "not named by the manifest")
        return
    if raw is None:
        return  # the manifest's files loop named it missing
    try:
        keys = load_public_keys(raw)
        if len(keys) != 1 or keys[0]["kid"] != named["kid"]:
            raise EarError("its thumbprint is not the one the manifest names")
        if state.given_ear_keys and keys[0]["kid"] not in {k["kid"] for k in state.given_ear_keys}:
            raise EarError("is not an EAR key you gave")
    except EarError as exc:
        state.report.fail(EAR_KEY_FILE, exc.message)
        return
    if not state.given_ear_keys:
        state.ear_keys = keys


def _check_consistency(state: _State) -> None:
    report, raw = state.report, state.header.get("consistency.json")
    checkpoint, manifest = _checkpoint(state), state.manifest or {}
    if raw is None:
        if manifest.get("consistency_from") is not None:
            report.fail("consistency.json", "the manifest names one, the bundle has none")
        if state.known_checkpoint is not None:
            report.fail(
                "consistency.json", "missing: the bundle does not prove the checkpoint you hold"
            )
        return
    try:
        proof = _ConsistencyFile.parse(raw)
        held = CheckpointBody.parse(open_note(proof.from_checkpoint, [state.key]).text)
        if proof.to_size != checkpoint.tree_size or proof.from_size != held.tree_size:
            raise ValueError("its sizes are not those of the two checkpoints")
        verify_consistency(
            held.tree_size, checkpoint.tree_size, proof.hashes, held.root_hash,
            checkpoint.root_hash,
        )  # fmt: skip
        report.consistency_from = held.tree_size
    except (LedgerError, ValueError) as exc:
        report.fail("consistency.json", f"does not prove consistency: {exc}")
        return
    if state.known_checkpoint is not None:
        try:
            mine = CheckpointBody.parse(open_note(state.known_checkpoint, [state.key]).text)
        except LedgerError as exc:
            report.fail("--known-checkpoint", str(exc))
            return
        if (mine.tree_size, mine.root_hash) != (held.tree_size, held.root_hash):
            report.fail("consistency.json", "starts from another checkpoint than the one you hold")


def _add_anchor(state: _State, name: str, fingerprint: str, data: bytes) -> None:
    """Pinned before it is parsed: by its name, the manifest and ``--trust-root``."""
    try:
        der = ssl.PEM_cert_to_DER_cert(data.decode("ascii"))
    except (ValueError, UnicodeError):
        state.report.fail(name, "not a PEM certificate")
        return
    actual = hashlib.sha256(der).hexdigest()
    if actual != fingerprint:
        state.report.fail(name, f"its SHA-256 is {actual}, not the one it is named by")
        return
    if state.trust_roots and fingerprint not in state.trust_roots:
        state.report.fail(name, "is not a trust root you gave")
        return
    if fingerprint not in (state.manifest or {}).get("trust_anchors", []):
        state.report.fail(name, "not named by the manifest")
        return
    try:
        anchor = TrustAnchor.from_der(der, name=name)
    except (ValueError, VerifierError) as exc:
        state.report.fail(name, f"not a trust anchor: {exc}")
        return
    state.anchors[fingerprint] = anchor
    state.report.anchors.append(fingerprint)


def _add_endorsement(state: _State, name: str, digest: str, data: bytes) -> None:
    """A certificate, CRL or TCB document an entry rests on: held only under its SHA-256."""
    if hashlib.sha256(data).hexdigest() != digest:
        state.report.fail(name, "its SHA-256 is not the one it is named by")
    elif digest not in ((state.manifest or {}).get("endorsements") or []):
        state.report.fail(name, "not named by the manifest")
    else:
        state.endorsements[digest] = data


def _scheme(state: _State, kind: str, fingerprints: frozenset[str]) -> Scheme:
    """The verifier of ``kind`` holding exactly the anchors ``fingerprints`` (each in trust/),
    made once per set."""
    key = (kind, fingerprints)
    if key not in state.schemes:
        anchors = [state.anchors[f] for f in sorted(fingerprints)]
        if kind == SNP:
            state.schemes[key] = SnpVerifier(trust_anchors=anchors)
        elif kind in (TDX, SGX):
            state.schemes[key] = DcapVerifier(trust_anchors=anchors)
        elif kind == TPM:
            nitro = [a for a in anchors if _is_p384(a)]
            if len(nitro) > 1:
                raise ValueError("a TPM verifier holds one Nitro root")
            state.schemes[key] = TpmVerifier(
                trust_anchors=[a for a in anchors if not _is_p384(a)],
                nitro_anchor=nitro[0] if nitro else None,
                enrolments=StaticEnrolments(_enrolments(state)),
            )
        else:
            state.schemes[key] = NitroVerifier(trust_anchor=anchors[0])
    return state.schemes[key]


def _checkpoint(state: _State) -> CheckpointBody:
    if state.checkpoint is None:
        raise _Abort("checkpoint.txt: not read before it was needed")
    return state.checkpoint


def _proven(state: _State, item: str, index: int, data: bytes, proof_text: bytes) -> bool:
    checkpoint = _checkpoint(state)
    try:
        proof = parse_tlog_proof(proof_text)
        if proof.index != index:
            raise ValueError(f"it proves index {proof.index}")
        if proof.note != state.note:
            raise ValueError("it leads to another checkpoint than checkpoint.txt")
        verify_inclusion(
            leaf_hash(data), index, checkpoint.tree_size, proof.hashes, checkpoint.root_hash
        )
    except (LedgerError, ValueError) as exc:
        state.report.fail(item, f"the inclusion proof fails: {exc}")
        return False
    return True


def _is_p384(anchor: TrustAnchor) -> bool:
    """A Nitro root (AWS's, or a configured one) among a TPM verifier's anchors: the Google
    AK roots are RSA."""
    key = anchor.certificate.public_key()
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"


def _add_enrolment(state: _State, index: int) -> None:
    """A TPM enrolment entry: proven, then merged into the enrolment of its AK (an enrolled
    entry, and the revoked entry that may follow)."""
    files = state.enrolment_files.pop(index)
    item = f"enrolments/{index:012d}.json"
    if not _proven(state, item, index, files["json"], files["tlog-proof"]):
        return
    try:
        record = parse_entry(files["json"])
        name = record.get("name")
        if (
            record.get("v") != 1
            or record.get("kind") != "tpm_enrolment"
            or not isinstance(name, str)
            or not name
        ):
            raise ValueError("not a TPM enrolment entry")
        if index not in ((state.manifest or {}).get("enrolments") or []):
            raise ValueError("not named by the manifest")
        ak, at = str(record.get("ak_sha256")), recorded_instant({"verified_at": record.get("at")})
        if not _HEX64.fullmatch(ak):
            raise ValueError("its ak_sha256 is not a SHA-256")
        if record.get("action") == "enrolled" and _sha256_hex(record.get("ak_public")) != ak:
            raise ValueError("its ak_public is not the key its ak_sha256 names")
        action = record.get("action")
        if action not in ("enrolled", "revoked"):
            raise ValueError("its action is neither enrolled nor revoked")
        ek = record.get("ek_certificate_sha256")
        seen = state.enrolments.setdefault(ak, {})
        if action not in seen or at < seen[action]["at"]:
            seen[action] = {"at": at, "index": index, "name": str(name),
                            "ek": ek if isinstance(ek, str) else None}  # fmt: skip
        state.enrolment_entries.add(index)
    except (LedgerError, ValueError, UnicodeError) as exc:
        state.report.fail(item, str(exc))


def _enrolments(state: _State) -> list[Enrolment]:
    """Each AK's enrolment from its entries in enrolments/: its first enrolment and its first
    revocation count, whatever order they come in (as the standalone verifier reads them); an
    AK with a revocation and no enrolment has none. A revocation before the enrolment counts
    from the enrolment on (the same verdicts: nothing vouched before, revoked after)."""
    out = []
    for ak, seen in state.enrolments.items():
        enrolled = seen.get("enrolled")
        if enrolled is None:
            continue
        revoked = seen.get("revoked")
        out.append(
            Enrolment(
                name=enrolled["name"], ak_sha256=ak, enrolled_at=enrolled["at"],
                revoked_at=None if revoked is None else max(revoked["at"], enrolled["at"]),
                entry_index=enrolled["index"], ek_certificate_sha256=enrolled["ek"],
            )
        )  # fmt: skip
    return out


def _sha256_hex(public: object) -> str | None:
    """SHA-256 of a hex string's bytes, or None if it is not hex."""
    try:
        return (
            hashlib.sha256(bytes.fromhex(public)).hexdigest() if isinstance(public, str) else None
        )
    except ValueError:
        return None


def _add_policy(state: _State, index: int) -> None:
    files = state.policy_files.pop(index)
    item = f"policies/{index:012d}.json"
    if not _proven(state, item, index, files["json"], files["tlog-proof"]):
        return
    try:
        record = parse_entry(files["json"])
        if record.get("kind") != "policy":
            raise PolicyError("not a policy entry")
        _check_policy(record.get("policy"))
        state.policies[index] = PolicyConfig.from_snapshot(record["policy"], index)
    except (LedgerError, PolicyError, UnicodeError) as exc:
        state.report.fail(item, str(exc))


def _flush_entry(state: _State) -> None:
    if state.current is None:
        return
    index, files = state.current, state.files
    state.current, state.files = None, {}
    item = f"entries/{index:012d}"
    report = state.report
    if index <= state.last_index:
        report.fail(item, "out of index order")
    state.last_index = index
    data, proof = files.get("entry.json"), files.get("proof.tlog-proof")
    if data is None or proof is None:
        report.fail(item, "needs entry.json and proof.tlog-proof")
        return
    report.entries += 1
    state.digest.update(leaf_hash(data))
    if not _proven(state, f"{item}/proof.tlog-proof", index, data, proof):
        return
    try:
        record = parse_entry(data)
    except (LedgerError, UnicodeError) as exc:  # UnicodeError: a lone surrogate escaped
        report.fail(f"{item}/entry.json", str(exc))
        return
    kind = record.get("evidence_kind")
    expected = "evidence.cbor" if kind is None or kind in NITRO_KINDS else "evidence.bin"
    given = [name for name in ("evidence.cbor", "evidence.bin") if name in files]
    evidence = files.get(expected)
    named = record.get("evidence_sha256")
    if given and given != [expected]:
        report.fail(f"{item}/{given[-1]}", f"{kind or 'Nitro'} evidence is kept in {expected}")
        return
    if named is None and evidence is not None:
        report.fail(f"{item}/{expected}", "the entry names no evidence")
        return
    if named is not None:
        if evidence is None:
            report.fail(f"{item}/{expected}", "missing")
            return
        if hashlib.sha256(evidence).hexdigest() != named:
            report.fail(f"{item}/{expected}", "its SHA-256 is not the one the entry names")
            return
    report.verdicts[str(record.get("verdict") or record.get("kind"))] += 1
    if "ear" in record:  # entries from before EARs have none
        _check_ear(state, f"{item}/ear", record)
    if record.get("kind") == "attestation" and evidence is not None:
        _rejudge(state, item, record, evidence)


def _check_ear(state: _State, item: str, record: dict[str, Any]) -> None:
    """The entry's EAR: signed by the EAR key, and saying what the entry says."""
    if not state.ear_keys:
        state.report.fail(item, "the bundle carries no usable EAR key to check it with")
        return
    try:
        claims = verify_ear(record["ear"], state.ear_keys).claims
    except EarError as exc:
        state.report.fail(item, exc.message)
        return
    differ = ear_disagreements(claims, record)
    if differ:
        state.report.fail(item, "; ".join(differ))


def _evidence_of(state: _State, item: str, record: dict[str, Any], data: bytes) -> Evidence | None:
    """The evidence as the service judged it: its bytes and the endorsements the entry names,
    each from endorsements/. None (and a failure) if one is not there."""
    try:
        kind = EvidenceKind(str(record.get("evidence_kind") or EvidenceKind.AWS_NITRO_ENCLAVE))
    except ValueError:
        state.report.fail(
            item, f"names an unknown evidence kind {shown(str(record.get('evidence_kind')))[:40]}"
        )
        return None
    endorsements = []
    for named in _listed(record.get("endorsements")):
        digest = named.get("sha256") if isinstance(named, dict) else None
        try:
            endorsement_kind = EndorsementKind(str(named.get("kind")))
        except (ValueError, AttributeError):
            state.report.fail(f"{item}/entry.json", "names an endorsement of no known kind")
            return None
        found = state.endorsements.get(str(digest))
        if found is None:
            state.report.fail(
                item, f"its endorsement {shown(str(digest))[:70]} is not in endorsements/"
            )
            return None
        endorsements.append(Endorsement(endorsement_kind, found))
    return Evidence(kind, data, tuple(endorsements))


def _rejudge(state: _State, item: str, record: dict[str, Any], data: bytes) -> None:
    """Judge the evidence again at the instant the service judged it, against the anchors and
    under the policy revision the entry names, and compare with the recorded verdict; then
    its devices, if it names any (or its policy required some)."""
    report = state.report
    evidence = _evidence_of(state, item, record, data)
    if evidence is None:
        return
    kind = str(evidence.kind)
    revision = record.get("policy_revision")
    config = None
    if revision is not None:  # None: no policy existed yet, so the worker had no image
        config = state.policies.get(revision) if type(revision) is int else None
        if config is None:
            report.fail(item, f"its policy revision {revision} is not in policies/")
            return
    worker = record.get("worker")
    policy = (
        config.for_worker(worker, kind) if config is not None and isinstance(worker, str) else None
    )
    try:
        at = recorded_instant(record)
        text = record.get("result_hash")
        result_hash = ResultHash.parse(text) if isinstance(text, str) else None
    except ValueError as exc:
        report.fail(f"{item}/entry.json", str(exc))
        return
    # a composite entry's CPU verdict is its cpu_verdict, its reasons those of no submod
    recorded = {
        str(r.get("code"))
        for r in _listed(record.get("reasons"))
        if isinstance(r, dict) and "submod" not in r
    }
    verdict = record.get("cpu_verdict") if _composite(record) else record.get("verdict")
    was = f"recorded {verdict} ({', '.join(sorted(recorded)) or 'no reasons'})"
    report.rejudged += 1
    _rejudge_cpu(state, item, record, evidence, policy, result_hash, at, verdict, recorded, was)
    _rejudge_devices(state, item, record, evidence, config, result_hash, at)


def _rejudge_cpu(  # noqa: PLR0917 - private, one caller
    state: _State, item: str, record: dict[str, Any], evidence: Evidence,
    policy: SchemePolicy | None, result_hash: ResultHash | None, at: datetime, verdict: Any,
    recorded: set[str], was: str,
) -> None:  # fmt: skip
    report, kind = state.report, str(evidence.kind)
    if evidence.kind in NITRO_KINDS:
        named = record.get("trust_anchor_sha256")
        if named is None:
            _rejudge_unanchored(state, item, evidence, policy, result_hash, at, verdict, recorded)
            return
        fingerprints = [named]
    else:
        fingerprints = _listed(record.get("trust_anchors"))
        if not fingerprints:
            report.fail(f"{item}/entry.json", "names no trust anchor")
            return
    missing = [str(f) for f in fingerprints if str(f) not in state.anchors]
    if missing:
        report.fail(item, f"its trust anchor {shown(missing[0])[:70]} is not in trust/")
        return
    try:
        scheme = _scheme(state, kind, frozenset(str(f) for f in fingerprints))
    except ValueError as exc:  # an anchor of the wrong kind for the scheme
        report.fail(item, f"its trust anchors cannot judge {kind}: {exc}")
        return
    status, _, reasons = judge_again(evidence, scheme, policy, result_hash, at=at)
    codes = {code for code, _ in reasons}
    judged = f"re-verified as {status} ({', '.join(sorted(codes)) or 'no reasons'})"
    outcome = compare(verdict if isinstance(verdict, str) else None, recorded, status, codes)
    if outcome == "differ":
        report.fail(item, f"{judged}, {was}")
    elif outcome == "other_reasons":
        report.notes.append((item, f"{judged}, {was}"))


def _rejudge_unanchored(  # noqa: PLR0917 - private, one caller
    state: _State, item: str, evidence: Evidence, policy: SchemePolicy | None,
    result_hash: ResultHash | None, at: datetime, verdict: Any, recorded: set[str],
) -> None:  # fmt: skip
    """A Nitro entry recorded before entries named their anchor whatever the outcome (issue
    #10): only rejections before the policy step have none. Its rejection is accepted when no
    anchor in the bundle makes the evidence pass."""
    if verdict != "contraindicated":
        state.report.fail(item, f"recorded {verdict} without naming a trust anchor")
        return
    for fingerprint in sorted(state.anchors):
        try:
            verifier = _scheme(state, str(evidence.kind), frozenset([fingerprint]))
        except ValueError:
            continue
        status, _, reasons = judge_again(evidence, verifier, policy, result_hash, at=at)
        outcome = compare(verdict, recorded, status, {code for code, _ in reasons})
        if outcome == "differ":
            state.report.fail(
                item, f"names no trust anchor; re-verified as {status} against {fingerprint}, "
                "recorded contraindicated",
            )  # fmt: skip
            return
    state.report.notes.append(
        (item, "names no trust anchor (recorded before issue #10); no anchor in trust/ makes "
         "its evidence pass, so its rejection stands")
    )  # fmt: skip


#: what carried_nonce reads a challenge with: a Nitro document through a Nitro verifier's
#: parser (which needs no anchor of the entry's), any other evidence by its kind alone
_NITRO_PARSER, _BY_KIND = NitroVerifier(), NvidiaVerifier()


def _composite(record: dict[str, Any]) -> bool:
    """Whether the entry composes devices with its CPU evidence (issue #14)."""
    return "devices" in record or "cpu_verdict" in record


def _challenge(nonce: Any) -> bytes | None:
    """The 32-byte challenge the CPU evidence carried (the record's ``nonce``), which each
    device's nonce derives from; None if it carried none of that size."""
    try:
        raw = bytes.fromhex(nonce) if isinstance(nonce, str) else None
    except ValueError:
        return None
    return raw if raw is not None and len(raw) == CHALLENGE_BYTES else None


def _rejudge_devices(  # noqa: PLR0917 - private, one caller
    state: _State, item: str, record: dict[str, Any], cpu: Evidence,
    config: PolicyConfig | None, result_hash: ResultHash | None, at: datetime,
) -> None:  # fmt: skip
    """Judge each device of the entry again as the service judged it beside the CPU evidence
    (:func:`attest_ledger.intake.judge_devices`): its report and endorsements from
    endorsements/, by the NVIDIA verifier holding exactly the roots the device names, under
    the worker's ``nvidia-gpu`` policy of the recorded revision, with the nonce derived
    again from the entry's challenge (which must be the one the CPU evidence ``cpu``
    carries), result hash and its position; then the devices the
    policy requires (:func:`attest_ledger.intake.composition_reasons`) and the composed
    verdict. Every difference fails the entry."""
    report, worker = state.report, record.get("worker")
    policy = (
        config.for_worker(worker, NVIDIA)
        if config is not None and isinstance(worker, str)
        else None
    )
    if not _composite(record):
        if isinstance(policy, NvidiaPolicy) and (policy.min_gpus or policy.min_switches):
            report.fail(item, "its policy requires devices beside the CPU evidence; the entry "
                        "composes none")  # fmt: skip
        return
    devices = _device_evidence(state, item, record)
    if devices is None:
        return
    evidences, anchors = devices
    if result_hash is None:
        report.fail(item, "names devices but no result hash to bind them to")
        return
    carried = carried_nonce(cpu, _NITRO_PARSER if cpu.kind in NITRO_KINDS else _BY_KIND)
    if carried is not None and record.get("nonce") != carried.hex():
        report.fail(item, "its nonce is not the challenge its CPU evidence carries: its "
                    "devices cannot be bound to it")  # fmt: skip
        return
    challenge = _challenge(record.get("nonce"))
    judged = judge_devices(
        {NVIDIA: _device_scheme(state, evidences, anchors)} if evidences else {},
        policy,
        evidences,
        now=at,
        challenge=challenge,
        result_hash=result_hash,
    )
    listed = recorded_devices(record)
    reasons = [r for r in _listed(record.get("reasons")) if isinstance(r, dict)]
    for device, again in zip(listed, judged, strict=True):
        name = f"device {device.get('submod')!s:.20}"
        expected = again.nonce.hex() if again.nonce is not None else None
        if device.get("nonce") != expected:
            report.fail(item, f"{name}: its nonce is {str(device.get('nonce'))[:70]}, the "
                        f"one derived from the challenge, result and index {expected}")  # fmt: skip
        if device.get("submod") != again.submod:
            report.fail(item, f"{name}: judged again it is {again.submod}")
        codes = {str(r["code"]) for r in again.verdict.reasons}
        recorded = {str(r.get("code")) for r in reasons if r.get("submod") == device.get("submod")}
        status = str(again.verdict.status)
        if (status, codes) != (device.get("verdict"), recorded):
            report.fail(item, f"{name}: re-verified as {status} "
                        f"({', '.join(sorted(codes)) or 'no reasons'}), recorded "
                        f"{str(device.get('verdict'))[:20]} "
                        f"({', '.join(sorted(recorded)) or 'no reasons'})")  # fmt: skip
    composition = {str(r["code"]) for r in composition_reasons(policy, judged)}
    recorded = {str(r.get("code")) for r in reasons if r.get("submod") == "composite"}
    if composition != recorded:
        report.fail(item, f"its devices as a whole fall short by "
                    f"{', '.join(sorted(composition)) or 'nothing'}, recorded "
                    f"{', '.join(sorted(recorded)) or 'nothing'}")  # fmt: skip
    statuses = [str(record.get("cpu_verdict")), *(str(d.verdict.status) for d in judged)]
    unknown = [s for s in statuses if s not in VERDICTS]  # a proven entry may hold anything
    composed = "contraindicated" if composition else (unknown or [compose_status(statuses)])[0]
    if record.get("verdict") != composed:
        report.fail(item, f"its composed verdict is {composed}, recorded "
                    f"{str(record.get('verdict'))[:20]}")  # fmt: skip


def _device_evidence(
    state: _State, item: str, record: dict[str, Any]
) -> tuple[list[Evidence], frozenset[str]] | None:
    """Each device's evidence as the service judged it (its report and endorsements, each
    from endorsements/) and the roots they name (all the same: the service holds one NVIDIA
    verifier, each in trust/); None (and a failure) if one is not there."""
    listed = record.get("devices")
    if not isinstance(listed, list) or not all(isinstance(d, dict) for d in listed):
        state.report.fail(item, "its devices are not a list of objects")
        return None
    evidences, named = [], set()
    for index, device in enumerate(listed):
        anchors = device.get("trust_anchors")
        if (
            device.get("index") != index
            or device.get("evidence_kind") != NVIDIA
            or not isinstance(anchors, list)
            or not all(isinstance(a, str) for a in anchors)
            or not anchors
        ):
            state.report.fail(item, f"its device {index} is not one the "
                              "service records (index, nvidia-gpu, trust anchors)")  # fmt: skip
            return None
        named.add(frozenset(anchors))
        data = state.endorsements.get(str(device.get("evidence_sha256")))
        if data is None:
            state.report.fail(item, f"the report of its device {index} is not in endorsements/")
            return None
        evidence = _evidence_of(
            state, item, {"evidence_kind": NVIDIA, "endorsements": device.get("endorsements")},
            data,
        )  # fmt: skip
        if evidence is None:
            return None
        evidences.append(evidence)
    if len(named) > 1:
        state.report.fail(item, "its devices name different trust anchors")
        return None
    anchors = next(iter(named), frozenset())
    missing = sorted(anchors - set(state.anchors))
    if missing:
        state.report.fail(item, f"its device trust anchor {shown(missing[0])[:70]} is not in "
                          "trust/")  # fmt: skip
        return None
    return evidences, anchors


def _device_scheme(state: _State, evidences: list[Evidence], named: frozenset[str]) -> Scheme:
    """The NVIDIA verifier the service judged the devices with: holding as device roots the
    anchors a device's chain ends in (by its bytes, or as the issuer of its last
    certificate), as RIM roots the others (the service holds each once; if the chains end in
    none or in all, each role holds them all: the judgement then fails as it did)."""
    anchors = {f: state.anchors[f] for f in named}
    ends: set[str] = set()
    for evidence in evidences:
        chain = evidence.of_kind(EndorsementKind.DEVICE_CERTIFICATE)
        if chain:
            ends |= _chain_ends_in(chain[-1].data, anchors)
    device = frozenset(ends) or frozenset(anchors)
    rim = frozenset(anchors) - device or frozenset(anchors)
    key = (device, rim)
    if key not in state.device_schemes:
        state.device_schemes[key] = NvidiaVerifier(
            trust_anchors=[anchors[f] for f in sorted(device)],
            rim_anchors=[anchors[f] for f in sorted(rim)],
        )
    return state.device_schemes[key]


def _chain_ends_in(last: bytes, anchors: dict[str, TrustAnchor]) -> set[str]:
    """The anchors a device chain whose last certificate is ``last`` ends in: that
    certificate itself, or its issuer by name."""
    found = {f for f, a in anchors.items() if a.der == last}
    if found:
        return found
    try:
        issuer = x509.load_der_x509_certificate(last).issuer
    except ValueError:
        return set()
    return {f for f, a in anchors.items() if a.certificate.subject == issuer}


def _finish(state: _State) -> None:
    report = state.report
    if state.manifest is None:
        _check_header(state)
    manifest = state.manifest or {}
    for index in state.policy_files:
        report.fail(f"policies/{index:012d}", "needs both .json and .tlog-proof")
    for index in state.enrolment_files:
        report.fail(f"enrolments/{index:012d}", "needs both .json and .tlog-proof")
    failed = {item for item, _ in report.failures}
    missing_enrolments = sorted(
        i
        for i in set(manifest.get("enrolments") or []) - state.enrolment_entries
        if f"enrolments/{i:012d}.json" not in failed
    )
    if missing_enrolments:
        report.fail(
            "enrolments/", f"entries {missing_enrolments} named by the manifest are missing"
        )
    named = set(manifest.get("policies") or [])  # ints: _manifest_problem checked
    missing = sorted(named - set(state.policies) - {i for i, _ in _failed_policies(report)})
    if missing:
        report.fail("policies/", f"revisions {missing} named by the manifest are missing")
    anchors = {str(a) for a in manifest.get("trust_anchors") or []}
    if anchors - set(state.anchors) and not state.trust_roots:
        report.fail("trust/", f"anchors {sorted(anchors - set(state.anchors))} are missing")
    endorsements = {str(e) for e in manifest.get("endorsements") or []} - set(state.endorsements)
    if endorsements:
        report.fail("endorsements/", f"{sorted(endorsements)} named by the manifest are missing")
    entries = manifest.get("entries") or {}
    if report.entries != entries.get("count") or type(entries.get("count")) is not int:
        report.fail(
            "manifest.json",
            f"names {str(entries.get('count'))[:20]} entries, the bundle holds {report.entries}",
        )
    elif state.digest.hexdigest() != entries.get("leaf_hashes_sha256"):
        report.fail("manifest.json", "the entries are not the ones selected (leaf digest differs)")
    for n, fingerprint in enumerate(report.anchors):
        vendor = _VENDOR_ROOTS.get(fingerprint)
        if vendor is not None:
            report.anchors[n] = f"{fingerprint} ({vendor})"
        elif not state.trust_roots:
            report.anchors[n] = f"{fingerprint} (NOT a vendor's pinned root)"


def _failed_policies(report: BundleReport) -> list[tuple[int, str]]:
    out = []
    for item, message in report.failures:
        if found := re.fullmatch(r"policies/([0-9]{12})\.json", item):
            out.append((int(found.group(1)), message))
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _manifest_problem(info: Any) -> str | None:
    """Why a signed manifest is not of the bundle format (so that no field of an odd type
    reaches a check that assumes its type), or None."""
    if not isinstance(info, dict):
        return "not a JSON object"
    files, entries = info.get("files"), info.get("entries")
    policies, anchors = info.get("policies"), info.get("trust_anchors")
    checks = (
        isinstance(files, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()),
        isinstance(entries, dict),
        isinstance(policies, list) and all(_is_int(i) for i in policies),
        isinstance(info.get("enrolments", []), list)
        and all(_is_int(i) for i in info.get("enrolments", [])),
        isinstance(anchors, list) and all(isinstance(a, str) for a in anchors),
        isinstance(info.get("endorsements", []), list)
        and all(isinstance(e, str) for e in info.get("endorsements", [])),
        info.get("ear_key") is None
        or (isinstance(info["ear_key"], dict) and isinstance(info["ear_key"].get("kid"), str)),
    )
    return None if all(checks) else "its fields are not of the bundle format"


_HEX64 = re.compile(r"[0-9a-f]{64}")
_PCR_INDEX = re.compile(r"[0-9]|[12][0-9]|3[01]")
_PCR_HEX = re.compile(r"[0-9a-f]{96}")
_MAX_POLICY_SECONDS = 10**9


def _check_policy(snapshot: Any) -> None:
    """Raise PolicyError unless ``snapshot`` is a policy as :class:`PolicyConfig` writes it
    (``from_snapshot`` alone takes values that fail later, such as a string for an age)."""
    problem = PolicyError("not a recorded policy")
    if not isinstance(snapshot, dict):
        raise problem
    try:
        names = set()
        for image in snapshot["images"]:
            if isinstance(image, dict) and "kind" in image:
                _check_reference(image)
                names.add(image["name"])
                continue
            pcrs = image["pcrs"]
            if set(image) != {"name", "pcrs"} or not isinstance(image["name"], str):
                raise problem
            if not image["name"] or not isinstance(pcrs, dict) or not pcrs:
                raise problem
            for index, value in pcrs.items():
                if not _PCR_INDEX.fullmatch(index) or not isinstance(value, str):
                    raise problem
                if not _PCR_HEX.fullmatch(value):
                    raise problem
            names.add(image["name"])
        max_age, skew = snapshot["max_age_seconds"], snapshot["clock_skew_seconds"]
        if type(snapshot["allow_debug"]) is not bool:
            raise problem
        if max_age is not None and not (_is_int(max_age) and 0 < max_age <= _MAX_POLICY_SECONDS):
            raise problem
        if not (_is_int(skew) and 0 <= skew <= _MAX_POLICY_SECONDS):
            raise problem
        for allowed in snapshot["workers"].values():
            if not isinstance(allowed, list) or not all(name in names for name in allowed):
                raise problem
        schemes = snapshot.get("schemes", {})
        if not isinstance(schemes, dict) or set(schemes) - set(SCHEMES):
            raise problem
        for kind, settings in schemes.items():  # compiled as the service compiles them
            if not isinstance(settings, dict):
                raise problem
            rules = SCHEMES[kind]
            rules.policy.from_dict(
                {
                    "name": "check",
                    "evidence_kind": kind,
                    "images": [{"name": "check", **rules.placeholder}],
                    **{**rules.defaults, **settings},
                    "clock_skew_seconds": skew,
                }
            )
    except (KeyError, TypeError, AttributeError, PolicyInvalid):
        raise problem from None


def _check_reference(image: dict[str, Any]) -> None:
    """An image of another kind than Nitro's as :class:`PolicyConfig` records it: a name, the
    kind and the reference values of its scheme's fields, the required ones among them, as
    the verifier's policy type accepts them."""
    reference = image["reference"]
    rules = SCHEMES.get(image["kind"]) if isinstance(image["kind"], str) else None
    if set(image) != {"name", "kind", "reference"} or rules is None:
        raise PolicyError("not a recorded policy")
    if not isinstance(image["name"], str) or not image["name"] or not isinstance(reference, dict):
        raise PolicyError("not a recorded policy")
    if not set(rules.required) <= set(reference) or set(reference) - set(rules.image_fields):
        raise PolicyError("not a recorded policy")
    rules.policy.from_dict(
        {"name": "check", "evidence_kind": image["kind"],
         "images": [{"name": image["name"], **reference}]}
    )  # fmt: skip


@dataclass(frozen=True)
class _ConsistencyFile:
    from_size: int
    to_size: int
    hashes: list[bytes]
    from_checkpoint: str

    @classmethod
    def parse(cls, raw: bytes) -> _ConsistencyFile:
        """consistency.json, every field typed; raises ValueError."""
        try:
            proof = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            raise ValueError("not JSON") from None
        keys = {"from_size", "to_size", "hashes", "from_checkpoint"}
        if not isinstance(proof, dict) or set(proof) != keys:
            raise ValueError("not an object with from_size, to_size, hashes and from_checkpoint")
        sizes, hashes = (proof["from_size"], proof["to_size"]), proof["hashes"]
        if not all(_is_int(n) and 0 <= n < 1 << 63 for n in sizes):
            raise ValueError("its sizes are not tree sizes")
        if not isinstance(hashes, list) or len(hashes) > 128:
            raise ValueError("its hashes are not a list of at most 128")
        if not all(isinstance(h, str) and _HEX64.fullmatch(h) for h in hashes):
            raise ValueError("a hash is not 64 lowercase hex digits")
        if not isinstance(proof["from_checkpoint"], str):
            raise ValueError("from_checkpoint is not a signed checkpoint")
        return cls(sizes[0], sizes[1], [bytes.fromhex(h) for h in hashes], proof["from_checkpoint"])


def _listed(value: Any) -> list[Any]:
    """A recorded list, or none: a proven entry may still hold anything."""
    return value if isinstance(value, list) else []
