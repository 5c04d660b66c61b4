"""A simulated Nitro Secure Module: signs attestation documents with a simulated PKI.

The document layout is AWS's: an untagged COSE_Sign1 ``[h'A10138 22', {}, payload, sig]``
whose payload map holds, in the NSM's order, module_id, digest, timestamp (milliseconds),
pcrs (16 entries of 48 bytes), certificate, cabundle (root first), public_key, user_data and
nonce, the last three as null when unused. Like documents since 2025 the payload map is
written with indefinite length unless ``definite_length=True``.

The encoder here is this module's own (cbor2's encoder plus hand-written indefinite maps), not
the verifier's parser run backwards: it is the independent producer the verifier is checked
against.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from enclave_worker.simulated_pki import SimulatedNitroPki, SimulatedNitroWarning

__all__ = [
    "PROTECTED_ES384",
    "SimulatedNsm",
    "cose_sign1",
    "encode_payload",
    "simulated_image_pcrs",
]

PROTECTED_ES384 = cbor2.dumps({1: -35})
_PCR_COUNT = 16
_DEBUG_ZEROED = (0, 1, 2, 8)


def simulated_image_pcrs(
    image: str, *, instance_id: str = "i-00000000000000000"
) -> dict[int, bytes]:
    """PCRs an enclave built from ``image`` would report: 0-2 from the image, 4 from the
    parent instance, the rest zero (no IAM role, unsigned image)."""
    pcrs = {index: bytes(48) for index in range(_PCR_COUNT)}
    for index in (0, 1, 2):
        pcrs[index] = hashlib.sha384(f"simulated image {image} PCR{index}".encode()).digest()
    pcrs[4] = hashlib.sha384(f"simulated parent instance {instance_id}".encode()).digest()
    return pcrs


def encode_payload(fields: Mapping[str, object], *, definite_length: bool = False) -> bytes:
    """CBOR-encode the payload map, keys in the given order."""
    if definite_length:
        return cbor2.dumps(dict(fields))
    body = b"".join(cbor2.dumps(key) + cbor2.dumps(value) for key, value in fields.items())
    return b"\xbf" + body + b"\xff"


def cose_sign1(
    payload: bytes,
    private_key: ec.EllipticCurvePrivateKey,
    *,
    protected: bytes = PROTECTED_ES384,
    tagged: bool = False,
) -> bytes:
    """Sign ``payload`` as an ES384 COSE_Sign1 (RFC 9052) with a raw 96-byte r||s signature."""
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = decode_dss_signature(private_key.sign(to_be_signed, ec.ECDSA(hashes.SHA384())))
    signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    message = cbor2.dumps([protected, {}, payload, signature])
    return b"\xd2" + message if tagged else message


class SimulatedNsm:
    """The attester's NSM, simulated. Warns when created; never use its documents as proof."""

    def __init__(
        self,
        pki: SimulatedNitroPki,
        *,
        image: str = "demo-image",
        debug: bool = False,
        pcrs: Mapping[int, bytes] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        warnings.warn(
            "SimulatedNsm signs with a simulated PKI, not AWS hardware",
            SimulatedNitroWarning,
            stacklevel=2,
        )
        self.pki = pki
        self._clock = clock or (lambda: datetime.now(UTC))
        values = (
            dict(pcrs)
            if pcrs is not None
            else simulated_image_pcrs(image, instance_id=pki.instance_id)
        )
        if debug:
            for index in _DEBUG_ZEROED:
                values[index] = bytes(48)
        self.pcrs: dict[int, bytes] = values

    def payload_fields(
        self,
        *,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
        timestamp: datetime | None = None,
    ) -> dict[str, object]:
        """The payload map as the NSM would write it, for callers that want to alter it."""
        moment = timestamp or self._clock()
        return {
            "module_id": self.pki.module_id,
            "digest": "SHA384",
            "timestamp": int(moment.timestamp() * 1000),
            "pcrs": dict(self.pcrs),
            "certificate": self.pki.leaf.der,
            "cabundle": self.pki.cabundle(),
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        }

    def attest(
        self,
        *,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
        timestamp: datetime | None = None,
        definite_length: bool = False,
        tagged: bool = False,
    ) -> bytes:
        """An attestation document, as the NSM's GetAttestationDoc returns it."""
        fields = self.payload_fields(
            user_data=user_data, nonce=nonce, public_key=public_key, timestamp=timestamp
        )
        return self.sign(encode_payload(fields, definite_length=definite_length), tagged=tagged)

    def sign(
        self, payload: bytes, *, protected: bytes = PROTECTED_ES384, tagged: bool = False
    ) -> bytes:
        """Sign an arbitrary payload with the leaf key (for building malformed documents)."""
        return cose_sign1(payload, self.pki.leaf.private_key, protected=protected, tagged=tagged)
