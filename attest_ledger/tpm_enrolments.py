"""TPM attestation keys enrolled by an operator: the on-premises path for a TPM quote.

A machine's TPM has no cloud provider to vouch for its attestation key (AK). An operator who
set the machine up vouches instead: ``attest-ledger tpm enroll NAME --ak AK.pem [--ek-cert
EK.der --ek-ca CA.pem ...]`` records the AK (and the TPM's endorsement key certificate, when
given, checked against the TPM vendor's CA certificates given with it) as a ledger entry,
like a worker token::

    {"v": 1, "kind": "tpm_enrolment", "action": "enrolled", "name": ..., "ak_sha256": ...,
     "ak_public": <hex SPKI DER>, "at": <ISO UTC>, "ek_certificate_sha256": ... | null,
     "ek_chain": "verified" | "not_given", "endorsements": [{"kind": "ek-certificate", ...}]}
    {"v": 1, "kind": "tpm_enrolment", "action": "revoked", "name": ..., "ak_sha256": ...,
     "at": <ISO UTC>}

The entry is the record (a proof bundle carries the entries its quotes relied on); the
``tpm_enrolments`` table is their index, which :class:`LedgerEnrolments` reads for the
service's verifier, at each quote on the ``enrolled`` path.
An EK certificate identifies the TPM; it does not by itself prove that the AK lives in that
TPM (credential activation would): the operator's enrolment is what vouches for the AK.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_public_key,
)
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger.intake import to_milliseconds
from attest_ledger.models import TpmEnrolment
from ledger.append import append
from ledger.entry import NewEntry
from verifier.timefmt import iso_utc
from verifier.tpm.enrolment import Enrolment, StaticEnrolments
from verifier.x509 import CERTIFICATE_PARSE_ERRORS, load_der_certificate

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
__all__ = [
    "EnrolmentError",
    "LedgerEnrolments",
    "ak_public_der",
    "enroll",
    "enrolment_book",
    "enrolment_of",
    "list_enrolments",
    "revoke",
]

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: A TPM vendor's CA chain is a root and one or two intermediates.
_MAX_EK_DEPTH = 4


class EnrolmentError(Exception):
    """An enrolment that cannot be made: bad name or key, taken, unknown, or an EK
    certificate that does not chain to the CA certificates given."""


@dataclass(frozen=True, slots=True)
class Enrolled:
    name: str
    ak_sha256: str
    index: int
    ek_chain: str


def ak_public_der(data: bytes) -> bytes:
    """The AK's SubjectPublicKeyInfo, DER, from PEM or DER (re-encoded canonically: its
    SHA-256 is how the AK is named everywhere). EC P-256/P-384 or RSA of 2048 bits or more."""
    try:
        key = load_pem_public_key(data) if data.lstrip().startswith(b"-----") else None
        key = key or load_der_public_key(data)
    except (ValueError, TypeError):
        raise EnrolmentError(
            "--ak: not a public key in PEM or DER (SubjectPublicKeyInfo)"
        ) from None
    except UnsupportedAlgorithm:  # a key type or curve OID the library does not know
        raise EnrolmentError("--ak: a TPM AK is an EC (P-256, P-384) or RSA key") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise EnrolmentError(f"--ak: EC keys must be P-256 or P-384, found {key.curve.name}")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise EnrolmentError(f"--ak: RSA keys must be 2048 bits or more, found {key.key_size}")
    else:
        raise EnrolmentError("--ak: a TPM AK is an EC (P-256, P-384) or RSA key")
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _certificate(data: bytes, what: str) -> x509.Certificate:
    """The certificate, with the fields the chain check reads parsed now: the library parses
    names and validity lazily, so a malformed one would otherwise raise ValueError or
    TypeError in the middle of the check."""
    try:
        if data.lstrip().startswith(b"-----"):  # PEM: its DER, for the verifier's own loader,
            found = _PEM_CERTIFICATE.search(data)
            if found is None:
                raise ValueError("no PEM certificate")
            data = base64.b64decode(b"".join(found.group(1).split()), validate=True)
        # which refuses a non-positive serial and bad names with ValueError, whatever the
        # process's warning filters (cryptography only warns of them)
        certificate = load_der_certificate(data)
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        _ = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    except (*CERTIFICATE_PARSE_ERRORS, x509.InvalidVersion):
        raise EnrolmentError(f"{what}: not an X.509 certificate in PEM or DER") from None
    return certificate


def check_ek_chain(ek: x509.Certificate, cas: Sequence[x509.Certificate], now: datetime) -> None:
    """Raise EnrolmentError unless ``ek`` chains, link by link (issuer name and signature,
    each certificate valid at ``now``), to a self-signed certificate among ``cas``."""
    current = ek
    for _ in range(_MAX_EK_DEPTH):
        _valid(current, now)
        issuers = [ca for ca in cas if ca.subject == current.issuer]
        issuer = next((ca for ca in issuers if _issued_by(current, ca)), None)
        if issuer is None:
            raise EnrolmentError(
                f"--ek-cert: no CA certificate given issued {current.subject.rfc4514_string()!r} "
                f"(issuer {current.issuer.rfc4514_string()!r})"
            )
        if issuer.subject == issuer.issuer and _issued_by(issuer, issuer):
            _valid(issuer, now)
            return
        current = issuer
    raise EnrolmentError(f"--ek-cert: no self-signed CA within {_MAX_EK_DEPTH} links")


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False  # UnsupportedAlgorithm: an issuer key type or curve unknown to the library
    return True


def _valid(certificate: x509.Certificate, now: datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise EnrolmentError(
            f"certificate {certificate.subject.rfc4514_string()!r} is not valid at "
            f"{iso_utc(now)} (valid {iso_utc(certificate.not_valid_before_utc)} to "
            f"{iso_utc(certificate.not_valid_after_utc)})"
        )


def enroll(
    session: Session,
    name: str,
    ak: bytes,
    *,
    now: datetime,
    ek_certificate: bytes | None = None,
    ek_cas: Sequence[bytes] = (),
) -> Enrolled:
    """Enrol ``ak`` (PEM or DER) under ``name`` and append the ``enrolled`` entry. With
    ``ek_cas`` (the TPM vendor's CA certificates), ``ek_certificate`` must chain to one of
    them at ``now``; an EK certificate without CA certificates is refused (it would be
    recorded without meaning anything)."""
    now = to_milliseconds(now)  # as the entry writes it: the table and a bundle agree
    if not _NAME.fullmatch(name):
        raise EnrolmentError("an enrolment name is 1-64 letters, digits, '.', '_' or '-'")
    spki = ak_public_der(ak)
    digest = hashlib.sha256(spki).digest()
    endorsements: list[tuple[str, bytes]] = []
    ek_sha256: bytes | None = None
    ek_chain = "not_given"
    if ek_certificate is not None:
        if not ek_cas:
            raise EnrolmentError("--ek-cert needs --ek-ca: the TPM vendor's CA certificates")
        ek = _certificate(ek_certificate, "--ek-cert")
        check_ek_chain(ek, [_certificate(ca, "--ek-ca") for ca in ek_cas], now)
        der = ek.public_bytes(Encoding.DER)
        ek_sha256 = hashlib.sha256(der).digest()
        endorsements.append(("ek-certificate", der))
        ek_chain = "verified"
    elif ek_cas:
        raise EnrolmentError("--ek-ca without --ek-cert: give the TPM's EK certificate too")
    taken = session.execute(
        select(TpmEnrolment.name, TpmEnrolment.ak_sha256).where(
            (TpmEnrolment.name == name) | (TpmEnrolment.ak_sha256 == digest)
        )
    ).first()
    if taken is not None:
        if taken.ak_sha256 == digest:
            raise EnrolmentError(f"this AK is already enrolled, as {taken.name!r}")
        raise EnrolmentError(f"an enrolment named {name!r} already exists")
    record = {
        "v": 1,
        "kind": "tpm_enrolment",
        "action": "enrolled",
        "name": name,
        "ak_sha256": digest.hex(),
        "ak_public": spki.hex(),
        "at": iso_utc(now),
        "ek_certificate_sha256": ek_sha256.hex() if ek_sha256 is not None else None,
        "ek_chain": ek_chain,
    }
    [appended] = append(session, [NewEntry.from_record(record, endorsements=endorsements)])
    session.add(
        TpmEnrolment(
            ak_sha256=digest,
            name=name,
            ak_public=spki,
            ek_certificate_sha256=ek_sha256,
            enrolled_at=now,
            enrolled_index=appended.index,
        )
    )
    session.flush()
    return Enrolled(name, digest.hex(), appended.index, ek_chain)


def revoke(session: Session, name: str, *, now: datetime) -> int:
    """Revoke the AK enrolled as ``name`` for good; return the ``revoked`` entry's index."""
    now = to_milliseconds(now)  # as the entry writes it: the table and a bundle agree
    row = session.execute(
        select(TpmEnrolment).where(TpmEnrolment.name == name).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        raise EnrolmentError(f"no enrolled AK named {name!r}")
    record = {
        "v": 1,
        "kind": "tpm_enrolment",
        "action": "revoked",
        "name": name,
        "ak_sha256": row.ak_sha256.hex(),
        "at": iso_utc(now),
    }
    [appended] = append(session, [NewEntry.from_record(record)])
    session.execute(
        update(TpmEnrolment)
        .where(TpmEnrolment.ak_sha256 == row.ak_sha256)
        .values(revoked_at=now, revoked_index=appended.index)
    )
    return appended.index


def list_enrolments(session: Session) -> list[TpmEnrolment]:
    return list(session.execute(select(TpmEnrolment).order_by(TpmEnrolment.name)).scalars())


def _enrolment(row: TpmEnrolment) -> Enrolment:
    return Enrolment(
        name=row.name,
        ak_sha256=row.ak_sha256.hex(),
        enrolled_at=row.enrolled_at,
        revoked_at=row.revoked_at,
        entry_index=row.enrolled_index,
        ek_certificate_sha256=row.ek_certificate_sha256.hex()
        if row.ek_certificate_sha256 is not None
        else None,
    )


def enrolment_of(session: Session, ak_sha256: str) -> Enrolment | None:
    """The enrolment of one AK (by the hex SHA-256 of its SPKI), revoked or not, or None."""
    try:
        digest = bytes.fromhex(ak_sha256)
    except ValueError:
        return None
    row = session.get(TpmEnrolment, digest)
    return None if row is None else _enrolment(row)


class LedgerEnrolments:
    """The verifier's enrolment book over the ``tpm_enrolments`` table: one primary-key read
    per lookup, in a session of its own, so that a revocation counts from the moment it is
    committed."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def enrolment(self, ak_sha256: str) -> Enrolment | None:
        with self.sessions() as session:
            return enrolment_of(session, ak_sha256)


def enrolment_book(session: Session, ak_sha256s: Sequence[str]) -> StaticEnrolments:
    """The enrolments of the AKs named, for one verification (the verifier is pure: it is
    handed what the ledger knows)."""
    found = [enrolment_of(session, digest) for digest in ak_sha256s]
    return StaticEnrolments(e for e in found if e is not None)
