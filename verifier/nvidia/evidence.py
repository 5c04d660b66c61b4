"""NVIDIA's evidence JSON (nvtrust, the attestation SDK and Veraison write it) read into
what the scheme takes: a list, one object per device, ::

    [{"arch": "HOPPER", "certificate": "<base64 of the PEM chain, leaf first>",
      "evidence": "<base64 of the SPDM report>", "nonce": "<64 hex>"}, ...]

Other keys (the PPCIe variant's ``version``, ``driver_version``, ``vbios_version``) are
ignored: they are the host's word, not the device's. ``arch`` and ``nonce`` are returned as
given, for the caller to compare: the scheme tells the arch from the verified leaf, and the
nonce it checks is the one the caller expects, never the one the JSON claims.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.errors import EvidenceTooLarge, MalformedEvidence
from verifier.nvidia.report import MAX_REPORT_BYTES
from verifier.scheme import Endorsement, EndorsementKind

__all__ = ["MAX_DEVICES", "MAX_JSON_BYTES", "from_json"]

MAX_DEVICES = 16
MAX_JSON_BYTES = 1024 * 1024
_MAX_CERTIFICATES = 8


def from_json(
    text: str | bytes,
) -> list[tuple[bytes, tuple[Endorsement, ...], str, bytes]]:
    """(report, device-certificate endorsements leaf first, arch, nonce) per device.
    Raises MalformedEvidence or EvidenceTooLarge."""
    if len(text) > MAX_JSON_BYTES:
        raise EvidenceTooLarge(f"nvidia evidence JSON: more than {MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedEvidence("nvidia evidence JSON: not valid JSON") from None
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_DEVICES:
        raise MalformedEvidence(
            f"nvidia evidence JSON: expected a list of 1 to {MAX_DEVICES} device objects"
        )
    out = []
    for i, item in enumerate(data):
        where = f"nvidia evidence JSON [{i}]"
        if not isinstance(item, dict):
            raise MalformedEvidence(f"{where}: expected an object")
        fields = {k: item.get(k) for k in ("arch", "certificate", "evidence", "nonce")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise MalformedEvidence(
                f"{where}: 'arch', 'certificate', 'evidence' and 'nonce' must be strings"
            )
        arch, certificate, evidence, nonce_hex = (str(v) for v in fields.values())
        report = _b64(evidence, f"{where} evidence")
        if len(report) > MAX_REPORT_BYTES:
            raise EvidenceTooLarge(f"{where}: the report is {len(report)} bytes")
        pem = _b64(certificate, f"{where} certificate")
        try:
            certificates = x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise MalformedEvidence(f"{where}: certificate is not a PEM chain") from None
        if not 1 <= len(certificates) <= _MAX_CERTIFICATES:
            raise MalformedEvidence(f"{where}: {len(certificates)} certificates")
        try:
            nonce = bytes.fromhex(nonce_hex)
        except ValueError:
            raise MalformedEvidence(f"{where}: nonce is not hex") from None
        if len(nonce) != 32:
            raise MalformedEvidence(f"{where}: nonce is {len(nonce)} bytes, expected 32")
        endorsements = tuple(
            Endorsement(EndorsementKind.DEVICE_CERTIFICATE, c.public_bytes(Encoding.DER))
            for c in certificates
        )
        out.append((report, endorsements, arch[:20], nonce))
    return out


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedEvidence(f"{what}: not base64") from None
