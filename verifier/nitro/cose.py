"""The COSE_Sign1 envelope of a Nitro attestation document (RFC 9052 section 4.2).

pycose is not used: its 1.1.0 release refuses untagged messages, which is how every real NSM
document arrives, and with cbor2 6 it cannot decode tagged ones either (pycose issue 141).
The envelope is four items and one ECDSA check, written out here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.errors import EvidenceTooLarge, MalformedEvidence, SignatureInvalid
from verifier.nitro.cbor import decode_strict, describe, strip_cose_sign1_tag

__all__ = [
    "ES384_PROTECTED_HEADER",
    "MAX_EVIDENCE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "COSESign1",
]

#: AWS CDDL: ``payload: bstr .size (1..16384)``.
MAX_PAYLOAD_BYTES = 16384
#: The payload plus the envelope around it (tag, array header, protected header, signature).
MAX_EVIDENCE_BYTES = MAX_PAYLOAD_BYTES + 256

#: ``{1: -35}``: algorithm ES384, encoded the only way a deterministic encoder writes it.
ES384_PROTECTED_HEADER = b"\xa1\x01\x38\x22"
_SIGNATURE_BYTES = 96  # ES384: r || s, 48 bytes each, big-endian (not DER)
_HALF = _SIGNATURE_BYTES // 2
_ES384 = ec.ECDSA(hashes.SHA384())


@dataclass(frozen=True, slots=True)
class COSESign1:
    """A structurally valid COSE_Sign1 whose signature has *not* been checked yet."""

    protected: bytes
    payload: bytes
    signature: bytes
    tagged: bool

    @classmethod
    def from_bytes(cls, data: bytes) -> COSESign1:
        """Parse the envelope or raise :class:`MalformedEvidence` / :class:`EvidenceTooLarge`."""
        if not isinstance(data, bytes):
            raise TypeError(f"evidence must be bytes, not {type(data).__name__}")
        if len(data) > MAX_EVIDENCE_BYTES:
            raise EvidenceTooLarge(
                f"evidence is {len(data)} bytes; the limit is {MAX_EVIDENCE_BYTES}"
            )
        body, tagged = strip_cose_sign1_tag(data)
        item = decode_strict(body, what="COSE_Sign1")
        if not isinstance(item, list) or len(item) != 4:
            found = f"array of {len(item)}" if isinstance(item, list) else describe(item)
            raise MalformedEvidence(f"COSE_Sign1: expected an array of 4 items, found {found}")
        protected, unprotected, payload, signature = item
        if not isinstance(protected, bytes):
            raise MalformedEvidence(
                f"COSE_Sign1 protected header: expected a byte string, found {describe(protected)}"
            )
        if protected != ES384_PROTECTED_HEADER:
            raise MalformedEvidence(
                "COSE_Sign1 protected header: expected {1: -35} (ES384, bytes a1013822), "
                f"found bytes {protected[:16].hex()}"
            )
        if not isinstance(unprotected, dict):
            raise MalformedEvidence(
                f"COSE_Sign1 unprotected header: expected a map, found {describe(unprotected)}"
            )
        if unprotected:
            # Nothing in it is signed and the NSM never writes anything there: fail closed.
            raise MalformedEvidence(
                f"COSE_Sign1 unprotected header: expected an empty map, "
                f"found {len(unprotected)} entr(y/ies)"
            )
        if not isinstance(payload, bytes):
            raise MalformedEvidence(
                f"COSE_Sign1 payload: expected a byte string, found {describe(payload)}"
            )
        if not 1 <= len(payload) <= MAX_PAYLOAD_BYTES:
            raise MalformedEvidence(
                f"COSE_Sign1 payload: expected 1..{MAX_PAYLOAD_BYTES} bytes, found {len(payload)}"
            )
        if not isinstance(signature, bytes):
            raise MalformedEvidence(
                f"COSE_Sign1 signature: expected a byte string, found {describe(signature)}"
            )
        if len(signature) != _SIGNATURE_BYTES:
            raise MalformedEvidence(
                f"COSE_Sign1 signature: expected {_SIGNATURE_BYTES} bytes (ES384 r||s), "
                f"found {len(signature)}"
            )
        return cls(protected=protected, payload=payload, signature=signature, tagged=tagged)

    def to_be_signed(self) -> bytes:
        """The Sig_structure (RFC 9052 section 4.4) over the original, unre-encoded bytes."""
        return cbor2.dumps(["Signature1", self.protected, b"", self.payload])

    def verify_signature(self, public_key: ec.EllipticCurvePublicKey) -> None:
        """Raise :class:`SignatureInvalid` unless the ES384 signature verifies."""
        if public_key.curve.name != "secp384r1":
            raise SignatureInvalid(
                f"signing certificate: expected a P-384 key for ES384, "
                f"found {public_key.curve.name}"
            )
        r = int.from_bytes(self.signature[:_HALF], "big")
        s = int.from_bytes(self.signature[_HALF:], "big")
        try:
            public_key.verify(encode_dss_signature(r, s), self.to_be_signed(), _ES384)
        except InvalidSignature:
            raise SignatureInvalid(
                "COSE_Sign1 signature does not verify under the signing certificate's key"
            ) from None
