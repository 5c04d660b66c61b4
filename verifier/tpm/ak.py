"""The attestation key (AK): its SubjectPublicKeyInfo, and the quote signature it made.

Accepted keys: ECC P-256 and P-384, RSA 2048 to 4096 bits. The signature's scheme must fit
the key (ECDSA for ECC, RSASSA or RSAPSS for RSA) and the hash is the one the TPMT_SIGNATURE
names. RSA-PSS: a TPM signs with a salt as long as the digest (the TPM 2.0 library since
revision 1.38, libtpms, and every FIPS TPM) or, in older firmware, the longest the key
allows; both are accepted, and nothing else (not OpenSSL's "auto", which accepts any salt).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.errors import MalformedEvidence, TpmSignatureInvalid, UnsupportedEvidence
from verifier.tpm.structures import DIGEST_SIZES, TpmSignature

__all__ = ["AttestationKey", "parse_ak"]

_CURVES = {"secp256r1": ("ecc-p256", 32), "secp384r1": ("ecc-p384", 48)}
_ORDERS = {
    "secp256r1": int("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16),
    "secp384r1": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        16,
    ),
}
_MIN_RSA_BITS, _MAX_RSA_BITS = 2048, 4096
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
MAX_AK_BYTES = 1024


@dataclass(frozen=True, slots=True, eq=False)
class AttestationKey:
    """A parsed AK: its SPKI DER, the key, and how claims name it ("ecc-p256", "rsa-2048")."""

    spki: bytes
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    key: str

    @property
    def sha256(self) -> str:
        """Lowercase hex SHA-256 of the SPKI DER: how enrolment names the AK."""
        return hashlib.sha256(self.spki).hexdigest()

    def ec_point(self) -> bytes | None:
        """The uncompressed SEC1 point 04||X||Y of an ECC AK, None for RSA."""
        if isinstance(self.public_key, rsa.RSAPublicKey):
            return None
        return self.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def verify(self, signature: TpmSignature, message: bytes) -> None:
        """Raise :class:`TpmSignatureInvalid` unless ``signature`` over ``message`` verifies."""
        algorithm = _HASHES[signature.hash_alg]()
        key = self.public_key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                if signature.scheme != "ecdsa":
                    raise TpmSignatureInvalid(
                        f"TPMT_SIGNATURE: a {signature.scheme} signature cannot be made by the "
                        f"{self.key} AK"
                    )
                order = _ORDERS[key.curve.name]
                if not (0 < signature.r < order and 0 < signature.s < order):
                    raise TpmSignatureInvalid(
                        f"TPMT_SIGNATURE: ECDSA r or s is outside 1..n-1 of the {self.key} curve"
                    )
                key.verify(
                    encode_dss_signature(signature.r, signature.s), message, ec.ECDSA(algorithm)
                )
                return
            if signature.scheme == "ecdsa":
                raise TpmSignatureInvalid(
                    f"TPMT_SIGNATURE: an ECDSA signature cannot be made by the {self.key} AK"
                )
            if len(signature.rsa_signature) != (key.key_size + 7) // 8:
                raise TpmSignatureInvalid(
                    f"TPMT_SIGNATURE: the RSA signature is {len(signature.rsa_signature)} bytes; "
                    f"the {self.key} AK makes {(key.key_size + 7) // 8}"
                )
            if signature.scheme == "rsassa":
                key.verify(signature.rsa_signature, message, padding.PKCS1v15(), algorithm)
                return
            _verify_pss(key, signature, message, algorithm)
        except InvalidSignature:
            raise TpmSignatureInvalid(
                f"TPMS_ATTEST: the {signature.name} signature does not verify with the "
                f"{self.key} AK (SHA-256 {self.sha256})"
            ) from None


def _verify_pss(
    key: rsa.RSAPublicKey,
    signature: TpmSignature,
    message: bytes,
    algorithm: hashes.HashAlgorithm,
) -> None:
    digest_size = DIGEST_SIZES[signature.hash_alg]
    max_salt = (key.key_size + 7) // 8 - digest_size - 2
    for salt in dict.fromkeys((digest_size, max_salt)):
        try:
            key.verify(
                signature.rsa_signature,
                message,
                padding.PSS(mgf=padding.MGF1(algorithm), salt_length=salt),
                algorithm,
            )
            return
        except InvalidSignature:
            continue
    raise InvalidSignature


def parse_ak(spki: bytes) -> AttestationKey:
    """Parse an AK SubjectPublicKeyInfo (DER); MalformedEvidence or UnsupportedEvidence."""
    if len(spki) > MAX_AK_BYTES:
        raise MalformedEvidence(f"ak: {len(spki)} bytes, at most {MAX_AK_BYTES}")
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise MalformedEvidence("ak: not a DER SubjectPublicKeyInfo") from exc
    if (
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        != spki
    ):
        raise MalformedEvidence("ak: the SubjectPublicKeyInfo is not in its DER form")
    if isinstance(key, ec.EllipticCurvePublicKey):
        named = _CURVES.get(key.curve.name)
        if named is None:
            raise UnsupportedEvidence(f"ak: curve {key.curve.name}; expected P-256 or P-384")
        return AttestationKey(spki, key, named[0])
    if isinstance(key, rsa.RSAPublicKey):
        if not _MIN_RSA_BITS <= key.key_size <= _MAX_RSA_BITS:
            raise UnsupportedEvidence(
                f"ak: RSA-{key.key_size}; expected {_MIN_RSA_BITS} to {_MAX_RSA_BITS} bits"
            )
        return AttestationKey(spki, key, f"rsa-{key.key_size}")
    raise UnsupportedEvidence("ak: expected an ECC P-256/P-384 or RSA key")
