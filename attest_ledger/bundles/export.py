"""Regulator proof bundles: one archive that proves a selection of ledger entries offline.

The archive is a gzip-compressed POSIX tar, written as a stream (memory does not grow with
the selection) and byte-identical for the same selection at the same checkpoint (fixed
member order, times, owners and modes; gzip without a time or a name; Ed25519 signatures
are deterministic). Members, in this order::

    README.txt                     what this is and how to check it
    manifest.json                  the selection, the checkpoint, the entries' count and digest
    manifest.sig                   a signed note, by the ledger's key, over manifest.json
    log-key.txt                    the ledger's verifier key (check it against yours)
    checkpoint.txt                 the signed checkpoint every proof leads to
    ear-key.jwk                    the verifier's EAR-signing public key (a JWK; the manifest
                                     names its thumbprint), which signed each entry's "ear"
    consistency.json               optional: from a checkpoint the regulator already holds
    report.html                    a readable summary (its SHA-256 is in the manifest)
    verify_bundle.py               a standalone verifier: Python, cryptography, cbor2 (idem)
    trust/<sha256>.pem             the trust anchors the evidence was checked against
    endorsements/<sha256>.der      what the verdicts rested on beside the evidence (VCEKs,
                                     ASKs, CRLs...), once each, and the AMD ASK and ASVK the
                                     verifier holds for each pinned AMD root in trust/; a
                                     composite entry's devices (GPUs, NVSwitches): each
                                     SPDM report and its chain, RIMs and OCSP responses
    policies/<index>.json          each policy revision the entries name, with
    policies/<index>.tlog-proof      its inclusion proof (policies are ledger entries too)
    enrolments/<index>.json        each TPM enrolment entry (enrolled, revoked) of an AK that a
    enrolments/<index>.tlog-proof    TPM quote of the selection names, with its inclusion proof
    entries/<index>/entry.json     each entry's canonical bytes (the leaf hash covers them),
    entries/<index>/evidence.cbor    its raw evidence (entry.json names its SHA-256): a
                                     Nitro document, or evidence.bin for any other kind
    entries/<index>/proof.tlog-proof its inclusion proof (C2SP tlog-proof with the checkpoint)

Indices in names are zero-padded to 12 digits. Nothing in the archive is trusted because it
is there: the entries, evidence and policies are bound to the signed checkpoint through
their leaf hashes and proofs, and the manifest (which says how many entries were selected,
and the SHA-256 of their leaf hashes in order, so that a dropped entry shows) is signed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import heapq
import html
import io
import json
import re
import ssl
import tarfile
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import IO, Any

from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import Session

from attest_ledger.models import TpmEnrolment
from ledger.checkpoint import CheckpointBody, tlog_proof
from ledger.checkpoints import SignedCheckpoint, checkpoint_at, latest_checkpoint
from ledger.entry import canonical_json, endorsement_digests
from ledger.errors import InvalidNote
from ledger.models import Endorsement as StoredEndorsement
from ledger.models import Entry, Evidence
from ledger.note import NoteSigner, NoteVerifier, open_note, sign_note
from ledger.reads import consistency_proof, inclusion_proof
from ledger.search import EntryFilter
from verifier import TrustAnchor, aws_nitro_root_g1
from verifier.nitro.policy import NITRO_KINDS
from verifier.nvidia import nvidia_device_root, nvidia_rim_root
from verifier.scheme import EvidenceKind
from verifier.snp import AMD_ARK_SHA256, amd_trust_store
from verifier.tdx import intel_sgx_root_ca
from verifier.tpm import google_roots

__all__ = [
    "EAR_KEY_FILE",
    "FORMAT",
    "MANIFEST_NOTE",
    "BundleError",
    "BundleSelection",
    "BundleTooLarge",
    "ExportSummary",
    "UnknownTrustAnchor",
    "entry_path",
    "export_bundle",
    "known_trust_anchors",
]

FORMAT = "attestation-ledger-bundle/v1"
#: the verifier's EAR public key, a JWK (canonical JSON)
EAR_KEY_FILE = "ear-key.jwk"
MANIFEST_NOTE = "attestation-ledger/bundle-manifest/v1"
_PAD = 12
_HEX64 = re.compile("[0-9a-f]{64}")
TPM2_QUOTE = str(EvidenceKind.TPM2_QUOTE)
_STREAM = 2000  # rows fetched per round trip while streaming


class BundleError(Exception):
    """The export cannot be made as asked (no checkpoint, an unknown size, bad input)."""

    code = "bundle_error"


class BundleTooLarge(BundleError):
    """The selection holds more entries than the caller allows."""

    code = "export_too_large"


class UnknownTrustAnchor(BundleError):
    """Selected entries were judged against trust anchors the exporter was not given."""

    def __init__(self, fingerprints: Sequence[str]) -> None:
        self.fingerprints = tuple(sorted(fingerprints))
        super().__init__(
            "the selected entries were judged against trust "
            f"anchor{'s' if len(self.fingerprints) > 1 else ''} "
            f"{', '.join(self.fingerprints)} (SHA-256 of the DER), which the exporter does not "
            "hold: pass each such root certificate as --trust-root PEM (or set "
            "ATTEST_LEDGER_TRUST_ROOT, _SNP_TRUST_ROOT or _INTEL_TRUST_ROOT to it); a bundle must "
            "carry the anchors that judged its entries"
        )


def known_trust_anchors(*configured: TrustAnchor | None) -> list[TrustAnchor]:
    """The anchors an exporter can ship: the pinned AWS, AMD, Intel, Google (TPM AK) and
    NVIDIA (device identity, RIM signing) roots and those ``configured``."""
    pinned = [
        aws_nitro_root_g1(),
        *(a.anchor for a in amd_trust_store().all_anchors()),
        intel_sgx_root_ca(),
        *google_roots(),
        nvidia_device_root(),
        nvidia_rim_root(),
    ]
    found = {a.fingerprint: a for a in (*pinned, *configured) if a is not None}
    return list(found.values())


def pinned_intermediates(anchors: Sequence[TrustAnchor]) -> dict[str, bytes]:
    """SHA-256 -> DER of the packaged ASK and ASVK of each of AMD's pinned ARKs among
    ``anchors``: the SEV-SNP verifier uses them when the evidence brings none, so a bundle
    carries them for verifiers that do not hold them (the standalone one)."""
    pinned = set(AMD_ARK_SHA256.values())
    wanted = {a.fingerprint for a in anchors} & pinned
    out = {}
    for (product, _), intermediate in amd_trust_store().intermediates.items():
        if AMD_ARK_SHA256[product] in wanted:
            out[hashlib.sha256(intermediate.der).hexdigest()] = intermediate.der
    return out


@dataclass(frozen=True)
class BundleSelection:
    """Which entries: the portal's filters, plus explicit result hashes or indices."""

    filter: EntryFilter = field(default_factory=EntryFilter)
    result_hashes: tuple[str, ...] = ()
    indices: tuple[int, ...] = ()

    def where(self, size: int) -> list[Any]:
        clauses = [Entry.idx < size, *self.filter.where()]
        if self.result_hashes:
            clauses.append(Entry.result_hash.in_(sorted(set(self.result_hashes))))
        if self.indices:
            clauses.append(Entry.idx.in_(sorted(set(self.indices))))
        return clauses

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.filter.to_params())
        if self.result_hashes:
            out["result_hashes"] = sorted(set(self.result_hashes))
        if self.indices:
            out["indices"] = sorted(set(self.indices))
        return out


@dataclass
class _Scan:
    """What pass one learns about the selection, streamed."""

    count: int = 0
    leaf_digest: Any = field(default_factory=hashlib.sha256)
    policies: set[int] = field(default_factory=set)
    #: the anchors the selected attestations name; None: one names none (before issue #10)
    anchors: set[str | None] = field(default_factory=set)
    #: SHA-256 of the endorsements the selected entries name
    endorsements: set[str] = field(default_factory=set)
    #: SHA-256 of the TPM attestation keys the selected quotes name
    tpm_aks: set[str] = field(default_factory=set)
    first: int | None = None
    last: int | None = None
    verdicts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class ExportSummary:
    tree_size: int
    entries: int
    verdicts: dict[str, int]
    policies: list[int]
    bytes_written: int


def entry_path(index: int, name: str) -> str:
    return f"entries/{index:0{_PAD}d}/{name}"


def policy_path(index: int, suffix: str) -> str:
    return f"policies/{index:0{_PAD}d}.{suffix}"


def enrolment_path(index: int, suffix: str) -> str:
    return f"enrolments/{index:0{_PAD}d}.{suffix}"


class _Counting(io.RawIOBase):
    """Counts what passes to the real output (for the summary)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.written = out, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.out.write(data)
        self.written += len(data)
        return len(data)


class _Archive:
    """A deterministic tar stream: every member gets the same owner, mode and time."""

    def __init__(self, out: IO[bytes], mtime: int) -> None:
        self._counting = _Counting(out)
        # no name and no time in the gzip header: the same bundle is the same bytes
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._counting, mtime=0)
        self._tar = tarfile.open(  # noqa: SIM115 - closed by close()
            fileobj=self._gzip, mode="w|", format=tarfile.PAX_FORMAT
        )
        self._mtime = mtime

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"bundle/{name}")
        info.size, info.mtime, info.mode = len(data), self._mtime, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.members.clear()  # type: ignore[attr-defined]  # else it keeps every header

    def close(self) -> int:
        self._tar.close()
        self._gzip.close()
        return self._counting.written

    def abandon(self) -> None:
        """Stop writing (the export failed or was cancelled; the caller discards ``out``)."""
        with contextlib.suppress(Exception):
            self.close()


def _checkpoint(session: Session, size: int | None) -> SignedCheckpoint:
    if size is None:
        checkpoint = latest_checkpoint(session)
        if checkpoint is None:
            raise BundleError("the ledger has no signed checkpoint yet")
        return checkpoint
    found = checkpoint_at(session, size)
    if found is None:
        raise BundleError(f"no signed checkpoint has tree size {size}")
    return found


def _scan(session: Session, selection: BundleSelection, size: int) -> _Scan:
    """Pass one: how many entries, the SHA-256 of their leaf hashes in index order, the
    policy revisions and trust anchors they name; streamed, so memory does not grow with
    the selection."""
    # Read from the entry bytes here, not by PostgreSQL: its JSON types cannot hold every
    # string an entry may (a NUL, "\u0000", made every export fail).
    query = (
        select(Entry.idx, Entry.leaf_hash, Entry.data, func.coalesce(Entry.verdict, Entry.kind))
        .where(and_(true(), *selection.where(size)))
        .order_by(Entry.idx)
        .execution_options(yield_per=_STREAM)
    )
    scan = _Scan()
    for idx, leaf, data, verdict in session.execute(query):
        record = json.loads(data)
        policy = record.get("policy_revision")
        scan.verdicts[str(verdict or "entry")] += 1
        scan.leaf_digest.update(leaf)
        scan.count += 1
        scan.first = idx if scan.first is None else scan.first
        scan.last = idx
        if isinstance(policy, int) and not isinstance(policy, bool):
            scan.policies.add(policy)
        if record.get("kind") == "attestation":
            if "trust_anchors" in record:  # every kind but Nitro names all the anchors it held
                scan.anchors.update(str(a) for a in record["trust_anchors"])
            else:
                anchor = record.get("trust_anchor_sha256")
                scan.anchors.add(anchor if isinstance(anchor, str) else None)
            for device in record.get("devices") or ():  # its GPUs' device and RIM roots
                named = device.get("trust_anchors")
                if isinstance(named, list):  # (verifiers fail a device naming them otherwise)
                    scan.anchors.update(a for a in named if isinstance(a, str))
        # the entry's endorsements, and each device's report and endorsements
        scan.endorsements.update(endorsement_digests(record))
        if record.get("evidence_kind") == TPM2_QUOTE:
            ak = ((record.get("claims") or {}).get("ak") or {}).get("sha256")
            if isinstance(ak, str) and _HEX64.fullmatch(ak):
                scan.tpm_aks.add(ak)
    return scan


def _enrolment_entries(session: Session, aks: set[str], size: int) -> list[int]:
    """The ledger entries that enrolled and revoked the AKs named, covered by ``size``: what
    a bundle needs to judge those quotes' ``enrolled`` path again."""
    if not aks:
        return []
    rows = session.execute(
        select(TpmEnrolment.enrolled_index, TpmEnrolment.revoked_index).where(
            TpmEnrolment.ak_sha256.in_([bytes.fromhex(a) for a in sorted(aks)])
        )
    ).all()
    indices = {i for row in rows for i in row if i is not None and i < size}
    return sorted(indices)


def _endorsements(session: Session, digests: set[str]) -> Generator[tuple[str, bytes], None, None]:
    """Each endorsement the entries name, from the ledger's content-addressed store, in
    digest order; a name the store lacks is an inconsistent database, and says so."""
    ordered = sorted(digests)
    for start in range(0, len(ordered), _STREAM):
        chunk = [bytes.fromhex(d) for d in ordered[start : start + _STREAM]]
        rows = session.execute(
            select(StoredEndorsement.sha256, StoredEndorsement.data)
            .where(StoredEndorsement.sha256.in_(chunk))
            .order_by(StoredEndorsement.sha256)
        ).all()
        found = {bytes(sha).hex(): bytes(data) for sha, data in rows}
        for digest in ordered[start : start + _STREAM]:
            if digest not in found:
                raise BundleError(f"endorsement {digest} is named by an entry but not stored")
            yield digest, found[digest]


def _anchors_to_ship(named: set[str | None], known: Sequence[TrustAnchor]) -> list[TrustAnchor]:
    """The anchors the entries name, each resolved from ``known``; raises
    :class:`UnknownTrustAnchor` naming those that are not. An entry recorded before entries
    named their anchor whatever the outcome (a rejection before the policy step, issue #10)
    names none: then every anchor the exporter knows is shipped, and verifiers accept its
    rejection when none of them makes its evidence pass."""
    by_fingerprint = {a.fingerprint: a for a in known}
    missing = {f for f in named if f is not None and f not in by_fingerprint}
    if missing:
        raise UnknownTrustAnchor(sorted(missing))
    chosen = set(by_fingerprint) if None in named else {f for f in named if f is not None}
    return [by_fingerprint[f] for f in sorted(chosen)]


def _stream_entries(
    session: Session, selection: BundleSelection, size: int
) -> Generator[tuple[int, bytes, bytes | None, str | None], None, None]:
    query = (
        select(Entry.idx, Entry.data, Evidence.data, Entry.evidence_kind)
        .outerjoin(Evidence, Evidence.idx == Entry.idx)
        .where(and_(true(), *selection.where(size)))
        .order_by(Entry.idx)
        .execution_options(yield_per=_STREAM)
    )
    with session.execute(query) as rows:  # its server-side cursor closes with the generator
        for idx, data, evidence, kind in rows:
            yield int(idx), bytes(data), evidence, kind


def evidence_name(kind: str | None) -> str:
    """The file an entry's evidence is kept in: a Nitro document is CBOR; other evidence
    (an SEV-SNP report...) is shipped as the bytes it is."""
    return "evidence.cbor" if kind in (None, *NITRO_KINDS) else "evidence.bin"


def manifest_signature(manifest: bytes, signer: NoteSigner) -> str:
    text = f"{MANIFEST_NOTE}\nsha256 {hashlib.sha256(manifest).hexdigest()}\n"
    return sign_note(text, [signer])


def standalone_verifier() -> bytes:
    """The standalone verifier shipped in every bundle (attest_ledger/bundles/verify_bundle.py)."""
    return resources.files("attest_ledger.bundles").joinpath("verify_bundle.py").read_bytes()


def check_manifest_signature(manifest: bytes, note: str, key: NoteVerifier) -> None:
    """Raises InvalidNote unless ``note`` is the ledger's signature over ``manifest``."""
    opened = open_note(note, [key])
    expected = f"{MANIFEST_NOTE}\nsha256 {hashlib.sha256(manifest).hexdigest()}\n"
    if opened.text != expected:
        raise InvalidNote("the signed manifest digest does not match manifest.json")


def export_bundle(  # noqa: PLR0915 - one pass, in archive order, reads best as one piece
    session: Session,
    out: IO[bytes],
    *,
    signer: NoteSigner,
    trust_anchors: Sequence[TrustAnchor],
    selection: BundleSelection | None = None,
    tree_size: int | None = None,
    known_checkpoint: str | None = None,
    max_entries: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    ear_key: Mapping[str, Any] | None = None,
) -> ExportSummary:
    """Write the bundle for ``selection`` at the checkpoint of ``tree_size`` (default: the
    latest) to ``out``. ``trust_anchors``: the anchors the exporter holds (see
    :func:`known_trust_anchors`); the bundle carries those the selected entries name, and
    :class:`UnknownTrustAnchor` names any it does not hold. ``known_checkpoint``: a signed
    checkpoint the regulator holds; the bundle then proves the new checkpoint consistent
    with it. Reads in one snapshot: call in a REPEATABLE READ transaction for a consistent
    view while the ledger grows. ``max_entries``: refuse (:class:`BundleTooLarge`) a larger
    selection before writing. ``ear_key``: the verifier's EAR public key (a JWK with its
    ``kid``), shipped as ear-key.jwk so that verifiers can check each entry's EAR."""
    selection = selection or BundleSelection()
    checkpoint = _checkpoint(session, tree_size)
    size = checkpoint.tree_size
    verifier = signer.verifier()
    open_note(checkpoint.note, [verifier])  # never ship what our own key does not sign
    scan = _scan(session, selection, size)
    count, leaf_digest, policies = scan.count, scan.leaf_digest.hexdigest(), sorted(scan.policies)
    first, last, verdicts = scan.first, scan.last, scan.verdicts
    if count == 0:
        raise BundleError("no entry covered by the checkpoint matches the selection")
    if max_entries is not None and count > max_entries:
        raise BundleTooLarge(
            f"the selection holds {count} entries, more than the {max_entries} an export "
            "over HTTP may hold; narrow it, or run `attest-ledger export` where the database is"
        )
    consistency = None
    if known_checkpoint is not None:
        try:
            held = CheckpointBody.parse(open_note(known_checkpoint, [verifier]).text)
        except InvalidNote as exc:
            raise BundleError(f"the checkpoint you hold: {exc}") from None
        if held.tree_size > size:
            raise BundleError(f"the checkpoint you hold is newer than {size}; export at its size")
        hashes = consistency_proof(session, held.tree_size, size) if held.tree_size else []
        consistency = {
            "from_size": held.tree_size,
            "to_size": size,
            "hashes": [h.hex() for h in hashes],
            "from_checkpoint": known_checkpoint,
        }
    enrolments = _enrolment_entries(session, scan.tpm_aks, size)
    anchors = _anchors_to_ship(scan.anchors, trust_anchors)
    intermediates = pinned_intermediates(anchors)
    endorsement_names = sorted(scan.endorsements | set(intermediates))
    readme = _readme(size, count).encode()
    standalone = standalone_verifier()
    ear_jwk = canonical_json(dict(ear_key)) if ear_key is not None else None
    report = _report(checkpoint, checkpoint.body.origin, selection, count, first, last, verdicts,
                     anchors).encode()  # fmt: skip
    manifest = canonical_json(
        {
            "format": FORMAT,
            "origin": checkpoint.body.origin,
            "checkpoint": {"tree_size": size, "root_hash": checkpoint.body.root_hash.hex()},
            "selection": selection.describe(),
            "entries": {
                "count": count,
                "first": first,
                "last": last,
                "leaf_hashes_sha256": leaf_digest,
            },
            "policies": policies,
            "enrolments": enrolments,
            "trust_anchors": [a.fingerprint for a in anchors],
            "endorsements": endorsement_names,
            "consistency_from": consistency["from_size"] if consistency else None,
            "ear_key": {"file": EAR_KEY_FILE, "kid": str(ear_key["kid"])} if ear_key else None,
            "files": {  # the unproven files, so that a changed byte anywhere shows
                "README.txt": hashlib.sha256(readme).hexdigest(),
                "report.html": hashlib.sha256(report).hexdigest(),
                "verify_bundle.py": hashlib.sha256(standalone).hexdigest(),
                **({EAR_KEY_FILE: hashlib.sha256(ear_jwk).hexdigest()} if ear_jwk else {}),
            },
        }
    )
    archive = _Archive(out, int(checkpoint.created_at.timestamp()))
    try:
        archive.add("README.txt", readme)
        archive.add("manifest.json", manifest)
        archive.add("manifest.sig", manifest_signature(manifest, signer).encode())
        archive.add("log-key.txt", f"{verifier}\n".encode())
        archive.add("checkpoint.txt", checkpoint.note.encode())
        if ear_jwk is not None:
            archive.add(EAR_KEY_FILE, ear_jwk)
        if consistency is not None:
            archive.add("consistency.json", canonical_json(consistency))
        archive.add("report.html", report)
        archive.add("verify_bundle.py", standalone)
        for anchor in anchors:
            archive.add(
                f"trust/{anchor.fingerprint}.pem", ssl.DER_cert_to_PEM_cert(anchor.der).encode()
            )
        stored = _endorsements(session, scan.endorsements - set(intermediates))
        for digest, data in heapq.merge(stored, sorted(intermediates.items())):
            archive.add(f"endorsements/{digest}.der", data)
        for revision in policies:
            if revision >= size:
                raise BundleError(f"policy revision {revision} is not covered by the checkpoint")
            data = session.execute(select(Entry.data).where(Entry.idx == revision)).scalar_one()
            archive.add(policy_path(revision, "json"), bytes(data))
            proof = tlog_proof(revision, inclusion_proof(session, revision, size), checkpoint.note)
            archive.add(policy_path(revision, "tlog-proof"), proof.encode())
        for index in enrolments:
            data = session.execute(select(Entry.data).where(Entry.idx == index)).scalar_one()
            archive.add(enrolment_path(index, "json"), bytes(data))
            proof = tlog_proof(index, inclusion_proof(session, index, size), checkpoint.note)
            archive.add(enrolment_path(index, "tlog-proof"), proof.encode())
        done = 0
        with contextlib.closing(_stream_entries(session, selection, size)) as rows:
            for idx, data, evidence, kind in rows:
                archive.add(entry_path(idx, "entry.json"), data)
                if evidence is not None:
                    archive.add(entry_path(idx, evidence_name(kind)), evidence)
                proof = tlog_proof(idx, inclusion_proof(session, idx, size), checkpoint.note)
                archive.add(entry_path(idx, "proof.tlog-proof"), proof.encode())
                done += 1
                if progress is not None:
                    progress(done, count)
        if done != count:  # the ledger only grows, and only past the checkpoint: cannot happen
            raise BundleError(f"the selection changed during the export ({done} of {count})")
    except BaseException:
        archive.abandon()  # nothing half-written is left to flush later
        raise
    written = archive.close()
    return ExportSummary(size, count, dict(verdicts), policies, written)


def _readme(size: int, count: int) -> str:
    return f"""attestation-ledger proof bundle ({FORMAT})

{count} ledger entries, each with an inclusion proof to the signed checkpoint of tree size
{size} (checkpoint.txt), signed by the ledger key in log-key.txt. Do not trust that file:
check the bundle against the key you hold.

To check everything offline (no database, no network), either with the project installed:

    attest-ledger verify-bundle THIS.tar.gz --log-key 'KEY'

or with only Python 3.11+, cryptography and cbor2 (the script is in this bundle):

    python3 bundle/verify_bundle.py THIS.tar.gz --log-key 'KEY'

Both check the checkpoint signature, the signed manifest (so that no entry was dropped),
every leaf hash and inclusion proof, the consistency proof if present, every evidence and
endorsement digest, every entry's EAR (its ES256 signature by the key in ear-key.jwk, or
the one you pass as --ear-key JWKS|PEM, and that it says what the entry says, a submod
per device included), and judge all evidence again (AWS Nitro documents, AMD SEV-SNP
reports, Intel TDX/SGX quotes, TPM 2.0 quotes) at the instant the service judged it (the
entry's verified_at), against the trust anchors in trust/ and the endorsements in
endorsements/ the entry names, under the policy revision it names, comparing the
verdicts; rejections are judged again too. An entry with devices (NVIDIA GPUs and
NVSwitches judged beside the CPU evidence of one inference) has each device's SPDM report
judged again too, from endorsements/ (its device chain to the NVIDIA device root, its
RIMs to the RIM root, both in trust/), with the nonce it must carry derived again from
the entry's challenge, result hash and the device's position; then the devices the
policy requires and the composed verdict. Only the CPU evidence's challenge (the nonce)
is not judged again: it was the service's state. Pass --trust-root PEM (repeatable) to require
the roots you hold instead of those in trust/. Exit code 0 means every check passed;
otherwise the failing item is named.
"""


def _report(  # noqa: PLR0917 - private, one caller
    checkpoint: SignedCheckpoint,
    origin: str,
    selection: BundleSelection,
    count: int,
    first: int | None,
    last: int | None,
    verdicts: Counter[str],
    anchors: Sequence[TrustAnchor],
) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(v)}</td><td>{n:,}</td></tr>" for v, n in sorted(verdicts.items())
    )
    described = html.escape(json.dumps(selection.describe(), indent=2, sort_keys=True))
    root = checkpoint.body.root_hash.hex()
    signed = checkpoint.created_at.isoformat()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Proof bundle report</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;color:#1b2536}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccd;padding:.3rem .7rem;text-align:left}}
code,pre{{font-family:ui-monospace,monospace;font-size:.85em;overflow-wrap:anywhere}}</style>
</head><body>
<h1>Proof bundle</h1>
<p>This archive proves that the {count:,} ledger entries it holds (indices
{first} to {last}) are in the ledger
<code>{html.escape(origin)}</code> as described by its signed checkpoint of tree size
{checkpoint.tree_size:,} (root <code>{root}</code>, signed
{html.escape(signed)}), and carries the evidence behind each verdict so that it can be
judged again.</p>
<h2>Verdicts</h2><table><tr><th>verdict</th><th>entries</th></tr>{rows}</table>
<h2>What a verifier checks</h2>
<ol><li>the checkpoint signature and the signed manifest, against the ledger key you hold;</li>
<li>every entry's leaf hash and its inclusion proof to that checkpoint; the entry count and
the digest of the leaf hashes, so that none was dropped or added;</li>
<li>the consistency proof from a checkpoint you already hold, if the bundle has one;</li>
<li>every evidence and endorsement file against the SHA-256 it is named by;</li>
<li>all evidence again (AWS Nitro documents, AMD SEV-SNP reports, Intel quotes, TPM
quotes, and the NVIDIA GPU and NVSwitch reports of an entry's devices), at the instant the
service judged it, against the trust anchors in <code>trust/</code> it names
({", ".join(a.fingerprint for a in anchors)}), the endorsements in
<code>endorsements/</code> it names, and the policy revision it names, and that the verdict
agrees with the recorded one (only the challenge, the nonce, is not judged again).</li></ol>
<p>Run <code>python3 bundle/verify_bundle.py ARCHIVE --log-key KEY</code> (needs Python,
cryptography and cbor2) or <code>attest-ledger verify-bundle ARCHIVE --log-key KEY</code>.
This report is a summary and proves nothing by itself.</p>
<h2>Selection</h2><pre>{described}</pre>
</body></html>
"""
