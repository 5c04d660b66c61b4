"""The service's own tables (not part of the Merkle ledger, which lives in ``ledger.models``).

* ``api_clients``: workers (may submit) and readers (may read); only a SHA-256 of each bearer
  token is stored, and a client is revoked, never deleted.
* ``challenges``: single-use nonces handed to workers, with an expiry.
* ``idempotency_keys``: a worker's key -> the entry its request produced.
* ``policy_images``, ``policy_settings``, ``worker_images``: the reference values in force.
  Every change to them is also appended to the ledger, and ``policy_settings.revision_entry``
  names that entry, so each verdict can point at the exact policy that judged it.
* ``portal_users``: people who sign in to the auditor portal (auditor or admin), with an
  Argon2id password hash; disabled, never deleted.
* ``portal_sessions``: signed-in browsers; the cookie holds a random token, the table its
  SHA-256, the session's CSRF token and its expiry, so signing out really ends it.
* ``portal_login_failures``: failed sign-ins, by name and by address, for rate limiting
  that holds across processes.
* ``collateral_documents``: Intel DCAP collateral (TCB info, QE identity, CRLs, the TCB
  Signing certificate) kept by SHA-256, whoever brought it (a worker, an import, a PCCS),
  with what it says about itself for choosing it (:mod:`attest_ledger.collateral`).
* ``tpm_enrolments``: TPM attestation keys an operator enrolled, by the SHA-256 of the key;
  the index of the ``tpm_enrolment`` ledger entries (:mod:`attest_ledger.tpm_enrolments`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ledger.models import NAMING_CONVENTION

__all__ = [
    "ApiClient",
    "Challenge",
    "CollateralDocument",
    "IdempotencyKey",
    "LoginFailure",
    "PolicyImage",
    "PolicySettings",
    "PortalDevice",
    "PortalSession",
    "PortalUser",
    "ServiceBase",
    "TpmEnrolment",
    "WorkerImage",
]


class ServiceBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ApiClient(ServiceBase):
    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text)
    token_sha256: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("role IN ('worker', 'reader')", name="role_known"),
        CheckConstraint("octet_length(token_sha256) = 32", name="token_sha256_size"),
    )


class Challenge(ServiceBase):
    __tablename__ = "challenges"

    nonce: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("api_clients.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(ServiceBase):
    __tablename__ = "idempotency_keys"

    client_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("api_clients.id"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    entry_idx: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PolicyImage(ServiceBase):
    __tablename__ = "policy_images"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    #: the evidence kind whose reference values these are (verifier.registry)
    evidence_kind: Mapped[str] = mapped_column(Text, server_default="aws-nitro-enclave")
    #: Nitro: {"0": "<96 hex>", ...}; {} for other kinds
    pcrs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    #: other kinds: their reference values (for SNP: measurement, host_data, ...)
    reference: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PolicySettings(ServiceBase):
    __tablename__ = "policy_settings"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    allow_debug: Mapped[bool] = mapped_column(Boolean, server_default="false")
    max_age_seconds: Mapped[int | None] = mapped_column(Integer, server_default="300")
    clock_skew_seconds: Mapped[int] = mapped_column(Integer, server_default="60")
    #: The ledger entry that recorded the policy now in force (None before the first change).
    revision_entry: Mapped[int | None] = mapped_column(BigInteger)
    #: settings of each evidence kind but Nitro's: {"amd-sev-snp": {"allow_smt": ...}}
    schemes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class WorkerImage(ServiceBase):
    __tablename__ = "worker_images"

    client_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("api_clients.id"), primary_key=True
    )
    image_name: Mapped[str] = mapped_column(
        Text, ForeignKey("policy_images.name", ondelete="CASCADE"), primary_key=True
    )


class PortalUser(ServiceBase):
    __tablename__ = "portal_users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("role IN ('auditor', 'admin')", name="role_known"),)


class PortalSession(ServiceBase):
    __tablename__ = "portal_sessions"

    token_sha256: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("portal_users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    __table_args__ = (CheckConstraint("octet_length(token_sha256) = 32", name="token_sha256_size"),)


class PortalDevice(ServiceBase):
    """A browser that signed in as a user before (its device cookie's SHA-256)."""

    __tablename__ = "portal_devices"

    token_sha256: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("portal_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    __table_args__ = (CheckConstraint("octet_length(token_sha256) = 32", name="token_sha256_size"),)


class LoginFailure(ServiceBase):
    __tablename__ = "portal_login_failures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: the device cookie the attempt presented (None: an unknown client)
    device_sha256: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_portal_login_failures_name_at", "name", "at"),
        Index("ix_portal_login_failures_address_at", "address", "at"),
        Index("ix_portal_login_failures_device_sha256_at", "device_sha256", "at"),
    )


class CollateralDocument(ServiceBase):
    """One collateral document (Intel DCAP, or an NVIDIA RIM), kept once by SHA-256; the other
    columns are read from it (unverified) to choose it for a quote or a device report. RIMs:
    ``tee`` is the RIM kind (driver or vbios), ``version`` its version, ``name`` its RIM id
    (see :mod:`attest_ledger.rim_collateral`)."""

    __tablename__ = "collateral_documents"

    sha256: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    #: tcb-info, qe-identity, crl, certificate or rim (verifier EndorsementKind names)
    kind: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    #: TCB info: TDX or SGX; QE identity: TD_QE, QE or QVE; RIM: driver or vbios
    tee: Mapped[str | None] = mapped_column(Text)
    fmspc: Mapped[str | None] = mapped_column(Text)
    #: a CRL's issuer or a certificate's subject common name; a RIM's id (NV_GPU_DRIVER_...)
    name: Mapped[str | None] = mapped_column(Text)
    #: a RIM's driver or VBIOS version, lowercased (NULL for Intel documents)
    version: Mapped[str | None] = mapped_column(Text)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_update: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: who brought it first: worker, import or pccs
    source: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("octet_length(sha256) = 32", name="sha256_size"),
        Index("ix_collateral_documents_choice", "kind", "tee", "fmspc", "name", "issued_at"),
        Index("ix_collateral_documents_rim", "kind", "tee", "version", "issued_at"),
    )


class TpmEnrolment(ServiceBase):
    __tablename__ = "tpm_enrolments"

    ak_sha256: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    ak_public: Mapped[bytes] = mapped_column(LargeBinary)
    ek_certificate_sha256: Mapped[bytes | None] = mapped_column(LargeBinary)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    enrolled_index: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_index: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("octet_length(ak_sha256) = 32", name="ak_size"),
        CheckConstraint("(revoked_at IS NULL) = (revoked_index IS NULL)", name="revocation_whole"),
    )
