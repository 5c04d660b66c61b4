"""Everything a running service process needs, built once from the settings.

The web app, the command line and the tests build a :class:`Runtime`; nothing is created at
import time. A runtime owns threads (the append batcher, the checkpoint publisher) and a
connection pool, so it must be closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger import database
from attest_ledger.collateral import CollateralSource, PcsClient
from attest_ledger.ear import EarSigner
from attest_ledger.intake import Intake, trust_anchors_of
from attest_ledger.policy_store import PolicyStore
from attest_ledger.publisher import CheckpointPublisher
from attest_ledger.rim_collateral import RimFetcher, RimSource
from attest_ledger.settings import Settings
from attest_ledger.tpm_enrolments import LedgerEnrolments
from ledger.batcher import AppendBatcher
from ledger.db import make_session_factory
from ledger.keys import load_signing_key
from ledger.note import NoteSigner, NoteVerifier
from verifier import (
    EvidenceKind,
    NitroVerifier,
    SnpVerifier,
    TrustAnchor,
    VerifierError,
    aws_nitro_root_g1,
)
from verifier.nvidia import NvidiaVerifier
from verifier.tdx import DcapVerifier
from verifier.tpm import TpmVerifier

__all__ = ["LOCK_TIMEOUT", "Runtime"]

#: No statement of the service waits longer than this for a lock (then: 503, ledger busy).
LOCK_TIMEOUT = 5.0

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    verifier: NitroVerifier
    signer: NoteSigner
    batcher: AppendBatcher
    intake: Intake
    policies: PolicyStore
    publisher: CheckpointPublisher | None = None
    #: Sessions in autocommit mode for requests, which only read (or make one-statement
    #: writes such as issuing challenges): no BEGIN and ROLLBACK round trips per request.
    reads: sessionmaker[Session] | None = None
    #: The service's notion of now (tests fix it; the verifier itself never reads a clock).
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.intake.clock = lambda: self.clock()  # noqa: PLW0108 - late-bound: tests replace self.clock

    @property
    def ear_signer(self) -> EarSigner:
        """The key that signs every verdict's EAR."""
        return self.intake.ear_signer

    @property
    def log_key(self) -> NoteVerifier:
        return self.signer.verifier()

    @property
    def trust_anchor(self) -> TrustAnchor:
        return self.verifier.trust_anchor

    @property
    def trust_anchors(self) -> list[TrustAnchor]:
        """Every anchor the service judges against, of every scheme (what an export may
        have to ship)."""
        anchors = [self.verifier.trust_anchor]
        for scheme in (*self.intake.schemes.values(), *self.intake.device_schemes.values()):
            anchors.extend(trust_anchors_of(scheme))
        return list({a.fingerprint: a for a in anchors}.values())

    @classmethod
    def build(cls, settings: Settings, *, publish: bool = True, pool_size: int = 10) -> Runtime:
        signer = load_signing_key(settings.ledger_key_path)
        ear_signer, created = EarSigner.load_or_create(settings.ear_key_path)
        if created:
            log.warning("created the EAR-signing key %s (kid %s)", settings.ear_key_path,
                        ear_signer.kid)  # fmt: skip
        engine = database.engine_for(
            settings, pool_size=pool_size, pre_ping=False, lock_timeout=LOCK_TIMEOUT
        )
        sessions = make_session_factory(engine)
        reads = make_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
        verifier = NitroVerifier(trust_anchor=trust_anchor_for(settings.trust_root_path))
        snp = SnpVerifier(trust_anchors=snp_anchors_for(settings.snp_trust_root_path))
        dcap = DcapVerifier(trust_anchors=intel_anchors_for(settings.intel_trust_root_path))
        # NitroTPM documents chain to the Nitro root the Nitro scheme trusts; Google's AK
        # roots are pinned; enrolled AKs are read from the ledger's index at each quote
        tpm = TpmVerifier(nitro_anchor=verifier.trust_anchor, enrolments=LedgerEnrolments(reads))
        nvidia = NvidiaVerifier(
            trust_anchors=nvidia_anchors_for(settings.nvidia_trust_root_path, "device root"),
            rim_anchors=nvidia_anchors_for(settings.nvidia_rim_root_path, "RIM root"),
        )
        batcher = AppendBatcher(sessions, lock_timeout=None)  # the connections carry it
        policies = PolicyStore()
        intake = Intake(
            verifier=verifier,
            policies=policies,
            batcher=batcher,
            session_factory=sessions,
            schemes={
                str(EvidenceKind.AMD_SEV_SNP): snp,
                str(EvidenceKind.INTEL_TDX): dcap,
                str(EvidenceKind.INTEL_SGX): dcap,
                str(EvidenceKind.TPM2_QUOTE): tpm,
            },
            collateral=CollateralSource(
                sessions, PcsClient(settings.pccs_url) if settings.pccs_url else None
            ),
            ear_signer=ear_signer,
            device_schemes={str(EvidenceKind.NVIDIA_GPU): nvidia},
            device_collateral=RimSource(
                sessions,
                RimFetcher(settings.rim_url) if settings.rim_url else None,
                verify=lambda data, at: _rim_verifies(nvidia, data, at),
            ),
        )
        publisher = (
            CheckpointPublisher(
                engine,
                signer,
                interval=settings.checkpoint_interval,
                max_entries=settings.checkpoint_entries,
            ).start()
            if publish
            else None
        )
        return cls(
            settings, engine, sessions, verifier, signer, batcher, intake, policies, publisher,
            reads=reads,
        )  # fmt: skip

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
        self.batcher.close()
        self.engine.dispose()


def _configured_anchors(path: Path, role: str, vendor: str, simulated: str) -> list[TrustAnchor]:
    """The ``role`` certificates in the PEM file ``path``, trusted INSTEAD of ``vendor``'s
    pinned ones (and said so in the log): a simulated PKI's, for demos and tests."""
    anchors = [
        TrustAnchor.from_der(certificate.public_bytes(Encoding.DER), name=f"configured {role} {n}")
        for n, certificate in enumerate(x509.load_pem_x509_certificates(path.read_bytes()))
    ]
    log.warning(
        "trusting the %s(s) in %s (SHA-256 %s) INSTEAD of %s's: for simulated %s only",
        role,
        path,
        ", ".join(a.fingerprint for a in anchors),
        vendor,
        simulated,
    )
    return anchors


def snp_anchors_for(path: Path | None) -> list[TrustAnchor] | None:
    """AMD's pinned ARKs (None), unless a file of ARKs is configured explicitly (and then say
    so): the simulated AMD platform's, for demos and tests."""
    return None if path is None else _configured_anchors(path, "ARK", "AMD", "SEV-SNP")


def intel_anchors_for(path: Path | None) -> list[TrustAnchor] | None:
    """Intel's pinned SGX Root CA (None), unless a root file is configured explicitly (and
    then say so): the simulated Intel PKI's, for demos and tests."""
    return None if path is None else _configured_anchors(path, "root", "Intel", "TDX/SGX")


def _rim_verifies(verifier: NvidiaVerifier, data: bytes, at: datetime) -> bool:
    """Whether a RIM a worker attached may be shared: signed under the RIM roots trusted."""
    try:
        verifier.check_rim(data, at=at)
    except VerifierError:
        return False
    return True


def nvidia_anchors_for(path: Path | None, role: str) -> list[TrustAnchor] | None:
    """NVIDIA's pinned ``role`` (None: the device root or the RIM root), unless a file of
    roots is configured explicitly (and then say so): the simulated GPUs', for demos and
    tests."""
    return None if path is None else _configured_anchors(path, role, "NVIDIA", "GPUs")


def trust_anchor_for(path: Path | None) -> TrustAnchor:
    """AWS's pinned root, unless a root file is configured explicitly (and then say so)."""
    if path is None:
        return aws_nitro_root_g1()
    anchor = TrustAnchor.from_pem(path.read_bytes(), name=f"configured root {path.name}")
    log.warning(
        "trusting %s (SHA-256 %s) INSTEAD of the AWS Nitro root: for simulated enclaves only",
        path,
        anchor.fingerprint,
    )
    return anchor
