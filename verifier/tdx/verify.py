"""The DCAP scheme: verify an Intel TDX (``intel-tdx``) or SGX (``intel-sgx``) quote with its
collateral.

1. Parse the quote strictly by its length fields (:mod:`verifier.tdx.quote`).
2. The PCK chain in the quote to a trusted Intel SGX root, valid at ``at``
   (:mod:`verifier.tdx.chain`), and the PCK certificate's SGX extension.
3. The QE report signed by the PCK key (``qe_report_signature_invalid``).
4. The QE binding: QE report_data = SHA-256(attestation key || QE auth data) || 32 zeros
   (``qe_binding_invalid``).
5. The quote signed by the attestation key over header and body (``signature_invalid``).
6. Collateral (endorsements): the TCB info and QE identity, each signed over its exact text by
   an Intel SGX TCB Signing certificate (a ``certificate`` endorsement) issued by the same root
   (``collateral_signature_invalid``), and current at ``at``.
7. The TCB evaluation (:mod:`verifier.tdx.tcb`): TEE type, FMSPC, QE identity, TCB level,
   TDX module; each misfit has its own code.
8. The PCK CRL (issuer: the PCK leaf's issuer) and the Root CA CRL, signed and current; the
   PCK certificate, its CA and the TCB signer must not be listed.
9. Appraise the now-authentic quote against the policy, collecting every violation.

Steps 1-8 raise at the first failure; step 9 raises one PolicyViolation carrying them all. A
quote carries no time: ``at`` is the caller's. No network, ever: the collateral comes with
the evidence, and is recorded by digest in the result so that the verdict can be re-checked
with exactly the collateral of the day.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.binding import ResultHash
from verifier.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    ChainInvalid,
    CollateralSignatureInvalid,
    EndorsementMismatch,
    EndorsementMissing,
    MalformedEvidence,
    PolicyInvalid,
    PolicyViolation,
    QeBindingInvalid,
    QeReportSignatureInvalid,
    SignatureInvalid,
    VerifierError,
)
from verifier.policy import SchemePolicy
from verifier.result import (
    AttestationResult,
    TimeBasis,
    UsedEndorsement,
    evidence_digest,
    judged,
    status_of,
)
from verifier.scheme import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
)
from verifier.tdx.appraisal import appraise, trustworthiness
from verifier.tdx.chain import (
    DcapChainVerifier,
    VerifiedCrl,
    VerifiedPck,
    VerifiedSigner,
    check_crl_current,
    check_not_revoked,
)
from verifier.tdx.claims import DcapClaims
from verifier.tdx.collateral import (
    QeIdentity,
    TcbInfo,
    parse_qe_identity,
    parse_tcb_info,
    split_signed_body,
)
from verifier.tdx.pck import SGX_EXTENSIONS_OID, PckExtension, parse_pck_extension
from verifier.tdx.policy import SgxPolicy, TdxPolicy
from verifier.tdx.quote import Quote, parse_quote
from verifier.tdx.roots import check_intel_anchor, intel_sgx_root_ca
from verifier.tdx.tcb import TcbEvaluation, evaluate_tcb
from verifier.timefmt import iso_utc
from verifier.x509 import CERTIFICATE_PARSE_ERRORS, LinkCache, TrustAnchor, check_validity

__all__ = ["DcapVerifier", "parse_quote", "unverified_pck"]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256_ORDER = int("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)
_KIND_OF_TEE = {True: EvidenceKind.INTEL_TDX, False: EvidenceKind.INTEL_SGX}


@dataclass(frozen=True, slots=True)
class _Collateral:
    """The collateral of one path, verified: documents, signers, CRLs (no time judged)."""

    tcb_info_e: Endorsement
    qe_identity_e: Endorsement
    tcb_info: TcbInfo
    tcb_signer: VerifiedSigner
    qe_identity: QeIdentity
    qe_signer: VerifiedSigner
    #: the PCK CRL and the Root CA CRL, or why they could not be used
    crls: tuple[VerifiedCrl, VerifiedCrl] | VerifierError
    #: the distinct signers used
    signers: tuple[VerifiedSigner, ...]


class DcapVerifier:
    """Intel DCAP quotes: TDX (v4, v5) and SGX (v3). Trusts the pinned Intel SGX Root CA, or
    exactly ``trust_anchors`` (P-256 roots, such as the simulated Intel PKI's). Keeps bounded
    caches of verified chains, signers, CRLs, collateral and attestation keys; reads no clock,
    does no I/O; one instance may be shared between threads."""

    kinds: tuple[EvidenceKind, ...] = (EvidenceKind.INTEL_TDX, EvidenceKind.INTEL_SGX)

    def __init__(
        self, *, trust_anchors: Sequence[TrustAnchor] | None = None, cache_size: int = 512
    ) -> None:
        pinned = intel_sgx_root_ca()
        anchors = (pinned,) if trust_anchors is None else tuple(trust_anchors)
        if not anchors:
            raise ValueError("a DcapVerifier needs at least one trust anchor")
        for anchor in anchors:
            check_intel_anchor(anchor)
        self.trust_anchors = anchors
        self._origins = {a.der: "pinned" if a.der == pinned.der else "configured" for a in anchors}
        self._chains = DcapChainVerifier(anchors, cache_size=cache_size)
        self._documents: LinkCache[tuple[bytes, bytes], TcbInfo | QeIdentity] = LinkCache(
            cache_size
        )
        self._keys: LinkCache[bytes, ec.EllipticCurvePublicKey] = LinkCache(cache_size)
        self._collaterals: LinkCache[
            tuple[bytes, bytes, tuple[tuple[EndorsementKind, bytes], ...]], _Collateral
        ] = LinkCache(cache_size)
        self._evaluations: LinkCache[tuple[str, str, bytes, bytes, bytes], TcbEvaluation] = (
            LinkCache(cache_size)
        )
        self._used: LinkCache[tuple[bytes | str, ...], tuple[UsedEndorsement, ...]] = LinkCache(
            cache_size
        )

    # --- the Scheme interface -------------------------------------------------------------

    def signed_tcb_info(self, data: bytes, certificates: Sequence[bytes]) -> TcbInfo:
        """A kept TCB info document (a PCS body), once its signature verifies with a TCB
        Signing certificate among ``certificates`` that one of this verifier's roots issued.
        No time is judged: for reading later collateral (what it would say of a platform),
        never for judging a quote. Raises CollateralSignatureInvalid, EndorsementMissing,
        ChainInvalid or MalformedEvidence."""
        given = tuple(Endorsement(EndorsementKind.CERTIFICATE, der) for der in certificates)
        last: VerifierError = EndorsementMissing("certificate: no TCB Signing certificate given")
        for anchor in self.trust_anchors:
            try:
                signers = self._chains.signers(given, anchor)
            except VerifierError as exc:
                last = exc
                continue
            document, _ = self._document(
                Endorsement(EndorsementKind.TCB_INFO, data), signers, "tcbInfo"
            )
            assert isinstance(document, TcbInfo)  # noqa: S101 - member "tcbInfo" parses one
            return document
        raise last

    def describe(self, evidence: Evidence) -> DcapClaims:
        """Parse without verifying: the quote, and what its PCK certificate says if it reads."""
        quote = parse_quote(evidence.data)
        return DcapClaims(quote, unverified_pck(quote))

    def verify(
        self,
        evidence: Evidence,
        *,
        at: datetime,
        policy: SchemePolicy,
        nonce: bytes | None = None,
        result_hash: ResultHash | None = None,
    ) -> AttestationResult:
        """Verify ``evidence`` (a quote and its collateral endorsements) and return the
        affirming or warning result. ``policy`` must be a :class:`TdxPolicy` for TDX quotes
        and an :class:`SgxPolicy` for SGX quotes (:class:`PolicyInvalid` otherwise).

        Raises a :class:`~verifier.errors.VerifierError` subclass for every failure;
        ``ValueError`` for a naive ``at`` or evidence of another kind."""
        if not isinstance(at, datetime):
            raise TypeError("'at' must be a datetime: a DCAP quote carries no time")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("'at' must be timezone-aware; pass datetime.now(UTC), not now()")
        at = at.astimezone(UTC)
        if not isinstance(policy, SchemePolicy):
            raise TypeError("'policy' must be a verifier TdxPolicy or SgxPolicy")
        if evidence.kind not in self.kinds:
            raise ValueError(f"the DCAP scheme cannot verify {evidence.kind} evidence")
        quote = parse_quote(evidence.data)
        kind = _KIND_OF_TEE[quote.is_tdx]
        if evidence.kind is not kind:
            raise MalformedEvidence(
                f"the evidence is labelled {evidence.kind}, but the quote is an "
                f"{'TDX' if quote.is_tdx else 'SGX'} quote ({kind})"
            )
        wanted = TdxPolicy if quote.is_tdx else SgxPolicy
        if not isinstance(policy, wanted):
            raise PolicyInvalid(
                f"policy {policy.name!r} judges {policy.evidence_kind}: an {kind} quote needs "
                f"an {wanted.__name__}"
            )
        try:
            return self._verify(evidence, quote, at, policy, nonce=nonce, result_hash=result_hash)
        except PolicyViolation:
            raise
        except VerifierError as exc:
            if exc.claims is None:
                exc.claims = DcapClaims(quote, unverified_pck(quote))
            raise

    # --- the steps ------------------------------------------------------------------------

    def _verify(
        self,
        evidence: Evidence,
        quote: Quote,
        at: datetime,
        policy: TdxPolicy | SgxPolicy,
        *,
        nonce: bytes | None,
        result_hash: ResultHash | None,
    ) -> AttestationResult:
        evidence.check_endorsement_sizes("quote")
        skew = policy.clock_skew
        data = quote.signature_data
        pck = self._chains.pck_chain(data.pck_chain_pem, at=at, clock_skew=skew)
        _verify_raw(
            pck.leaf_key,
            data.qe_report_signature,
            data.qe_report.raw,
            QeReportSignatureInvalid,
            "qe report: its signature does not verify with the PCK certificate's key",
        )
        _check_binding(quote)
        key = self._attestation_key(data.attestation_key)
        _verify_raw(
            key,
            data.signature,
            quote.signed_bytes,
            SignatureInvalid,
            "quote: the signature over header and body does not verify with the attestation key",
        )

        collateral = self._collateral(evidence, pck)
        tcb_info_e, qe_identity_e = collateral.tcb_info_e, collateral.qe_identity_e
        tcb_info, qe_identity = collateral.tcb_info, collateral.qe_identity
        tcb_signer, qe_signer = collateral.tcb_signer, collateral.qe_signer
        for signer in collateral.signers:
            check_validity(signer.info, at, skew)
        _check_window("tcb-info", tcb_info.issue_date, tcb_info.next_update, at, skew)
        _check_window("qe-identity", qe_identity.issue_date, qe_identity.next_update, at, skew)

        # The evaluation depends only on these exact bytes: cached like a verified link.
        tcb_bytes = quote.body.raw[:120] if quote.is_tdx else b""
        evaluation_key = (
            tcb_info_e.sha256,
            qe_identity_e.sha256,
            pck.leaf_der,
            data.qe_report.raw,
            tcb_bytes,
        )
        evaluation = self._evaluations.get(evaluation_key)
        if evaluation is None:
            evaluation = evaluate_tcb(quote, pck.extension, tcb_info, qe_identity)
            self._evaluations.put(evaluation_key, evaluation)

        if isinstance(collateral.crls, VerifierError):
            raise collateral.crls
        pck_crl, root_crl = collateral.crls
        check_crl_current(pck_crl, "pck crl", at, skew)
        check_crl_current(root_crl, "root ca crl", at, skew)
        root_info, ca_info, leaf_info = pck.certificates
        check_not_revoked(pck_crl, pck.leaf_serial, leaf_info)
        check_not_revoked(root_crl, pck.ca_serial, ca_info)
        for signer in (tcb_signer, qe_signer):
            check_not_revoked(root_crl, signer.serial, signer.info)

        digests = {
            "tcb_info": tcb_info_e.sha256,
            "qe_identity": qe_identity_e.sha256,
            "pck_crl": pck_crl.sha256,
            "root_ca_crl": root_crl.sha256,
            "tcb_signing_certificate": tcb_signer.info.fingerprint_sha256,
        }
        claims = DcapClaims(
            quote,
            pck.extension,
            evaluation,
            tcb_info,
            qe_identity,
            MappingProxyType(digests),
        )
        used_key = (
            pck.leaf_der,
            pck.ca_der,
            pck.anchor.der,
            tcb_signer.der,
            qe_signer.der,
            tcb_info_e.sha256,
            qe_identity_e.sha256,
            pck_crl.sha256,
            root_crl.sha256,
        )
        used = self._used.get(used_key)
        if used is None:
            used = self._used_endorsements(
                pck=pck,
                tcb_signer=tcb_signer,
                qe_signer=qe_signer,
                tcb_info_e=tcb_info_e,
                qe_identity_e=qe_identity_e,
                pck_crl=pck_crl,
                root_crl=root_crl,
                tcb_info=tcb_info,
                qe_identity=qe_identity,
            )
            self._used.put(used_key, used)

        appraisal = appraise(claims, policy, nonce=nonce, result_hash=result_hash)
        notes = list(appraisal.notes)
        status = status_of(
            appraisal.violations,
            warning=policy.accepts_any_measurement
            or quote.body.debug
            or appraisal.tcb_tier != "affirming",
        )
        result = AttestationResult(
            status=status,
            evidence_kind=claims.evidence_kind,
            evidence_sha256=evidence_digest(evidence.data),
            claims=claims,
            certificates=(root_info, ca_info, leaf_info, tcb_signer.info),
            endorsements=used,
            trust_anchor_name=pck.anchor.name,
            trust_anchor_sha256=pck.anchor.fingerprint,
            policy=policy,
            matched_reference=appraisal.matched_image,
            violations=appraisal.violations,
            notes=tuple(notes),
            verified_at=at,
            time_basis=TimeBasis.GIVEN,
            nonce_checked=nonce is not None,
            result_binding_checked=result_hash is not None,
            trustworthiness=trustworthiness(
                policy,
                claims,
                appraisal,
                nonce_checked=nonce is not None,
                result_binding_checked=result_hash is not None,
            ),
        )
        return judged(result)

    def _used_endorsements(
        self,
        *,
        pck: VerifiedPck,
        tcb_signer: VerifiedSigner,
        qe_signer: VerifiedSigner,
        tcb_info_e: Endorsement,
        qe_identity_e: Endorsement,
        pck_crl: VerifiedCrl,
        root_crl: VerifiedCrl,
        tcb_info: TcbInfo,
        qe_identity: QeIdentity,
    ) -> tuple[UsedEndorsement, ...]:
        """Every document and certificate the verdict rests on, with its SHA-256."""
        root_info, ca_info, leaf_info = pck.certificates
        origin = self._origins[pck.anchor.der]
        used = [
            UsedEndorsement("root", pck.anchor.fingerprint, root_info.subject, origin),
            UsedEndorsement("pck-ca", ca_info.fingerprint_sha256, ca_info.subject, "evidence"),
            UsedEndorsement("pck", leaf_info.fingerprint_sha256, leaf_info.subject, "evidence"),
            UsedEndorsement(
                str(EndorsementKind.CERTIFICATE),
                tcb_signer.info.fingerprint_sha256,
                tcb_signer.info.subject,
                "evidence",
            ),
            UsedEndorsement(
                str(EndorsementKind.TCB_INFO),
                tcb_info_e.sha256,
                f"TCB info {tcb_info.id} FMSPC {tcb_info.fmspc.hex().upper()}",
                "evidence",
            ),
            UsedEndorsement(
                str(EndorsementKind.QE_IDENTITY),
                qe_identity_e.sha256,
                f"QE identity {qe_identity.id}",
                "evidence",
            ),
            UsedEndorsement("crl", pck_crl.sha256, f"CRL of {pck_crl.issuer}", "evidence"),
            UsedEndorsement("crl", root_crl.sha256, f"CRL of {root_crl.issuer}", "evidence"),
        ]
        if qe_signer.der != tcb_signer.der:
            used.insert(
                4,
                UsedEndorsement(
                    str(EndorsementKind.CERTIFICATE),
                    qe_signer.info.fingerprint_sha256,
                    qe_signer.info.subject,
                    "evidence",
                ),
            )
        return tuple(used)

    def _collateral(self, evidence: Evidence, pck: VerifiedPck) -> _Collateral:
        """The signed documents, their signers and the two CRLs of this path among the
        endorsements, verified (not yet judged at a time); cached by their exact bytes."""
        key = (
            pck.anchor.der,
            pck.ca_der,
            tuple((e.kind, e.data) for e in evidence.endorsements),
        )
        cached = self._collaterals.get(key)
        if cached is not None:
            return cached
        tcb_info_e = _one(evidence, EndorsementKind.TCB_INFO)
        qe_identity_e = _one(evidence, EndorsementKind.QE_IDENTITY)
        signers = self._chains.signers(evidence.endorsements, pck.anchor)
        tcb_info, tcb_signer = self._document(tcb_info_e, signers, "tcbInfo")
        qe_identity, qe_signer = self._document(qe_identity_e, signers, "enclaveIdentity")
        assert isinstance(tcb_info, TcbInfo)  # noqa: S101 - by member name
        assert isinstance(qe_identity, QeIdentity)  # noqa: S101 - by member name
        # A CRL that is missing is reported after the TCB evaluation, which names collateral of
        # another TEE or platform more precisely (its CRL is another CA's).
        crls: tuple[VerifiedCrl, VerifiedCrl] | VerifierError
        try:
            crls = (
                self._chains.crl(evidence.endorsements, pck.ca, pck.ca_der, "pck crl"),
                self._chains.crl(
                    evidence.endorsements, pck.anchor.certificate, pck.anchor.der, "root ca crl"
                ),
            )
        except VerifierError as exc:
            crls = exc
        used = tuple({tcb_signer.der: tcb_signer, qe_signer.der: qe_signer}.values())
        collateral = _Collateral(
            tcb_info_e,
            qe_identity_e,
            tcb_info,
            tcb_signer,
            qe_identity,
            qe_signer,
            crls,
            used,
        )
        if not isinstance(crls, VerifierError):
            self._collaterals.put(key, collateral)
        return collateral

    def _attestation_key(self, raw: bytes) -> ec.EllipticCurvePublicKey:
        key = self._keys.get(raw)
        if key is None:
            try:
                key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
            except ValueError:
                raise SignatureInvalid(
                    "quote: the attestation key is not a point of P-256"
                ) from None
            self._keys.put(raw, key)
        return key

    def _document(
        self, endorsement: Endorsement, signers: tuple[VerifiedSigner, ...], member: str
    ) -> tuple[TcbInfo | QeIdentity, VerifiedSigner]:
        what = str(endorsement.kind)
        for signer in signers:
            cached = self._documents.get((signer.der, endorsement.data))
            if cached is not None:
                return cached, signer
        document = split_signed_body(endorsement.data, member, what)
        for signer in signers:
            try:
                _verify_raw(
                    signer.key, document.signature, document.signed, CollateralSignatureInvalid, ""
                )
            except CollateralSignatureInvalid:
                continue
            parsed: TcbInfo | QeIdentity = (
                parse_tcb_info(document.signed)
                if member == "tcbInfo"
                else parse_qe_identity(document.signed)
            )
            self._documents.put((signer.der, endorsement.data), parsed)
            return parsed, signer
        raise CollateralSignatureInvalid(
            f"{what}: the signature over its {member!r} text does not verify with the TCB "
            f"Signing certificate ({signers[0].info.subject})"
        )


def unverified_pck(quote: Quote) -> PckExtension | None:
    """What the quote's PCK certificate's SGX extension says (FMSPC, TCB...), read without
    verifying anything: for display and for choosing collateral. None if it does not read."""
    try:
        certificates = x509.load_pem_x509_certificates(quote.signature_data.pck_chain_pem)
        extension = certificates[0].extensions.get_extension_for_oid(
            x509.ObjectIdentifier(SGX_EXTENSIONS_OID)
        )
        value = extension.value
        if not isinstance(value, x509.UnrecognizedExtension):
            return None
        return parse_pck_extension(value.value)
    except (*CERTIFICATE_PARSE_ERRORS, x509.ExtensionNotFound, IndexError, ChainInvalid):
        return None


def _one(evidence: Evidence, kind: EndorsementKind) -> Endorsement:
    given = evidence.of_kind(kind)
    if not given:
        raise EndorsementMissing(
            f"{kind}: none was given; a DCAP quote is judged with Intel's collateral of the "
            "day (no network is used to fetch it)"
        )
    if len(given) > 1:
        raise EndorsementMismatch(f"{len(given)} {kind} documents given: give exactly one")
    return given[0]


def _verify_raw(
    key: ec.EllipticCurvePublicKey,
    signature: bytes,
    data: bytes,
    error: type[SignatureInvalid],
    message: str,
) -> None:
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
        raise error(message + " (r or s outside 1..n-1)")
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
    except InvalidSignature:
        raise error(message) from None


def _check_binding(quote: Quote) -> None:
    data = quote.signature_data
    expected = hashlib.sha256(data.attestation_key + data.qe_auth_data).digest()
    report_data = data.qe_report.report_data
    if not hmac.compare_digest(report_data[:32], expected) or any(report_data[32:]):
        raise QeBindingInvalid(
            "qe report: report_data is not SHA-256(attestation key || QE auth data) followed "
            "by 32 zero bytes: the attestation key is not the quoting enclave's"
        )


def _check_signer_validity(signer: VerifiedSigner, at: datetime, skew: timedelta) -> None:
    check_validity(signer.info, at, skew)


def _check_window(
    what: str, issued: datetime, next_update: datetime, at: datetime, skew: timedelta
) -> None:
    if issued > at + skew:  # (a signed date near year 1 must not overflow)
        raise CertificateNotYetValid(
            f"{what}: issued {iso_utc(issued, 'seconds')}, after the verification time "
            f"{iso_utc(at)} (clock skew allowed: {skew})"
        )
    if at >= next_update:
        raise CertificateExpired(
            f"{what}: its next update was due {iso_utc(next_update, 'seconds')}; verification "
            f"time {iso_utc(at)}"
        )
