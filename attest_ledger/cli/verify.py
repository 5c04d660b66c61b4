"""``attest-ledger verify FILE``: verify one piece of evidence of any kind and report the
verdict (exit 0 verified, 1 rejected, 2 usage or I/O error)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attest_ledger.cli.verify_nvidia import (
    ENDORSEMENT_KINDS as NVIDIA_ENDORSEMENT_KINDS,
)
from attest_ledger.cli.verify_nvidia import (
    NVIDIA,
    NvidiaDevice,
    is_json_list,
    nvidia_devices,
    read_rims,
    write_nvidia_claims,
    write_rims,
)
from attest_ledger.cli.verify_tpm import (
    JSON_FORM,
    TpmInput,
    assign_ak_certificate,
    is_json,
    offline_enrolments,
    read_input,
    report_of,
    tpm_input,
    write_tpm_claims,
)
from attest_ledger.display import visible
from attest_ledger.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from attest_ledger.settings import Settings
from verifier import (
    DOCUMENT_TIME,
    AttestationDocument,
    AttestationResult,
    DcapClaims,
    DcapVerifier,
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    NitroVerifier,
    PolicyInvalid,
    PolicyViolation,
    ResultHash,
    SchemePolicy,
    SnpClaims,
    SnpPolicy,
    SnpVerifier,
    TpmPolicy,
    TpmVerifier,
    TrustAnchor,
    UnsafeAcceptAnyPolicy,
    UnsafeAcceptAnySgxPolicy,
    UnsafeAcceptAnySnpPolicy,
    UnsafeAcceptAnyTdxPolicy,
    UnsafeAcceptAnyTpmPolicy,
    UnsafePolicyWarning,
    VerifierError,
    detect_kind,
    endorsements_from_dcap_qvl_json,
    kinds,
    parse_evidence,
    policy_from_json,
)
from verifier.nvidia import NvidiaClaims, NvidiaPolicy, NvidiaVerifier, UnsafeAcceptAnyNvidiaPolicy
from verifier.snp import endorsement_kind_of
from verifier.timefmt import iso_utc
from verifier.tpm import parse_container
from verifier.x509 import CERTIFICATE_PARSE_ERRORS, load_der_certificate

__all__ = ["UsageError", "read_endorsements", "register", "run"]

#: An endorsement file: a certificate or CRL of a few KB, or a PEM bundle of a few; Intel
#: collateral (dcap-qvl JSON) some 20 KB.
_MAX_ENDORSEMENT_FILE = 256 * 1024
_DCAP_KINDS = (EvidenceKind.INTEL_TDX, EvidenceKind.INTEL_SGX)
#: Endorsements that are JSON documents, read as they are (their exact bytes are signed).
_DOCUMENT_KINDS = (EndorsementKind.TCB_INFO, EndorsementKind.QE_IDENTITY)
#: What a TPM quote's endorsements may be named: its AK certificate and intermediates.
_TPM_KINDS = (EndorsementKind.AK_CERTIFICATE, EndorsementKind.CERTIFICATE)
_TPM = EvidenceKind.TPM2_QUOTE
#: The kinds --type offers: a CPU TEE's, and NVIDIA devices' (judged alone here, without
#: the CPU evidence whose challenge their nonce binds).
_CHOICES = (*kinds(), NVIDIA)
Write = Callable[[str], None]


class UsageError(Exception):
    pass


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "verify",
        help="verify attestation evidence (Nitro document, SEV-SNP report, TDX/SGX quote, "
        "TPM 2.0 quote, NVIDIA GPU report)",
        description=(
            "Verify attestation evidence (raw, hex or base64; '-' reads stdin): an AWS Nitro "
            "document (COSE signature, certificate chain to the pinned AWS root), an AMD "
            "SEV-SNP report (its VCEK/VLEK chained to the pinned AMD root of its product "
            "line), an Intel TDX or SGX quote (its PCK chain to the pinned Intel SGX root, "
            "judged with Intel's collateral) or a TPM 2.0 quote (a tpm2-quote/v1 container, "
            "or a vaportpm or trustee JSON sample: the AK's signature, the PCRs, the event "
            "log replayed, and its AK vouched for by a NitroTPM document, a Google AK "
            "certificate or --enrolled-ak) or NVIDIA GPU evidence (NVIDIA's evidence JSON, "
            "every device in it, or one SPDM report with --type nvidia-gpu: the device chain "
            "to the pinned NVIDIA Device Identity CA, the signature, the FWID, the nonce, and "
            "the measurements against the RIMs given), then the policy. Exit 0 verified, 1 "
            "rejected, 2 usage or I/O error."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the evidence, or - for stdin")
    parser.add_argument(
        "--type",
        dest="evidence_type",
        metavar="TYPE",
        choices=[str(k) for k in _CHOICES],
        help=f"the evidence kind ({', '.join(map(str, _CHOICES))}); detected when unambiguous",
    )
    parser.add_argument(
        "--endorsement",
        action="append",
        default=[],
        metavar="[KIND=]FILE",
        help="a certificate or CRL that vouches for the evidence (SEV-SNP: the VCEK or VLEK, "
        "and optionally the ASK/ASVK, ARK, CRL; TDX/SGX: Intel collateral, tcb-info= and "
        "qe-identity= PCS bodies, crl=, certificate=; TPM: the AK certificate, then its "
        "intermediates: the first certificate given is the AK's unless one is named "
        "ak-certificate=; NVIDIA report: its device chain, leaf first, and ocsp= responses), "
        "DER or PEM (several in one PEM file are fine); the kind is "
        "recognised unless given as vcek=, vlek=, ask=, asvk=, ark=, crl=, certificate=, "
        "tcb-info=, qe-identity=, ak-certificate=, device-certificate=, ocsp=. Repeatable. "
        "Nothing is ever fetched from the network.",
    )
    parser.add_argument(
        "--collateral",
        metavar="FILE",
        help="TDX/SGX: Intel collateral as dcap-qvl's QuoteCollateralV3 JSON (TCB info, QE "
        "identity, CRLs, issuer chains), instead of or beside --endorsement",
    )
    parser.add_argument(
        "--at",
        default="now",
        metavar="now|doc|ISO-8601",
        help="verification time: now (default), doc (a Nitro document's own timestamp; "
        "SEV-SNP reports, Intel quotes and TPM quotes have none), or an ISO-8601 instant (UTC "
        "if no offset is given)",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="policy JSON of the evidence's kind (reference images and rules); without it "
        "measurements are not appraised and the verdict is at best 'warning'",
    )
    parser.add_argument("--nonce", metavar="HEX", help="require this nonce")
    parser.add_argument(
        "--result-hash",
        metavar="ALG:HEX",
        help="require the evidence to bind this result hash (Nitro: user_data; SEV-SNP, TDX, "
        "SGX: report_data[32:64]; TPM: the quote's 64-byte extraData[32:64])",
    )
    parser.add_argument(
        "--trust-root",
        metavar="PEM",
        help="trust this root instead of the pinned ones (AWS's, AMD's ARKs, the Intel SGX "
        "Root CA, or Google's AK CA roots for TPM quotes): for the simulated PKI only",
    )
    parser.add_argument(
        "--enrolled-ak",
        action="append",
        default=[],
        metavar="PEM",
        help="TPM: treat this AK (public key, PEM or DER) as enrolled from the beginning of "
        "time, for an offline check of an on-premises quote; the ledger's enrolments are not "
        "consulted. Repeatable.",
    )
    parser.add_argument(
        "--nitro-root",
        metavar="PEM",
        help="TPM: the AWS Nitro root a NitroTPM document must chain to, instead of the pinned "
        "AWS Nitro Enclaves Root-G1",
    )
    parser.add_argument(
        "--rim",
        action="append",
        default=[],
        metavar="FILE",
        help="NVIDIA: a signed RIM (the driver's or the VBIOS's, as NVIDIA publishes it) to "
        "compare the measurements with; for evidence JSON, every device is compared with it. "
        "Repeatable.",
    )
    parser.add_argument(
        "--rim-root",
        metavar="PEM",
        help="NVIDIA: the root RIM signers must chain to, instead of the pinned NVIDIA CoRIM "
        "signing Root CA",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    err: TextIO = sys.stderr
    try:
        evidence = read_input(args.file)
        kind = _kind(args.evidence_type, evidence, args.file, err)
        if kind is NVIDIA:
            return _run_nvidia(args, evidence, err)
        snp = kind is EvidenceKind.AMD_SEV_SNP
        dcap = kind in _DCAP_KINDS
        tpm = kind is _TPM
        at = _parse_at(args.at, kind=kind)
        nonce = _parse_hex(args.nonce, "--nonce")
        result_hash = _parse_result_hash(args.result_hash)
        endorsements = _endorsements(args, kind)
        quote = tpm_input(evidence) if tpm else None
        if quote is not None:
            evidence = quote.container
            endorsements = assign_ak_certificate(endorsements, quote.carried)
        elif endorsements and not (snp or dcap):
            raise UsageError("--endorsement: a Nitro document carries its own certificates")
        policy = _load_policy(args.policy, kind, err)
        anchor = _load_anchor(args.trust_root, kind, err)
        tpm_scheme = _tpm_verifier(anchor, args, err) if tpm else None
        verify = _verifier(kind, anchor, endorsements, tpm_scheme)
    except UsageError as exc:
        print(f"attest-ledger verify: {exc}", file=err)
        return EXIT_USAGE
    except OSError as exc:
        print(f"attest-ledger verify: cannot read {args.file}: {exc.strerror or exc}", file=err)
        return EXIT_USAGE

    result: AttestationResult | None = None
    error: VerifierError | None = None
    try:
        if quote is not None and quote.error is not None:
            raise quote.error  # a JSON sample that does not convert: malformed evidence
        result = verify(evidence, at, policy, nonce, result_hash)
    except PolicyViolation as exc:
        error, result = exc, exc.result
    except VerifierError as exc:
        error = exc

    if args.json:
        _print_json(kind, evidence, result, error, tpm=quote)
    elif tpm_scheme is not None and quote is not None:
        item = Evidence(kind, evidence, endorsements)
        _print_tpm_report(args.file, quote, item, tpm_scheme, at, outcome=(result, error))
    elif dcap:
        _print_dcap_report(args.file, kind, evidence, at, outcome=(result, error))
    elif snp:
        _print_snp_report(args.file, evidence, endorsements, at, outcome=(result, error))
    else:
        _print_report(args.file, evidence, at, result, error)
    return EXIT_REJECTED if error is not None else EXIT_OK


Verify = Callable[[bytes, Any, SchemePolicy, bytes | None, ResultHash | None], AttestationResult]


def _verifier(
    kind: EvidenceKind,
    anchor: TrustAnchor | None,
    endorsements: tuple[Endorsement, ...],
    tpm: TpmVerifier | None = None,
) -> Verify:
    """The scheme's verification as one call; raises UsageError for an unusable root."""
    try:
        if kind is EvidenceKind.AMD_SEV_SNP or kind in _DCAP_KINDS or tpm is not None:
            anchors = None if anchor is None else [anchor]
            scheme: SnpVerifier | DcapVerifier | TpmVerifier = (
                tpm
                if tpm is not None
                else SnpVerifier(trust_anchors=anchors)
                if kind is EvidenceKind.AMD_SEV_SNP
                else DcapVerifier(trust_anchors=anchors)
            )

            def verify_with_endorsements(
                data: bytes,
                at: Any,
                policy: SchemePolicy,
                nonce: bytes | None,
                result_hash: ResultHash | None,
            ) -> AttestationResult:
                item = Evidence(kind, data, endorsements)
                return scheme.verify(
                    item, at=at, policy=policy, nonce=nonce, result_hash=result_hash
                )

            return verify_with_endorsements
        nitro = NitroVerifier(trust_anchor=anchor)
    except ValueError as exc:
        raise UsageError(f"--trust-root: {exc}") from None

    def verify_nitro(
        data: bytes,
        at: Any,
        policy: SchemePolicy,
        nonce: bytes | None,
        result_hash: ResultHash | None,
    ) -> AttestationResult:
        return nitro.verify(data, at=at, policy=policy, nonce=nonce, result_hash=result_hash)

    return verify_nitro


def _endorsements(args: argparse.Namespace, kind: EvidenceKind) -> tuple[Endorsement, ...]:
    """The endorsements of --endorsement and --collateral (--rim: NVIDIA's, read apart);
    refuses the options of another kind."""
    if kind is not _TPM and (args.enrolled_ak or args.nitro_root):
        raise UsageError("--enrolled-ak and --nitro-root are for TPM quotes (tpm2-quote)")
    if kind is not NVIDIA and (args.rim or args.rim_root):
        raise UsageError("--rim and --rim-root are for NVIDIA GPU reports (nvidia-gpu)")
    endorsements = tuple(e for spec in args.endorsement for e in read_endorsements(spec, kind=kind))
    if args.collateral is not None:
        if kind not in _DCAP_KINDS:
            raise UsageError("--collateral: Intel collateral is for TDX and SGX quotes")
        endorsements += _read_collateral(args.collateral)
    return endorsements


def _tpm_verifier(anchor: TrustAnchor | None, args: argparse.Namespace, err: TextIO) -> TpmVerifier:
    """The TPM scheme with the roots and offline enrolments the options give."""
    try:
        enrolments = offline_enrolments(args.enrolled_ak)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if enrolments is not None:
        print(
            f"attest-ledger verify: --enrolled-ak: {len(args.enrolled_ak)} AK(s) treated as "
            "enrolled from the beginning of time (an offline check: the ledger's enrolments "
            "and revocations are not consulted)",
            file=err,
        )
    nitro_anchor = None
    if args.nitro_root is not None:
        nitro_anchor = _read_anchor(args.nitro_root, "Nitro root")
        print(
            f"attest-ledger verify: trusting {args.nitro_root} (SHA-256 "
            f"{nitro_anchor.fingerprint}) instead of the AWS Nitro root for NitroTPM documents",
            file=err,
        )
    try:
        return TpmVerifier(
            trust_anchors=None if anchor is None else [anchor],
            nitro_anchor=nitro_anchor,
            enrolments=enrolments,
        )
    except ValueError as exc:
        option = "--nitro-root" if "Nitro" in str(exc) else "--trust-root"
        raise UsageError(f"{option}: {exc}") from None


# --- options ---------------------------------------------------------------------------------


def _kind(given: str | None, evidence: bytes, name: str, err: TextIO) -> EvidenceKind:
    if given is not None:
        return EvidenceKind(given)
    detected = detect_kind(evidence)
    if detected is not None:
        return detected
    if is_json(evidence):  # a JSON object: the TPM samples of other verifiers
        return _TPM
    if is_json_list(evidence):  # a JSON list: NVIDIA's evidence, one object per device
        return NVIDIA
    print(
        f"attest-ledger verify: cannot tell what kind of evidence {name} is; verifying it as "
        f"{EvidenceKind.AWS_NITRO_ENCLAVE} (give --type to choose)",
        file=err,
    )
    return EvidenceKind.AWS_NITRO_ENCLAVE


def _load_policy(path: str | None, kind: EvidenceKind, err: TextIO) -> SchemePolicy:
    if path is None:
        print(
            "attest-ledger verify: no --policy given: measurements are not checked against "
            "reference values (unsafe accept-any policy); the verdict is at best 'warning'",
            file=err,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            if kind is EvidenceKind.AMD_SEV_SNP:
                return UnsafeAcceptAnySnpPolicy()
            if kind is EvidenceKind.INTEL_TDX:
                return UnsafeAcceptAnyTdxPolicy()
            if kind is EvidenceKind.INTEL_SGX:
                return UnsafeAcceptAnySgxPolicy()
            if kind is _TPM:
                return UnsafeAcceptAnyTpmPolicy()
            if kind is NVIDIA:
                return UnsafeAcceptAnyNvidiaPolicy()
            return UnsafeAcceptAnyPolicy(evidence_kind=kind)
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read policy {path}: {exc.strerror or exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            policy = policy_from_json(text)
    except PolicyInvalid as exc:
        raise UsageError(f"invalid policy {path}: {exc.message}") from None
    snp_policy = isinstance(policy, SnpPolicy)
    dcap_mismatch = (kind in _DCAP_KINDS or policy.evidence_kind in _DCAP_KINDS) and (
        policy.evidence_kind is not kind
    )
    tpm_mismatch = isinstance(policy, TpmPolicy) != (kind is _TPM)
    nvidia_mismatch = isinstance(policy, NvidiaPolicy) != (kind is NVIDIA)
    if (
        snp_policy != (kind is EvidenceKind.AMD_SEV_SNP)
        or dcap_mismatch
        or tpm_mismatch
        or nvidia_mismatch
    ):
        raise UsageError(
            f"policy {path} judges {policy.evidence_kind} evidence; this evidence is {kind}"
        )
    if policy.accepts_any_measurement:
        print(f"attest-ledger verify: policy {path} accepts any measurement (unsafe)", file=err)
    return policy


def _read_anchor(path: str, what: str) -> TrustAnchor:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return TrustAnchor.from_pem(pem, name=f"explicit {what} {Path(path).name}")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _load_anchor(path: str | None, kind: EvidenceKind, err: TextIO) -> TrustAnchor | None:
    if path is None:
        return None
    anchor = _read_anchor(path, "trust root")
    pinned = (
        "AMD roots"
        if kind is EvidenceKind.AMD_SEV_SNP
        else "Intel SGX Root CA"
        if kind in _DCAP_KINDS
        else "Google AK CA roots"
        if kind is _TPM
        else "NVIDIA Device Identity CA"
        if kind is NVIDIA
        else "AWS Nitro root"
    )
    print(
        f"attest-ledger verify: trusting {path} (SHA-256 {anchor.fingerprint}) "
        f"instead of the {pinned}",
        file=err,
    )
    return anchor


def _read_collateral(path: str) -> tuple[Endorsement, ...]:
    """Intel collateral in dcap-qvl's ``QuoteCollateralV3`` JSON, as endorsements."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(_MAX_ENDORSEMENT_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read collateral {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_ENDORSEMENT_FILE:
        raise UsageError(f"collateral {path}: larger than {_MAX_ENDORSEMENT_FILE} bytes")
    try:
        return endorsements_from_dcap_qvl_json(data)
    except VerifierError as exc:
        raise UsageError(f"collateral {path}: {exc.message}") from None


def read_endorsements(spec: str, *, kind: EvidenceKind) -> list[Endorsement]:
    """``[KIND=]FILE``: every certificate and CRL in a DER or PEM file, or one Intel
    collateral document (``tcb-info=``, ``qe-identity=``), read as it is. A TPM quote's are
    certificates only (which is the AK's: :func:`assign_ak_certificate`)."""
    dcap = kind in _DCAP_KINDS
    kind_text, sep, path = spec.partition("=")
    given: EndorsementKind | None = None
    if sep and kind_text in {k.value for k in EndorsementKind}:
        given = EndorsementKind(kind_text)
    else:
        path = spec
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(_MAX_ENDORSEMENT_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read endorsement {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_ENDORSEMENT_FILE:
        raise UsageError(f"endorsement {path}: larger than {_MAX_ENDORSEMENT_FILE} bytes")
    if given in _DOCUMENT_KINDS:
        return [Endorsement(given, data)]
    ders = _pem_blocks(data) if b"-----BEGIN" in data else [data]
    if not ders:
        raise UsageError(f"endorsement {path}: no certificate or CRL in it")
    if given is not None and len(ders) != 1:
        raise UsageError(f"endorsement {path}: {len(ders)} certificates in it; a kind= names one")
    if kind is _TPM:
        return [_tpm_endorsement(given, der, path) for der in ders]
    if kind is NVIDIA:
        return [_nvidia_endorsement(given, der, path) for der in ders]
    out = []
    for der in ders:
        found = given or (_dcap_kind_of(der) if dcap else endorsement_kind_of(der))
        if found is None:
            raise UsageError(
                f"endorsement {path}: not an AMD certificate or CRL this command recognises; "
                "name its kind (vcek=, vlek=, ask=, asvk=, ark=, crl=)"
            )
        out.append(Endorsement(found, der))
    return out


def _tpm_endorsement(given: EndorsementKind | None, der: bytes, path: str) -> Endorsement:
    if given is not None and given not in _TPM_KINDS:
        raise UsageError(
            f"endorsement {path}: a TPM quote's endorsements are its AK certificate "
            f"(ak-certificate=) and intermediates (certificate=), not {given}"
        )
    try:
        load_der_certificate(der)
    except CERTIFICATE_PARSE_ERRORS:
        raise UsageError(
            f"endorsement {path}: not a certificate (a TPM quote's endorsements are its AK "
            "certificate and intermediates)"
        ) from None
    return Endorsement(given or EndorsementKind.CERTIFICATE, der)


def _nvidia_endorsement(given: EndorsementKind | None, der: bytes, path: str) -> Endorsement:
    if given is not None and given not in NVIDIA_ENDORSEMENT_KINDS:
        raise UsageError(
            f"endorsement {path}: an NVIDIA report's endorsements are its device chain "
            f"(device-certificate=) and OCSP responses (ocsp=), not {given}; RIMs: --rim"
        )
    if given is EndorsementKind.OCSP:
        return Endorsement(given, der)
    try:
        load_der_certificate(der)
    except CERTIFICATE_PARSE_ERRORS:
        raise UsageError(
            f"endorsement {path}: not a certificate (an NVIDIA report's device chain, leaf "
            "first, as PEM or DER)"
        ) from None
    return Endorsement(EndorsementKind.DEVICE_CERTIFICATE, der)


def _dcap_kind_of(der: bytes) -> EndorsementKind | None:
    """An unlabelled Intel endorsement: a CRL, or a certificate (roots are never
    endorsements: they are pinned or given with --trust-root)."""
    try:
        certificate = load_der_certificate(der)
    except CERTIFICATE_PARSE_ERRORS:
        try:
            x509.load_der_x509_crl(der)
        except ValueError:
            return None
        return EndorsementKind.CRL
    return None if certificate.issuer == certificate.subject else EndorsementKind.CERTIFICATE


def _pem_blocks(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    with contextlib.suppress(ValueError):  # no certificate in it: perhaps only CRLs
        out.extend(c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(data))
    if b"-----BEGIN X509 CRL-----" in data:
        for block in data.split(b"-----BEGIN X509 CRL-----")[1:]:
            pem = b"-----BEGIN X509 CRL-----" + block.split(b"-----END X509 CRL-----")[0]
            try:
                crl = x509.load_pem_x509_crl(pem + b"-----END X509 CRL-----\n")
            except ValueError as exc:
                raise UsageError(f"a CRL in an endorsement file does not parse: {exc}") from None
            out.append(crl.public_bytes(Encoding.DER))
    return out


def _parse_at(text: str, *, kind: EvidenceKind) -> Any:
    if text == "now":
        return datetime.now(UTC)
    if text == "doc":
        if kind is EvidenceKind.AMD_SEV_SNP or kind in _DCAP_KINDS or kind in (_TPM, NVIDIA):
            what = (
                "an SEV-SNP report"
                if kind is EvidenceKind.AMD_SEV_SNP
                else "a TPM quote (its clock counts from the TPM's reset)"
                if kind is _TPM
                else "an NVIDIA report"
                if kind is NVIDIA
                else "an Intel quote"
            )
            raise UsageError(
                f"--at doc: {what} carries no time of its own; give now or an ISO-8601 "
                "instant (for archived evidence: when it was judged)"
            )
        return DOCUMENT_TIME
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--at: expected now, doc or an ISO-8601 instant, found {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_hex(text: str | None, option: str) -> bytes | None:
    if text is None:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{option}: expected hexadecimal") from None


def _parse_result_hash(text: str | None) -> ResultHash | None:
    if text is None:
        return None
    try:
        return ResultHash.parse(text)
    except ValueError as exc:
        raise UsageError(f"--result-hash: {exc}") from None


# --- output ----------------------------------------------------------------------------------


def _print_json(
    kind: EvidenceKind,
    evidence: bytes,
    result: AttestationResult | None,
    error: VerifierError | None,
    *,
    tpm: TpmInput | None = None,
) -> None:
    out: dict[str, object] = {
        "verified": error is None,
        "evidence_kind": str(kind),
        "status": str(result.status) if result is not None else "contraindicated",
        "evidence_sha256": hashlib.sha256(evidence).hexdigest(),
        "error": error.to_dict() if error is not None else None,
        "result": result.to_ear() if result is not None else None,
    }
    if tpm is not None:  # what was read, when it is not the container judged
        out["input"] = "json-sample" if tpm.from_json else "tpm2-quote/v1"
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _writer() -> Write:
    def write(line: str) -> None:  # evidence text cannot hide characters or act on a terminal
        sys.stdout.write(visible(line))

    return write


def _write_verdict(
    result: AttestationResult | None, error: VerifierError | None, write: Write
) -> None:
    write("\n")
    if error is None:
        status = result.status if result is not None else "unknown"
        write(f"Verdict  VERIFIED ({status})\n")
    else:
        write(f"Verdict  REJECTED [{error.code}]\n")
        if isinstance(error, PolicyViolation):
            for violation in error.violations:
                write(f"  - [{violation.code}] {violation.message}\n")
        else:
            write(f"  {error.message}\n")
    if result is not None:
        write(f"  policy       {result.policy.policy_id}\n")
        if result.matched_reference:
            write(f"  image        {result.matched_reference}\n")
        write(f"  trust anchor {result.trust_anchor_name} (SHA-256 {result.trust_anchor_sha256})\n")
        for note in result.notes:
            write(f"  note: {note}\n")


def _print_report(
    name: str,
    evidence: bytes,
    at: Any,
    result: AttestationResult | None,
    error: VerifierError | None,
) -> None:
    write = _writer()
    document = result.document if result is not None else error.document if error else None
    write(f"Attestation evidence  {name}\n")
    write(f"  size         {len(evidence)} bytes, SHA-256 {hashlib.sha256(evidence).hexdigest()}\n")
    if document is not None:
        _write_document(document, result, write)
        _write_chain(document, result, at, write)
    _write_verdict(result, error, write)


def _write_document(
    document: AttestationDocument, result: AttestationResult | None, write: Write
) -> None:
    write(f"  kind         {document.kind}\n")
    write(f"  module_id    {document.module_id!r}\n")
    write(f"  timestamp    {iso_utc(document.timestamp)}\n")
    write(f"  digest       {document.digest}\n")
    for field in ("public_key", "user_data", "nonce"):
        value: bytes | None = getattr(document, field)
        shown = (
            "(absent)"
            if value is None
            else "0 bytes (present, empty)"
            if not value
            else f"{len(value)} bytes  {_clip(value.hex())}"
        )
        write(f"  {field:<12} {shown}\n")
    write("\nPCRs\n")
    appraisals = {p.index: p for p in result.pcr_appraisals} if result is not None else {}
    for index, value in document.pcrs.items():
        appraisal = appraisals.get(index)
        if result is not None and result.policy.accepts_any_measurement:
            verdict = "not appraised"
        elif appraisal is None or not appraisal.referenced:
            verdict = "" if appraisal is None else "not referenced"
        elif appraisal.matched_images:
            verdict = "matches " + ", ".join(appraisal.matched_images)
        else:
            verdict = "MISMATCH"
        write(f"  {index:>2}  {value.hex()}  {verdict}\n".rstrip() + "\n")


def _write_chain(
    document: AttestationDocument, result: AttestationResult | None, at: Any, write: Write
) -> None:
    moment = document.timestamp if at is DOCUMENT_TIME else at
    basis = "the document's own timestamp" if at is DOCUMENT_TIME else "the given time"
    rows = (
        [(c.position, c.subject, c.not_before, c.not_after) for c in result.certificates]
        if result is not None
        else _unverified_rows(
            [(f"cabundle[{i}]", der) for i, der in enumerate(document.cabundle)]
            + [("certificate", document.certificate)]
        )
    )
    _write_rows(rows, moment, basis, verified=result is not None, write=write)


def _write_rows(
    rows: list[tuple[str, str, datetime, datetime]],
    moment: datetime,
    basis: str,
    *,
    verified: bool,
    write: Write,
) -> None:
    write(f"\nCertificate chain  (judged at {iso_utc(moment)}, {basis})")
    write("\n" if verified else "  UNVERIFIED\n")
    width = max([13, *(len(row[0]) for row in rows)])  # a TPM AK chain's "intermediate[0]"
    for position, subject, not_before, not_after in rows:
        state = "valid" if not_before <= moment <= not_after else "OUTSIDE"
        write(
            f"  {position:<{width}} {iso_utc(not_before, 'seconds')} .. "
            f"{iso_utc(not_after, 'seconds')}"
            f"  {state:<7}  {subject}\n"
        )


def _unverified_rows(named: list[tuple[str, bytes]]) -> list[tuple[str, str, datetime, datetime]]:
    rows = []
    for position, der in named:
        try:
            cert = load_der_certificate(der, allow_zero_serial=True)
            rows.append(
                (
                    position,
                    cert.subject.rfc4514_string(),
                    cert.not_valid_before_utc,
                    cert.not_valid_after_utc,
                )
            )
        except CERTIFICATE_PARSE_ERRORS:
            continue
    return rows


# --- the SEV-SNP report ----------------------------------------------------------------------


def _print_snp_report(
    name: str,
    evidence: bytes,
    endorsements: tuple[Endorsement, ...],
    at: datetime,
    *,
    outcome: tuple[AttestationResult | None, VerifierError | None],
) -> None:
    result, error = outcome
    write = _writer()
    claims = result.claims if result is not None else error.claims if error else None
    write(f"Attestation evidence  {name}\n")
    write(f"  {'kind':<18} {EvidenceKind.AMD_SEV_SNP}\n")
    digest = hashlib.sha256(evidence).hexdigest()
    write(f"  {'size':<18} {len(evidence)} bytes, SHA-256 {digest}\n")
    if isinstance(claims, SnpClaims):
        _write_snp_fields(claims, result, write)
        _write_snp_policy_bits(claims, write)
        _write_snp_tcb(claims, result, write)
    if result is not None:
        rows = [(c.position, c.subject, c.not_before, c.not_after) for c in result.certificates]
    else:
        rows = _unverified_rows(
            [(str(e.kind), e.data) for e in endorsements if e.kind is not EndorsementKind.CRL]
        )
    if rows:
        _write_rows(rows, at, "the given time", verified=result is not None, write=write)
    if result is not None and result.endorsements:
        write("\nEndorsements\n")
        for used in result.endorsements:
            write(f"  {used.kind:<5} {used.sha256}  {used.origin:<10}  {used.subject}\n")
    _write_verdict(result, error, write)


def _write_snp_fields(claims: SnpClaims, result: AttestationResult | None, write: Write) -> None:
    report = claims.report

    def field(label: str, value: str) -> None:
        write(f"  {label:<18} {value}".rstrip() + "\n")

    product = "unknown (a version 2 report names no CPUID; give its VCEK)"
    if claims.product is not None:
        source = "CPUID" if report.cpuid is not None else "the key's productName"
        product = f"{claims.product} (from {source})"
    field("version", str(report.version))
    field("product", product)
    if report.cpuid is not None:
        family, model, stepping = report.cpuid
        field("cpuid", f"family 0x{family:02x} model 0x{model:02x} stepping {stepping}")
    signer = report.signing_key.name
    if claims.vek is not None and claims.vek.csp_id is not None:
        signer += f" of {claims.vek.csp_id}"
    field("signed by", signer)
    field("vmpl", "host (0xFFFFFFFF)" if report.host_requested else str(report.vmpl))
    field("guest_svn", str(report.guest_svn))
    measured = ""
    if result is not None:
        measured = (
            "not appraised"
            if result.policy.accepts_any_measurement
            else f"matches {result.matched_reference}"
            if result.matched_reference
            else "MISMATCH"
        )
    field("measurement", f"{report.measurement.hex()}  {measured}")
    for name in ("host_data", "id_key_digest", "author_key_digest", "family_id", "image_id"):
        value: bytes = getattr(report, name)
        field(name, value.hex())
    field("author_key_en", "yes" if report.author_key_en else "no")
    field("report_data", report.report_data.hex())
    field("report_id", report.report_id.hex())
    field("chip_id", report.chip_id.hex())
    firmware = ".".join(map(str, report.current_version))
    committed = ".".join(map(str, report.committed_version))
    field("firmware", f"{firmware} (committed {committed})")


def _write_snp_policy_bits(claims: SnpClaims, write: Write) -> None:
    bits = claims.report.policy.to_dict()
    write(
        f"\nGuest policy  {bits['raw']}  (ABI {bits['abi_major']}.{bits['abi_minor']} or later)\n"
    )
    for key, value in bits.items():
        if isinstance(value, bool):
            write(f"  {key:<18} {'yes' if value else 'no'}\n")


def _write_snp_tcb(claims: SnpClaims, result: AttestationResult | None, write: Write) -> None:
    tcbs = [claims.reported_tcb, claims.current_tcb, claims.committed_tcb, claims.launch_tcb]
    write("\nTCB  (reported: what the VCEK/VLEK certifies)\n")
    policy = result.policy if result is not None else None
    minimum = policy.min_tcb if isinstance(policy, SnpPolicy) else {}
    if any(t is None for t in tcbs) or claims.product is None:
        report = claims.report
        for label, raw in (
            ("reported", report.reported_tcb),
            ("current", report.current_tcb),
            ("committed", report.committed_tcb),
            ("launch", report.launch_tcb),
        ):
            write(f"  {label:<10} {raw.hex()} (product line unknown: not decoded)\n")
        return
    write(
        f"  {'component':<11}{'reported':>9}{'current':>9}{'committed':>11}{'launch':>8}  minimum\n"
    )
    for component in claims.product.components:
        values = [t.components[component] for t in tcbs if t is not None]
        floor = minimum.get(component)
        write(
            f"  {component:<11}{values[0]:>9}{values[1]:>9}{values[2]:>11}{values[3]:>8}  "
            f"{'-' if floor is None else floor}\n"
        )


# --- the Intel TDX or SGX quote --------------------------------------------------------------


def _print_dcap_report(
    name: str,
    kind: EvidenceKind,
    evidence: bytes,
    at: datetime,
    *,
    outcome: tuple[AttestationResult | None, VerifierError | None],
) -> None:
    result, error = outcome
    write = _writer()
    claims = result.claims if result is not None else error.claims if error else None
    write(f"Attestation evidence  {name}\n")
    write(f"  {'kind':<18} {kind}\n")
    digest = hashlib.sha256(evidence).hexdigest()
    write(f"  {'size':<18} {len(evidence)} bytes, SHA-256 {digest}\n")
    if isinstance(claims, DcapClaims):
        _write_dcap_fields(claims, result, write)
        _write_dcap_tcb(claims, write)
    if result is not None:
        rows = [(c.position, c.subject, c.not_before, c.not_after) for c in result.certificates]
        _write_rows(rows, at, "the given time", verified=True, write=write)
        write("\nCollateral and certificates used\n")
        for used in result.endorsements:
            write(f"  {used.kind:<12} {used.sha256}  {used.origin:<10}  {used.subject}\n")
    _write_verdict(result, error, write)


def _write_dcap_fields(claims: DcapClaims, result: AttestationResult | None, write: Write) -> None:
    def field(label: str, value: object) -> None:
        write(f"  {label:<18} {value}".rstrip() + "\n")

    data = claims.to_dict()
    header = data["header"]
    assert isinstance(header, dict)  # noqa: S101 - DcapClaims.to_dict's shape
    field("quote version", header["version"])
    if claims.quote.padding:
        field("padding", f"{claims.quote.padding} zero bytes after the quote (not signed)")
    measured = ""
    if result is not None:
        measured = (
            "not appraised"
            if result.policy.accepts_any_measurement
            else f"matches {result.matched_reference}"
            if result.matched_reference
            else "MISMATCH"
        )
    body = data.get("td_report") or data.get("enclave_report")
    assert isinstance(body, dict)  # noqa: S101 - as above
    if "mr_td" in body:
        field("tdx", body["tdx_version"])
        field("mr_td", f"{body['mr_td']}  {measured}")
        for key in ("rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_config_id", "mr_owner"):
            field(key, body[key])
        field("mr_owner_config", body["mr_owner_config"])
        field("mr_seam", body["mr_seam"])
        field("tee_tcb_svn", body["tee_tcb_svn"])
        field("td_attributes", body["td_attributes"])
        field("xfam", body["xfam"])
    else:
        field("mr_enclave", f"{body['mr_enclave']}  {measured}")
        field("mr_signer", body["mr_signer"])
        field("isv_prod_id", body["isv_prod_id"])
        field("isv_svn", body["isv_svn"])
        field("attributes", body["attributes"])
    field("debug", "yes" if claims.debug else "no")
    field("report_data", body["report_data"])
    if claims.pck is not None:
        field("fmspc", claims.pck.fmspc.hex().upper())
        field("pce_svn", claims.pck.pce_svn)
        field("sgx tcb", " ".join(str(c) for c in claims.pck.tcb_components))


def _write_dcap_tcb(claims: DcapClaims, write: Write) -> None:
    if claims.tcb is None or claims.tcb_info is None:
        return
    tcb = claims.tcb
    write("\nTCB  (Intel collateral of the day)\n")
    write(f"  {'status':<18} {tcb.status}\n")
    advisories = ", ".join(tcb.advisory_ids) or "none"
    write(f"  {'advisories':<18} {advisories}\n")
    write(
        f"  {'matched level':<18} {tcb.platform_status}, tcbDate {tcb.platform_level.tcb_date}, "
        f"evaluation data number {claims.tcb_info.tcb_evaluation_data_number}\n"
    )
    write(f"  {'qe identity':<18} {tcb.qe_level.tcb_status} (ISVSVN {tcb.qe_level.isv_svn})\n")
    if tcb.tdx_module_level is not None:
        write(f"  {'tdx module':<18} {tcb.tdx_module_id} {tcb.tdx_module_level.tcb_status}\n")
    write(
        f"  {'tcb info':<18} issued {iso_utc(claims.tcb_info.issue_date, 'seconds')}, next "
        f"update {iso_utc(claims.tcb_info.next_update, 'seconds')}\n"
    )


def _clip(text: str, width: int = 64) -> str:
    return text if len(text) <= width else text[:width] + "..."


# --- the TPM 2.0 quote -----------------------------------------------------------------------


def _print_tpm_report(
    name: str,
    quote: TpmInput,
    evidence: Evidence,
    scheme: TpmVerifier,
    at: datetime,
    *,
    outcome: tuple[AttestationResult | None, VerifierError | None],
) -> None:
    result, error = outcome
    write = _writer()
    write(f"Attestation evidence  {name}\n")
    write(f"  {'kind':<18} {_TPM}\n")
    if quote.from_json:
        write(f"  {'input':<18} {JSON_FORM}\n")
    digest = hashlib.sha256(evidence.data).hexdigest()
    write(f"  {'size':<18} {len(evidence.data)} bytes, SHA-256 {digest}\n")
    report = report_of(scheme, evidence, result, error) if quote.error is None else None
    if report is not None:
        write_tpm_claims(report, write)
    if result is not None:
        rows = [(c.position, c.subject, c.not_before, c.not_after) for c in result.certificates]
    else:
        rows = _unverified_rows(
            [(str(e.kind), e.data) for e in evidence.endorsements]
            + _nitro_document_certificates(evidence.data)
        )
    if rows:
        _write_rows(rows, at, "the given time", verified=result is not None, write=write)
    _write_verdict(result, error, write)


def _nitro_document_certificates(container: bytes) -> list[tuple[str, bytes]]:
    """The certificates of a NitroTPM document in the container, for display (unverified)."""
    try:
        document = parse_evidence(parse_container(container).nitro_document or b"")[1]
    except VerifierError:
        return []
    return [(f"cabundle[{i}]", der) for i, der in enumerate(document.cabundle)] + [
        ("certificate", document.certificate)
    ]


# --- NVIDIA GPU evidence ---------------------------------------------------------------------

Outcome = tuple[AttestationResult | None, VerifierError | None]


def _run_nvidia(args: argparse.Namespace, data: bytes, err: TextIO) -> int:
    """Every device of NVIDIA's evidence JSON, or the one report given, verified in turn:
    one verdict per device, exit 0 only if all pass."""
    if args.collateral is not None or args.enrolled_ak or args.nitro_root:
        raise UsageError("--collateral, --enrolled-ak and --nitro-root are not for NVIDIA reports")
    if args.result_hash is not None:
        raise UsageError(
            "--result-hash: a GPU report binds the result only through its nonce: give "
            "--nonce (gpu_nonce of the CPU evidence's challenge, the result and the GPU's index)"
        )
    at = _parse_at(args.at, kind=NVIDIA)
    nonce = _parse_hex(args.nonce, "--nonce")
    endorsements = _endorsements(args, NVIDIA)
    try:
        rims = read_rims(args.rim)
        devices, unreadable = nvidia_devices(data, endorsements=endorsements, nonce=nonce)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    policy = _load_policy(args.policy, NVIDIA, err)
    anchor = _load_anchor(args.trust_root, NVIDIA, err)
    rim_anchor = None
    if args.rim_root is not None:
        rim_anchor = _read_anchor(args.rim_root, "RIM root")
        print(
            f"attest-ledger verify: trusting {args.rim_root} (SHA-256 {rim_anchor.fingerprint}) "
            "instead of the NVIDIA CoRIM signing Root CA for RIM signers",
            file=err,
        )
    try:
        scheme = NvidiaVerifier(
            trust_anchors=None if anchor is None else [anchor],
            rim_anchors=None if rim_anchor is None else [rim_anchor],
        )
    except ValueError as exc:
        raise UsageError(f"--trust-root: {exc}") from None

    outcomes: list[tuple[NvidiaDevice | None, Outcome]] = []
    if unreadable is not None:
        outcomes.append((None, (None, unreadable)))
    for device in devices:
        item = Evidence(NVIDIA, device.report, (*device.endorsements, *rims))
        result: AttestationResult | None = None
        error: VerifierError | None = None
        try:
            result = scheme.verify(item, at=at, policy=policy, nonce=device.nonce)
        except PolicyViolation as exc:
            error, result = exc, exc.result
        except VerifierError as exc:
            error = exc
        outcomes.append((device, (result, error)))

    if args.json:
        _print_nvidia_json(data, outcomes, from_json=is_json_list(data))
    else:
        for number, (judged, outcome) in enumerate(outcomes):
            if number:
                _writer()("\n" + "-" * 78 + "\n\n")
            _print_nvidia_report(
                args.file, data, judged, count=len(outcomes), rims=rims, at=at, outcome=outcome
            )
    return EXIT_REJECTED if any(error is not None for _, (_, error) in outcomes) else EXIT_OK


def _print_nvidia_json(
    data: bytes,
    outcomes: list[tuple[NvidiaDevice | None, Outcome]],
    *,
    from_json: bool,
) -> None:
    devices = []
    for judged, (result, error) in outcomes:
        report = judged.report if judged is not None else data
        devices.append(
            {
                "index": judged.index if judged is not None else None,
                "arch_claimed": judged.claimed_arch if judged is not None else None,
                "nonce_source": judged.nonce_source if judged is not None else None,
                "verified": error is None,
                "status": str(result.status) if result is not None else "contraindicated",
                "evidence_sha256": hashlib.sha256(report).hexdigest(),
                "error": error.to_dict() if error is not None else None,
                "result": result.to_ear() if result is not None else None,
            }
        )
    out = {
        "verified": all(d["verified"] for d in devices),
        "evidence_kind": str(NVIDIA),
        "input": "nvidia-evidence-json" if from_json else "spdm-report",
        "devices": devices,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _print_nvidia_report(
    name: str,
    data: bytes,
    device: NvidiaDevice | None,
    *,
    count: int,
    rims: tuple[Endorsement, ...],
    at: datetime,
    outcome: Outcome,
) -> None:
    result, error = outcome
    write = _writer()
    claims = result.claims if result is not None else error.claims if error else None
    report = device.report if device is not None else data
    write(f"Attestation evidence  {name}\n")
    write(f"  {'kind':<18} {NVIDIA}\n")
    if device is not None and device.claimed_arch is not None:
        write(
            f"  {'input':<18} NVIDIA evidence JSON, device {device.index} of {count} "
            f"(arch {device.claimed_arch!r}, as the JSON says)\n"
        )
    digest = hashlib.sha256(report).hexdigest()
    write(f"  {'size':<18} {len(report)} bytes, SHA-256 {digest}\n")
    nvidia = claims if isinstance(claims, NvidiaClaims) else None
    if nvidia is not None and device is not None:
        write_nvidia_claims(nvidia, device, result=result, error=error, write=write)
    if result is not None:
        rows = [(c.position, c.subject, c.not_before, c.not_after) for c in result.certificates]
    else:
        chain = device.endorsements if device is not None else ()
        rows = _unverified_rows(
            [
                (f"device[{i}]", e.data)
                for i, e in enumerate(chain)
                if e.kind is EndorsementKind.DEVICE_CERTIFICATE
            ]
        )
    if rows:
        _write_rows(rows, at, "the given time", verified=result is not None, write=write)
    if device is not None:
        write_rims(rims, nvidia, at, write)
    _write_verdict(result, error, write)
