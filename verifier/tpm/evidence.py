"""The ``tpm2-quote/v1`` evidence container (one CBOR map, ``format`` first) and the
conversion of the JSON samples other verifiers publish into it.

::

    {"format": "tpm2-quote/v1", "attest": bstr, "signature": bstr, "ak": bstr,
     "pcrs": {"sha256": {0: bstr, ...}, ...},
     ? "event_log": bstr, ? "ima_log": bstr, ? "nitro_document": bstr}

Strict: a definite-length map whose first key is ``format`` (so that the kind can be told
from the first bytes), no duplicate or unknown key, no tag, exact types, bank names sha1,
sha256, sha384, sha512, PCR indexes 0..23 with values of the bank's digest size, at most
64 KiB in all. The other keys may come in any order; :func:`encode` writes them in cbor2's
canonical order after ``format``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from verifier.errors import EvidenceTooLarge, MalformedEvidence, VerifierError
from verifier.nitro.cbor import decode_strict, describe
from verifier.scheme import Endorsement, EndorsementKind
from verifier.tpm.structures import DIGEST_SIZES, MAX_PCR, Attest, TpmSignature

__all__ = [
    "FORMAT",
    "FORMAT_PREFIX",
    "MAX_CONTAINER_BYTES",
    "TpmEvidence",
    "encode",
    "from_json",
    "parse_container",
]

FORMAT = "tpm2-quote/v1"
#: After the map's header: the text "format" and the text "tpm2-quote/v1".
FORMAT_PREFIX = b"\x66format\x6dtpm2-quote/v1"
MAX_CONTAINER_BYTES = 64 * 1024
_REQUIRED = ("format", "attest", "signature", "ak", "pcrs")
_OPTIONAL = ("event_log", "ima_log", "nitro_document")
_KNOWN = frozenset(_REQUIRED + _OPTIONAL)
#: Bounds on the small fields (a TPMS_ATTEST of four banks is under 200 bytes; an RSA-4096
#: TPMT_SIGNATURE 518; an RSA-4096 SPKI 550; Nitro documents are about 5 KB).
_FIELD_LIMITS = {"attest": 1024, "signature": 1024, "ak": 1024, "nitro_document": 16 * 1024}


@dataclass(frozen=True, slots=True, eq=False)
class TpmEvidence:
    """A parsed container; nothing in it is verified yet."""

    raw: bytes
    attest: bytes
    signature: bytes
    ak: bytes
    pcrs: Mapping[str, Mapping[int, bytes]]
    event_log: bytes | None = None
    ima_log: bytes | None = None
    nitro_document: bytes | None = None


def is_container(data: bytes) -> bool:
    """Whether ``data`` starts like a container (a small definite map, ``format`` first)."""
    return (
        len(data) > len(FORMAT_PREFIX)
        and 0xA1 <= data[0] <= 0xB7
        and (data[1 : 1 + len(FORMAT_PREFIX)] == FORMAT_PREFIX)
    )


def parse_container(data: bytes) -> TpmEvidence:
    """Parse a container; raises MalformedEvidence or EvidenceTooLarge."""
    if len(data) > MAX_CONTAINER_BYTES:
        raise EvidenceTooLarge(f"tpm2-quote: {len(data)} bytes, at most {MAX_CONTAINER_BYTES}")
    if not is_container(data):
        raise MalformedEvidence(
            "tpm2-quote: expected a CBOR map of at most 23 entries whose first key is "
            f"'format' with the value {FORMAT!r}"
        )
    value = decode_strict(data, what="tpm2-quote")
    if not isinstance(value, dict):  # pragma: no cover - the first byte says map
        raise MalformedEvidence(f"tpm2-quote: expected a map, found {describe(value)}")
    unknown = [k for k in value if k not in _KNOWN]
    if unknown:
        shown = ", ".join(repr(k)[:40] if isinstance(k, str) else describe(k) for k in unknown)
        raise MalformedEvidence(f"tpm2-quote: unknown key(s) {shown}")
    for key in _REQUIRED:
        if key not in value:
            raise MalformedEvidence(f"tpm2-quote: {key!r} is required")
    fields: dict[str, bytes | None] = {}
    for key in (*_REQUIRED[1:4], *_OPTIONAL):
        item = value.get(key)
        if item is None and key in _OPTIONAL and key not in value:
            fields[key] = None
            continue
        if not isinstance(item, bytes):
            raise MalformedEvidence(
                f"tpm2-quote: {key!r} must be a byte string, found {describe(item)}"
            )
        limit = _FIELD_LIMITS.get(key)
        if limit is not None and len(item) > limit:
            raise EvidenceTooLarge(f"tpm2-quote: {key!r} is {len(item)} bytes, at most {limit}")
        if not item:
            raise MalformedEvidence(f"tpm2-quote: {key!r} is empty")
        fields[key] = item
    return TpmEvidence(
        raw=data,
        attest=_required(fields["attest"]),
        signature=_required(fields["signature"]),
        ak=_required(fields["ak"]),
        pcrs=_pcrs(value["pcrs"]),
        event_log=fields["event_log"],
        ima_log=fields["ima_log"],
        nitro_document=fields["nitro_document"],
    )


def _required(value: bytes | None) -> bytes:
    assert value is not None  # noqa: S101 - parse_container checked the required keys
    return value


def _pcrs(value: object) -> Mapping[str, Mapping[int, bytes]]:
    if not isinstance(value, dict) or not value:
        raise MalformedEvidence(
            f"tpm2-quote: 'pcrs' must be a non-empty map, found {describe(value)}"
        )
    out: dict[str, Mapping[int, bytes]] = {}
    for bank, values in value.items():
        if not isinstance(bank, str) or bank not in DIGEST_SIZES:
            shown = repr(bank)[:20] if isinstance(bank, str) else describe(bank)
            raise MalformedEvidence(
                f"tpm2-quote: pcrs bank {shown}; expected one of {', '.join(DIGEST_SIZES)}"
            )
        if not isinstance(values, dict) or not values:
            raise MalformedEvidence(f"tpm2-quote: pcrs[{bank!r}] must be a non-empty map")
        size = DIGEST_SIZES[bank]
        bank_values: dict[int, bytes] = {}
        for index, digest in values.items():
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_PCR:
                raise MalformedEvidence(
                    f"tpm2-quote: pcrs[{bank!r}] key must be a PCR index 0..{MAX_PCR}"
                )
            if not isinstance(digest, bytes) or len(digest) != size:
                raise MalformedEvidence(f"tpm2-quote: pcrs[{bank!r}][{index}] must be {size} bytes")
            bank_values[index] = digest
        out[bank] = MappingProxyType(dict(sorted(bank_values.items())))
    return MappingProxyType(out)


def encode(
    *,
    attest: bytes,
    signature: bytes,
    ak: bytes,
    pcrs: Mapping[str, Mapping[int, bytes]],
    event_log: bytes | None = None,
    ima_log: bytes | None = None,
    nitro_document: bytes | None = None,
) -> bytes:
    """The container's bytes: ``format`` first, the rest in cbor2's canonical order."""
    rest: dict[str, Any] = {
        "attest": attest,
        "signature": signature,
        "ak": ak,
        "pcrs": {bank: dict(values) for bank, values in pcrs.items()},
    }
    for key, item in (
        ("event_log", event_log),
        ("ima_log", ima_log),
        ("nitro_document", nitro_document),
    ):
        if item is not None:
            rest[key] = item
    body = cbor2.dumps(rest, canonical=True)
    # A map header of n+1 entries, then "format": FORMAT, then the canonical entries.
    header = bytes([0xA0 + len(rest) + 1])
    return header + FORMAT_PREFIX + body[1:]


def from_json(text: str | bytes) -> tuple[bytes, tuple[Endorsement, ...]]:
    """Convert a vaportpm JSON sample (NitroTPM or GCP) or a trustee TPM evidence sample into
    a container and its endorsements (the GCP AK certificate chain). DER ECDSA signatures are
    re-encoded as TPMT_SIGNATURE ECDSA/SHA-256 with the same r and s. Raises
    MalformedEvidence; nothing is verified."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        if "tpm_quote" in data:
            return _from_trustee(data), ()
        return _from_vaportpm(data)
    except VerifierError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, RecursionError) as exc:
        raise MalformedEvidence(
            f"TPM JSON evidence: unexpected shape ({type(exc).__name__})"
        ) from exc


def _from_vaportpm(data: dict[str, Any]) -> tuple[bytes, tuple[Endorsement, ...]]:
    x = bytes.fromhex(data["ak_pubkeys"]["ecc_p256"]["x"])
    y = bytes.fromhex(data["ak_pubkeys"]["ecc_p256"]["y"])
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    ak = point.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    quote = data["attestation"]["tpm"]["ecc_p256"]
    r, s = decode_dss_signature(bytes.fromhex(quote["signature"]))
    signature = TpmSignature("ecdsa", "sha256", r=r, s=s).to_bytes()
    pcrs = {
        bank: {int(index): bytes.fromhex(value) for index, value in values.items()}
        for bank, values in data["pcrs"].items()
    }
    nitro = data["attestation"].get("nitro")
    gcp = data["attestation"].get("gcp")
    container = encode(
        attest=bytes.fromhex(quote["attest_data"]),
        signature=signature,
        ak=ak,
        pcrs=pcrs,
        nitro_document=bytes.fromhex(nitro["document"]) if nitro else None,
    )
    endorsements: list[Endorsement] = []
    if gcp:
        certificates = x509.load_pem_x509_certificates(gcp["ak_cert_chain"].encode())
        for n, certificate in enumerate(certificates):
            kind = EndorsementKind.AK_CERTIFICATE if n == 0 else EndorsementKind.CERTIFICATE
            endorsements.append(Endorsement(kind, certificate.public_bytes(Encoding.DER)))
    return container, tuple(endorsements)


def _from_trustee(data: dict[str, Any]) -> bytes:
    quote = data["tpm_quote"]
    attest = base64.b64decode(quote["message"], validate=True)
    selection = Attest.from_bytes(attest).selection
    if len(selection) != 1:
        raise MalformedEvidence("trustee TPM evidence: expected a quote of one PCR bank")
    values = [bytes.fromhex(v) for v in quote["pcrs"]]
    if max(selection[0].indexes, default=-1) >= len(values):
        raise MalformedEvidence(
            f"trustee TPM evidence: the quote selects PCR {max(selection[0].indexes)}, but "
            f"only {len(values)} PCR values came with it"
        )
    return encode(
        attest=attest,
        signature=base64.b64decode(quote["signature"], validate=True),
        ak=base64.b64decode(data["ak_public"], validate=True),
        pcrs={selection[0].bank: {i: values[i] for i in selection[0].indexes}},
    )
