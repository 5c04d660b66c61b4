"""The Nitro attestation document (the COSE payload), parsed once into a frozen, typed object.

Field rules follow AWS's syntactic checks (aws-nitro-enclaves-nsm-api, attestation_process.md
section 3.2.2.1), with the corrections real documents force on them:

* ``public_key``, ``user_data`` and ``nonce`` are present as CBOR null when unused, although
  AWS's text says no field may be null; null means absent, for these three fields only.
* Their size is 0..1024 bytes, as the user guide says, not the nsm-api text's 1..1024
  (public_key) and 0..512: real AWS hardware produced the 1024-byte fields of the blocky
  fixture and the zero-length public_key of the brave fixture. An empty byte string is
  present and empty, never the same as null (absent).
* NitroTPM documents (EC2 instances) carry ``nitrotpm_pcrs`` instead of ``pcrs``: they are a
  different kind of evidence (:attr:`EvidenceKind.AWS_NITRO_TPM`) with the same envelope and PKI.
* A timestamp below 10^12 cannot be milliseconds since 1970 in any real document (that is
  2001-09-09); forged documents that write seconds are rejected.

Unknown keys are rejected: the format has no extension mechanism, and a field we do not
understand is not one we can vouch for to an auditor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from verifier.errors import MalformedEvidence
from verifier.nitro.cbor import decode_strict, describe
from verifier.scheme import EvidenceKind

__all__ = [
    "MAX_CABUNDLE_CERTIFICATES",
    "MAX_OPTIONAL_FIELD_BYTES",
    "PCR_BYTES",
    "AttestationDocument",
    "EvidenceKind",
]

PCR_BYTES = 48  # SHA-384, the only digest Nitro uses
MAX_OPTIONAL_FIELD_BYTES = 1024
MAX_CERTIFICATE_BYTES = 1024
#: AWS chains have four; a bound keeps the work per document bounded.
MAX_CABUNDLE_CERTIFICATES = 10
MAX_MODULE_ID_BYTES = 256
_MIN_TIMESTAMP_MS = 10**12
_MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime holds
_ZERO_PCR = bytes(PCR_BYTES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_PCR_FIELDS = {
    "pcrs": (EvidenceKind.AWS_NITRO_ENCLAVE, 32),
    "nitrotpm_pcrs": (EvidenceKind.AWS_NITRO_TPM, 24),
}
_MANDATORY = ("module_id", "digest", "timestamp", "certificate", "cabundle")
_OPTIONAL = ("public_key", "user_data", "nonce")
_KNOWN = frozenset(_MANDATORY) | frozenset(_OPTIONAL) | frozenset(_PCR_FIELDS)


@dataclass(frozen=True, slots=True, eq=False)
class AttestationDocument:
    """A syntactically valid attestation document. Nothing about it is verified yet."""

    kind: EvidenceKind
    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: Mapping[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None

    @property
    def timestamp(self) -> datetime:
        """The document's signed creation time (UTC, millisecond precision)."""
        return _EPOCH + timedelta(milliseconds=self.timestamp_ms)

    @property
    def is_debug(self) -> bool:
        """True for a debug-mode enclave, detected by PCR0 all zero.

        Debug enclaves zero PCR0, 1, 2 (and 8) but keep PCR3 and PCR4, so "all PCRs zero"
        would miss them. NitroTPM PCRs have a different meaning and are never "debug".
        """
        return self.kind is EvidenceKind.AWS_NITRO_ENCLAVE and self.pcrs.get(0) == _ZERO_PCR

    @classmethod
    def from_payload(cls, payload: bytes) -> AttestationDocument:
        """Decode and check every field of the COSE payload, or raise :class:`MalformedEvidence`."""
        fields = decode_strict(payload, what="payload")
        if not isinstance(fields, dict):
            raise MalformedEvidence(f"payload: expected a map, found {describe(fields)}")
        for key in fields:
            if not isinstance(key, str):
                raise MalformedEvidence(f"payload: expected text keys, found {describe(key)}")
            if key not in _KNOWN:
                raise MalformedEvidence(f"payload: unexpected field {_quote(key)}")
        for key in _MANDATORY:
            if key not in fields:
                raise MalformedEvidence(f"payload: mandatory field '{key}' is missing")

        pcr_keys = [key for key in _PCR_FIELDS if key in fields]
        if len(pcr_keys) != 1:
            raise MalformedEvidence(
                "payload: expected exactly one of 'pcrs' (enclave) or 'nitrotpm_pcrs' "
                f"(NitroTPM), found {len(pcr_keys)}"
            )
        kind, pcr_limit = _PCR_FIELDS[pcr_keys[0]]

        return cls(
            kind=kind,
            module_id=_module_id(fields["module_id"]),
            digest=_digest(fields["digest"]),
            timestamp_ms=_timestamp(fields["timestamp"]),
            pcrs=_pcrs(fields[pcr_keys[0]], pcr_keys[0], pcr_limit),
            certificate=_bytes_field(
                fields["certificate"], "certificate", 1, MAX_CERTIFICATE_BYTES
            ),
            cabundle=_cabundle(fields["cabundle"]),
            public_key=_optional(fields.get("public_key"), "public_key"),
            user_data=_optional(fields.get("user_data"), "user_data"),
            nonce=_optional(fields.get("nonce"), "nonce"),
        )


def _quote(key: str) -> str:
    shown = key if len(key) <= 40 else key[:37] + "..."
    return repr(shown)


def _module_id(value: Any) -> str:
    if not isinstance(value, str):
        raise MalformedEvidence(f"module_id: expected a text string, found {describe(value)}")
    size = len(value.encode("utf-8"))
    if not 1 <= size <= MAX_MODULE_ID_BYTES:
        raise MalformedEvidence(
            f"module_id: expected 1..{MAX_MODULE_ID_BYTES} bytes of text, found {size}"
        )
    return value


def _digest(value: Any) -> str:
    if not isinstance(value, str) or value != "SHA384":
        shown = repr(value[:20]) if isinstance(value, str) else describe(value)
        raise MalformedEvidence(f"digest: expected 'SHA384', found {shown}")
    return value


def _timestamp(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedEvidence(f"timestamp: expected an unsigned integer, found {describe(value)}")
    if not _MIN_TIMESTAMP_MS <= value <= _MAX_TIMESTAMP_MS:
        shown = value if abs(value) < 10**20 else "a huge integer"
        raise MalformedEvidence(
            "timestamp: expected milliseconds since 1970 between 10^12 (2001) and "
            f"{_MAX_TIMESTAMP_MS} (9999), found {shown}"
        )
    return value


def _pcrs(value: Any, name: str, limit: int) -> Mapping[int, bytes]:
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{name}: expected a map, found {describe(value)}")
    if not 1 <= len(value) <= limit:
        raise MalformedEvidence(f"{name}: expected 1..{limit} entries, found {len(value)}")
    out: dict[int, bytes] = {}
    for index, digest in value.items():
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < limit:
            shown = index if isinstance(index, int) and abs(index) < 10**6 else describe(index)
            raise MalformedEvidence(f"{name}: expected an index in 0..{limit - 1}, found {shown}")
        if not isinstance(digest, bytes):
            raise MalformedEvidence(
                f"{name}[{index}]: expected a byte string, found {describe(digest)}"
            )
        if len(digest) != PCR_BYTES:
            raise MalformedEvidence(
                f"{name}[{index}]: expected {PCR_BYTES} bytes (SHA384), found {len(digest)}"
            )
        out[index] = digest
    return MappingProxyType(dict(sorted(out.items())))


def _bytes_field(value: Any, name: str, minimum: int, maximum: int) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedEvidence(f"{name}: expected a byte string, found {describe(value)}")
    if not minimum <= len(value) <= maximum:
        raise MalformedEvidence(f"{name}: expected {minimum}..{maximum} bytes, found {len(value)}")
    return value


def _cabundle(value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise MalformedEvidence(f"cabundle: expected an array, found {describe(value)}")
    if not 1 <= len(value) <= MAX_CABUNDLE_CERTIFICATES:
        raise MalformedEvidence(
            f"cabundle: expected 1..{MAX_CABUNDLE_CERTIFICATES} certificates, found {len(value)}"
        )
    return tuple(
        _bytes_field(item, f"cabundle[{i}]", 1, MAX_CERTIFICATE_BYTES)
        for i, item in enumerate(value)
    )


def _optional(value: Any, name: str) -> bytes | None:
    """None for null (absent); otherwise 0..1024 bytes, b"" being present and empty."""
    if value is None:
        return None
    return _bytes_field(value, name, 0, MAX_OPTIONAL_FIELD_BYTES)
