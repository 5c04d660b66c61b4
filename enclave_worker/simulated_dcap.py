"""Simulated Intel TDX trust domains and SGX enclaves with their quoting enclave: the
attesters of ``intel-tdx`` and ``intel-sgx`` evidence. They sign with a
:class:`~enclave_worker.simulated_intel.SimulatedIntelPki`, not Intel hardware, say so in
their names and warn when created.

A simulated platform has a PCK certificate (Platform CA for TDX, Processor CA for SGX) whose
SGX extension carries its FMSPC, PCE id, 16 TCB components and PCESVN, and a quoting enclave
(QE) with a P-256 attestation key. Its QE report (an SGX report body) carries
``SHA-256(attestation key X||Y || QE auth data) || 32 zero bytes`` and is signed by the PCK
key; each quote is signed by the attestation key (:mod:`enclave_worker.intel_quote`).

* :class:`SimulatedTdxPlatform`: quote v4 with a TD report 1.0 (or v5 with the body
  descriptor and a TD report 1.5), MRTD :func:`simulated_tdx_measurement` of the image, TD
  attributes with bit 0 (debug) for a debug TD, the TCB of a real TDX platform by default.
* :class:`SimulatedSgxEnclave`: quote v3 with an enclave report body, MRENCLAVE
  :func:`simulated_sgx_measurement` of the image, ATTRIBUTES flags 0x05 (INIT, MODE64BIT), or
  0x07 for a debug enclave.

``attest`` binds ``nonce || SHA-256(user_data)`` in the report data
(:func:`enclave_worker.binding.report_data`) and returns the quote with its collateral as
endorsements (:mod:`enclave_worker.intel_collateral`), the platform UpToDate unless told.

Everything secret derives from ``seed`` (random unless given): the same PKI, seed and ``at``
give byte-identical quotes and collateral.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclave_worker.attester import INTEL_SGX, INTEL_TDX, Endorsement, Evidence
from enclave_worker.binding import REPORT_DATA_SIZE, ResultDigest, report_data
from enclave_worker.intel_collateral import (
    UP_TO_DATE,
    QeIdentitySpec,
    TcbStanding,
    collateral_endorsements,
    qe_identity_json,
    tcb_info_json,
)
from enclave_worker.intel_quote import (
    SGX_ATTRIBUTE_DEBUG,
    TD_ATTRIBUTE_DEBUG,
    TEE_TYPE_SGX,
    TEE_TYPE_TDX,
    QuoteHeader,
    SgxReportBody,
    TdReport,
    assemble_quote,
    raw_public_key,
    raw_signature,
)
from enclave_worker.simulated_intel import (
    CaName,
    PckTcb,
    SimulatedIntelPki,
    SimulatedIntelWarning,
)

__all__ = [
    "DEFAULT_SGX_TCB",
    "DEFAULT_TDX_TCB",
    "DEFAULT_TEE_TCB_SVN",
    "QE_AUTH_DATA",
    "SGX_QE",
    "TD_QE",
    "QuotingEnclave",
    "SgxEnclave",
    "SimulatedSgxEnclave",
    "SimulatedTdxPlatform",
    "TdGuest",
    "simulated_sgx_measurement",
    "simulated_tdx_measurement",
]

#: The TCB of the real TDX platform of ../shared/fixtures/tdx (FMSPC B0C06F000000).
DEFAULT_TDX_TCB: Final = PckTcb(
    fmspc=bytes.fromhex("B0C06F000000"),
    sgx_components=(3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0),
    pce_svn=11,
)
#: That platform's TEE_TCB_SVN: TDX module SVN 6, major version 1, late microcode 3.
DEFAULT_TEE_TCB_SVN: Final = bytes([6, 1, 3]) + bytes(13)
#: The TCB of the real SGX platform of ../shared/fixtures/tdx (FMSPC 00A067110000).
DEFAULT_SGX_TCB: Final = PckTcb(
    fmspc=bytes.fromhex("00A067110000"),
    sgx_components=(11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    pce_svn=13,
)
_QE_SIGNER: Final = hashlib.sha256(b"attestation-ledger:simulated-intel-qe-signer").digest()
#: The TDX and SGX quoting enclaves (Intel's product ids 2 and 1).
TD_QE: Final = QeIdentitySpec(id="TD_QE", mr_signer=_QE_SIGNER, isv_prod_id=2, isv_svn=4)
SGX_QE: Final = QeIdentitySpec(id="QE", mr_signer=_QE_SIGNER, isv_prod_id=1, isv_svn=8)
#: What Intel's QEs put in their authentication data (all the real quotes: 00 01 .. 1f).
QE_AUTH_DATA: Final = bytes(range(32))
#: The QE's ATTRIBUTES (flags INIT, MODE64BIT, PROVISIONKEY; xfrm 0xe7), as Intel's QEs.
_QE_ATTRIBUTES: Final = bytes.fromhex("1500000000000000e700000000000000")
#: TD attributes of real TDs: SEPT_VE_DISABLE (bit 28); XFAM 0x602e7.
_TD_ATTRIBUTES: Final = 1 << 28
_XFAM: Final = 0x602E7
_MR_SEAM: Final = hashlib.sha384(b"attestation-ledger:simulated-tdx-module").digest()
_SGX_SIGNER: Final = hashlib.sha256(b"attestation-ledger:simulated-sgx-signer").digest()
_SGX_FLAGS: Final = 0x05  # INIT, MODE64BIT
_SGX_XFRM: Final = 0xE7
_P256_ORDER: Final = int("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)


def simulated_tdx_measurement(image: str) -> bytes:
    """The 48-byte MRTD a simulated TD of ``image`` reports."""
    return hashlib.sha384(b"attestation-ledger:simulated-tdx:" + image.encode()).digest()


def simulated_sgx_measurement(image: str) -> bytes:
    """The 32-byte MRENCLAVE a simulated enclave of ``image`` reports."""
    return hashlib.sha256(b"attestation-ledger:simulated-sgx:" + image.encode()).digest()


def _derive(seed: bytes, label: str) -> bytes:
    return hmac.digest(seed, b"attestation-ledger simulated Intel " + label.encode(), "sha256")


def _derive_key(seed: bytes, label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(_derive(seed, label), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


class QuotingEnclave:
    """A simulated platform's PCK key and certificate and its quoting enclave."""

    def __init__(
        self,
        pki: SimulatedIntelPki,
        *,
        ca: CaName,
        tcb: PckTcb,
        qe: QeIdentitySpec,
        at: datetime,
        seed: bytes,
    ) -> None:
        self.pki = pki
        self.ca: CaName = ca
        self.tcb = tcb
        self.qe = qe
        self.pck_key = _derive_key(seed, "PCK key")
        self.attestation_key = _derive_key(seed, "attestation key")
        self.pck_serial = int.from_bytes(_derive(seed, "PCK serial")[:19], "big") | 1 << 151
        self.pck = pki.issue_pck(
            self.pck_key.public_key(),
            ca=ca,
            tcb=tcb,
            at=at,
            ppid=_derive(seed, "PPID")[:16],
            serial=self.pck_serial,
            platform_instance_id=_derive(seed, "platform instance")[:16],
        )
        self.auth_data = QE_AUTH_DATA
        ak = raw_public_key(self.attestation_key.public_key())
        self.report = SgxReportBody(
            cpu_svn=tcb.cpu_svn,
            attributes=_QE_ATTRIBUTES,
            mr_enclave=hashlib.sha256(b"attestation-ledger:simulated-" + qe.id.encode()).digest(),
            mr_signer=qe.mr_signer,
            isv_prod_id=qe.isv_prod_id,
            isv_svn=qe.isv_svn,
            misc_select=qe.miscselect,
            report_data=hashlib.sha256(ak + self.auth_data).digest() + bytes(32),
        ).to_bytes()
        self.report_signature = raw_signature(
            self.pck_key.sign(self.report, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        )
        #: The header's user data: the first 16 bytes identify the QE's key, then zeros.
        self.user_data = hashlib.sha256(b"simulated QE " + ak).digest()[:16] + bytes(4)

    @property
    def pck_chain_pem(self) -> bytes:
        """Leaf, PCK CA, root: the chain certification data type 5 carries."""
        leaf = x509.load_der_x509_certificate(self.pck).public_bytes(serialization.Encoding.PEM)
        return leaf + self.pki.pck_ca(self.ca).pem() + self.pki.root_pem()

    def quote(self, header: QuoteHeader, body: SgxReportBody | TdReport) -> bytes:
        return assemble_quote(
            header,
            body,
            attestation_key=self.attestation_key,
            qe_report=self.report,
            qe_report_signature=self.report_signature,
            qe_auth_data=self.auth_data,
            pck_chain_pem=self.pck_chain_pem,
        )


class _SimulatedDcap:
    """What the TDX and SGX platforms share: the quoting enclave, the collateral, attest."""

    kind: str
    quoting_enclave: QuotingEnclave
    at: datetime
    standing: TcbStanding
    with_collateral: bool

    def _setup(
        self,
        pki: SimulatedIntelPki,
        *,
        ca: CaName,
        tcb: PckTcb,
        qe: QeIdentitySpec,
        at: datetime | None,
        seed: bytes | None,
        standing: TcbStanding,
        with_collateral: bool,
    ) -> None:
        if at is not None and at.tzinfo is None:
            raise ValueError("'at' must be timezone-aware")
        self.pki = pki
        self.at = (at or datetime.now(UTC)).replace(microsecond=0)
        self.seed = seed if seed is not None else secrets.token_bytes(32)
        self.standing = standing
        self.with_collateral = with_collateral
        self.quoting_enclave = QuotingEnclave(
            pki, ca=ca, tcb=tcb, qe=qe, at=self.at, seed=self.seed
        )

    def _adopt(
        self,
        *,
        pki: SimulatedIntelPki,
        quoting_enclave: QuotingEnclave,
        at: datetime | None,
        seed: bytes | None,
        standing: TcbStanding,
        with_collateral: bool,
    ) -> None:
        self.pki, self.quoting_enclave = pki, quoting_enclave
        self.at, self.seed = at or datetime.now(UTC), seed or b""
        self.standing, self.with_collateral = standing, with_collateral

    @property
    def tcb(self) -> PckTcb:
        return self.quoting_enclave.tcb

    def _tee_tcb_svn(self) -> bytes | None:
        return None

    def quote(self, report_data: bytes) -> bytes:
        raise NotImplementedError

    def tcb_info(
        self,
        *,
        at: datetime | None = None,
        standing: TcbStanding | None = None,
        fmspc: bytes | None = None,
    ) -> bytes:
        """The ``tcbInfo`` text for this platform (issued at ``at``, by default the
        platform's time)."""
        return tcb_info_json(
            self.tcb,
            at=at or self.at,
            tee_tcb_svn=self._tee_tcb_svn(),
            standing=standing or self.standing,
            fmspc=fmspc,
        )

    def qe_identity(self, *, at: datetime | None = None) -> bytes:
        return qe_identity_json(self.quoting_enclave.qe, at=at or self.at)

    def collateral(
        self,
        *,
        at: datetime | None = None,
        standing: TcbStanding | None = None,
        fmspc: bytes | None = None,
        revoked_pcks: Sequence[int] = (),
        revoked_cas: Sequence[int] = (),
    ) -> tuple[Endorsement, ...]:
        """The collateral as endorsements (``tcb-info``, ``qe-identity``, two ``crl``, the TCB
        Signing ``certificate``), all issued at ``at`` (by default the platform's time).
        ``fmspc`` writes another FMSPC (collateral of another platform); ``revoked_*`` puts
        serial numbers in the PCK CA CRL or the Root CA CRL."""
        when = at or self.at
        return collateral_endorsements(
            self.pki,
            ca=self.quoting_enclave.ca,
            tcb_info=self.tcb_info(at=when, standing=standing, fmspc=fmspc),
            qe_identity=self.qe_identity(at=when),
            at=when,
            revoked_pcks=revoked_pcks,
            revoked_cas=revoked_cas,
        )

    def attest(self, *, nonce: bytes, result: ResultDigest) -> Evidence:
        """The quote binding ``nonce`` and ``result``, with the collateral unless this
        platform was made ``with_collateral=False``."""
        quote = self.quote(report_data(nonce, result))
        return Evidence(self.kind, quote, self.collateral() if self.with_collateral else ())


def _check_report_data(data: bytes) -> bytes:
    if len(data) != REPORT_DATA_SIZE:
        raise ValueError(f"report_data is {REPORT_DATA_SIZE} bytes, not {len(data)}")
    return data


@dataclass(frozen=True)
class TdGuest:
    """What a TD's owner chooses at launch, and so what its reports say about it."""

    image: str = "demo-inference"
    #: None: :func:`simulated_tdx_measurement` of the image.
    measurement: bytes | None = None
    #: Sets TD attributes bit 0.
    debug: bool = False
    #: 4 (TD report 1.0) or 5 (with the body descriptor).
    version: int = 4
    #: The TD report 1.5 body; None: in version 5 quotes.
    tdx15: bool | None = None
    rtmrs: tuple[bytes, bytes, bytes, bytes] | None = None
    mr_config_id: bytes = bytes(48)
    mr_owner: bytes = bytes(48)
    mr_owner_config: bytes = bytes(48)
    td_attributes: int = _TD_ATTRIBUTES
    xfam: int = _XFAM

    @property
    def mr_td(self) -> bytes:
        return self.measurement or simulated_tdx_measurement(self.image)

    @property
    def rtmr_values(self) -> tuple[bytes, bytes, bytes, bytes]:
        """The given RTMRs, or what a simulated boot of the image extends (RTMR3 zero, as
        no runtime event is logged)."""
        if self.rtmrs is not None:
            return self.rtmrs
        image = self.image.encode()

        def rtmr(n: int) -> bytes:
            return hashlib.sha384(b"attestation-ledger:simulated-rtmr%d:" % n + image).digest()

        return (rtmr(0), rtmr(1), rtmr(2), bytes(48))


class SimulatedTdxPlatform(_SimulatedDcap):
    """A simulated TD on a simulated TDX platform: the ``intel-tdx`` attester. Warns when
    created; its quotes prove nothing about hardware."""

    kind = INTEL_TDX

    def __init__(
        self,
        pki: SimulatedIntelPki,
        *,
        at: datetime | None = None,
        seed: bytes | None = None,
        tcb: PckTcb = DEFAULT_TDX_TCB,
        tee_tcb_svn: bytes = DEFAULT_TEE_TCB_SVN,
        standing: TcbStanding = UP_TO_DATE,
        with_collateral: bool = True,
        _quoting_enclave: QuotingEnclave | None = None,
        **guest: Any,
    ) -> None:
        """``guest``: the fields of :class:`TdGuest` (``image``, ``debug``, ``version``...);
        ``at``: when the PCK certificate and the collateral are issued (now by default)."""
        warnings.warn(
            "SimulatedTdxPlatform signs with a simulated Intel PKI, not Intel hardware",
            SimulatedIntelWarning,
            stacklevel=2,
        )
        if len(tee_tcb_svn) != 16:
            raise ValueError(f"TEE_TCB_SVN is 16 bytes, not {len(tee_tcb_svn)}")
        self.tee_tcb_svn = tee_tcb_svn
        self.guest = TdGuest(**guest)
        if self.guest.version not in (4, 5):
            raise ValueError(f"a TDX quote is version 4 or 5, not {self.guest.version}")
        if _quoting_enclave is None:
            self._setup(
                pki, ca="platform", tcb=tcb, qe=TD_QE, at=at, seed=seed, standing=standing,
                with_collateral=with_collateral,
            )  # fmt: skip
        else:
            self._adopt(
                pki=pki, quoting_enclave=_quoting_enclave, at=at, seed=seed, standing=standing,
                with_collateral=with_collateral,
            )  # fmt: skip
        self.fields(bytes(REPORT_DATA_SIZE)).to_bytes()  # every field checked now

    def _tee_tcb_svn(self) -> bytes:
        return self.tee_tcb_svn

    @property
    def measurement(self) -> bytes:
        return self.guest.mr_td

    def fields(self, report_data: bytes) -> TdReport:
        """The TD report, for callers that change some fields before :meth:`sign`."""
        guest = self.guest
        tdx15 = guest.version == 5 if guest.tdx15 is None else guest.tdx15
        attributes = guest.td_attributes | (TD_ATTRIBUTE_DEBUG if guest.debug else 0)
        return TdReport(
            tee_tcb_svn=self.tee_tcb_svn,
            mr_seam=_MR_SEAM,
            mr_td=guest.mr_td,
            report_data=_check_report_data(report_data),
            rtmrs=guest.rtmr_values,
            td_attributes=attributes,
            xfam=guest.xfam,
            mr_config_id=guest.mr_config_id,
            mr_owner=guest.mr_owner,
            mr_owner_config=guest.mr_owner_config,
            tdx15=tdx15,
            tee_tcb_svn2=self.tee_tcb_svn if tdx15 else bytes(16),
        )

    def sign(self, body: TdReport) -> bytes:
        """The quote of (possibly altered) ``body``."""
        header = QuoteHeader(
            version=self.guest.version,
            tee_type=TEE_TYPE_TDX,
            user_data=self.quoting_enclave.user_data,
        )
        return self.quoting_enclave.quote(header, body)

    def quote(self, report_data: bytes) -> bytes:
        return self.sign(self.fields(report_data))

    def variant(self, **changes: Any) -> SimulatedTdxPlatform:
        """Another TD on the same platform (same PCK and QE): ``variant(image="other")``,
        ``variant(debug=True)``, ``variant(version=5)``; also ``standing`` and
        ``with_collateral``. Changing the image recomputes MRTD and RTMRs unless given."""
        if "image" in changes:
            changes.setdefault("measurement", None)
            changes.setdefault("rtmrs", None)
        standing = changes.pop("standing", self.standing)
        with_collateral = changes.pop("with_collateral", self.with_collateral)
        guest = dataclasses.replace(self.guest, **changes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedIntelWarning)
            return SimulatedTdxPlatform(
                self.pki,
                at=self.at,
                seed=self.seed,
                tee_tcb_svn=self.tee_tcb_svn,
                standing=standing,
                with_collateral=with_collateral,
                _quoting_enclave=self.quoting_enclave,
                **dataclasses.asdict(guest),
            )


@dataclass(frozen=True)
class SgxEnclave:
    """An enclave as its author built and signed it."""

    image: str = "demo-inference"
    #: None: :func:`simulated_sgx_measurement` of the image.
    measurement: bytes | None = None
    mr_signer: bytes = _SGX_SIGNER
    #: Sets ATTRIBUTES flags bit 1.
    debug: bool = False
    isv_prod_id: int = 0
    isv_svn: int = 0
    config_id: bytes = bytes(64)
    config_svn: int = 0

    @property
    def mr_enclave(self) -> bytes:
        return self.measurement or simulated_sgx_measurement(self.image)

    @property
    def attributes(self) -> bytes:
        flags = _SGX_FLAGS | (SGX_ATTRIBUTE_DEBUG if self.debug else 0)
        return flags.to_bytes(8, "little") + _SGX_XFRM.to_bytes(8, "little")


class SimulatedSgxEnclave(_SimulatedDcap):
    """A simulated SGX enclave on a simulated platform: the ``intel-sgx`` attester (quote
    version 3). Warns when created; its quotes prove nothing about hardware."""

    kind = INTEL_SGX

    def __init__(
        self,
        pki: SimulatedIntelPki,
        *,
        at: datetime | None = None,
        seed: bytes | None = None,
        tcb: PckTcb = DEFAULT_SGX_TCB,
        standing: TcbStanding = UP_TO_DATE,
        with_collateral: bool = True,
        _quoting_enclave: QuotingEnclave | None = None,
        **enclave: Any,
    ) -> None:
        """``enclave``: the fields of :class:`SgxEnclave` (``image``, ``debug``...)."""
        warnings.warn(
            "SimulatedSgxEnclave signs with a simulated Intel PKI, not Intel hardware",
            SimulatedIntelWarning,
            stacklevel=2,
        )
        self.enclave = SgxEnclave(**enclave)
        if _quoting_enclave is None:
            self._setup(
                pki, ca="processor", tcb=tcb, qe=SGX_QE, at=at, seed=seed, standing=standing,
                with_collateral=with_collateral,
            )  # fmt: skip
        else:
            self._adopt(
                pki=pki, quoting_enclave=_quoting_enclave, at=at, seed=seed, standing=standing,
                with_collateral=with_collateral,
            )  # fmt: skip
        self.fields(bytes(REPORT_DATA_SIZE)).to_bytes()

    @property
    def measurement(self) -> bytes:
        return self.enclave.mr_enclave

    def fields(self, report_data: bytes) -> SgxReportBody:
        enclave = self.enclave
        return SgxReportBody(
            cpu_svn=self.tcb.cpu_svn,
            attributes=enclave.attributes,
            mr_enclave=enclave.mr_enclave,
            mr_signer=enclave.mr_signer,
            isv_prod_id=enclave.isv_prod_id,
            isv_svn=enclave.isv_svn,
            config_id=enclave.config_id,
            config_svn=enclave.config_svn,
            report_data=_check_report_data(report_data),
        )

    def sign(self, body: SgxReportBody) -> bytes:
        qe = self.quoting_enclave
        header = QuoteHeader(
            version=3,
            tee_type=TEE_TYPE_SGX,
            qe_svn=qe.qe.isv_svn,
            pce_svn=qe.tcb.pce_svn,
            user_data=qe.user_data,
        )
        return qe.quote(header, body)

    def quote(self, report_data: bytes) -> bytes:
        return self.sign(self.fields(report_data))

    def variant(self, **changes: Any) -> SimulatedSgxEnclave:
        """Another enclave on the same platform: ``variant(image="other")``,
        ``variant(debug=True)``; also ``standing`` and ``with_collateral``."""
        if "image" in changes:
            changes.setdefault("measurement", None)
        standing = changes.pop("standing", self.standing)
        with_collateral = changes.pop("with_collateral", self.with_collateral)
        enclave = dataclasses.replace(self.enclave, **changes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedIntelWarning)
            return SimulatedSgxEnclave(
                self.pki,
                at=self.at,
                seed=self.seed,
                standing=standing,
                with_collateral=with_collateral,
                _quoting_enclave=self.quoting_enclave,
                **dataclasses.asdict(enclave),
            )
