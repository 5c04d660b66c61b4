"""TPM 2.0 structures as a TPM marshals them (TPM 2.0 Library, Part 2): the quote's
``TPMS_ATTEST`` (type ``TPM_ST_ATTEST_QUOTE``) and the ``TPMT_SIGNATURE`` over it, parsed
strictly, big-endian, every size bounded and no trailing byte allowed.

Only what a quote needs is accepted: a qualifiedSigner that is a digest name (nameAlg and a
digest of its size; the handle-only and empty forms are refused), PCR banks SHA-1, SHA-256,
SHA-384 and SHA-512, PCRs 0..23, signatures RSASSA, RSAPSS and ECDSA with one of those
hashes. Anything else raises :class:`MalformedEvidence` (a layout error) or
:class:`UnsupportedEvidence` (a well-formed algorithm this verifier does not know).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from verifier.errors import MalformedEvidence, UnsupportedEvidence

__all__ = [
    "BANK_BY_ALG",
    "DIGEST_SIZES",
    "MAX_PCR",
    "TPM_ALG_ECDSA",
    "TPM_ALG_RSAPSS",
    "TPM_ALG_RSASSA",
    "TPM_GENERATED_VALUE",
    "TPM_ST_ATTEST_QUOTE",
    "Attest",
    "PcrSelection",
    "TpmSignature",
    "alg_of_bank",
    "pcr_digest",
]

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
TPM_ALG_RSASSA = 0x0014
TPM_ALG_RSAPSS = 0x0016
TPM_ALG_ECDSA = 0x0018
#: TPM_ALG_ID -> bank name (the hashes a PCR bank, a name or a signature may use).
BANK_BY_ALG: Mapping[int, str] = MappingProxyType(
    {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}
)
DIGEST_SIZES: Mapping[str, int] = MappingProxyType(
    {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
)
_ALG_BY_BANK = {name: alg for alg, name in BANK_BY_ALG.items()}
_SIGNATURE_SCHEMES = {TPM_ALG_RSASSA: "rsassa", TPM_ALG_RSAPSS: "rsapss", TPM_ALG_ECDSA: "ecdsa"}
#: PCRs 0..23: the PC Client platform's 24 PCRs.
MAX_PCR = 23
#: TPM2B_DATA holds at most sizeof(TPMU_HA), 64 bytes.
MAX_EXTRA_DATA = 64
#: One selection per bank, each bank at most once.
MAX_BANKS = len(BANK_BY_ALG)
#: PCR_SELECT_MIN is 3 (24 PCRs); no TPM has more than 8 bytes of selection.
MIN_SIZEOF_SELECT, MAX_SIZEOF_SELECT = 3, 8
#: RSA signatures up to 4096 bits; ECDSA integers up to P-521's 66 bytes.
MAX_RSA_SIGNATURE, MAX_ECC_PARAMETER = 512, 66


def alg_of_bank(bank: str) -> int:
    return _ALG_BY_BANK[bank]


class _Reader:
    """Big-endian reads over bytes; a short read is MalformedEvidence naming ``what``."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, size: int, field: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise MalformedEvidence(
                f"{self.what}: {field} needs {size} byte(s) at offset {self.offset}, "
                f"only {len(self.data) - self.offset} left"
            )
        out = self.data[self.offset : end]
        self.offset = end
        return out

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "big")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "big")

    def u64(self, field: str) -> int:
        return int.from_bytes(self.take(8, field), "big")

    def tpm2b(self, field: str, limit: int) -> bytes:
        size = self.u16(f"{field}.size")
        if size > limit:
            raise MalformedEvidence(f"{self.what}: {field} is {size} bytes, at most {limit}")
        return self.take(size, field)

    def end(self) -> None:
        if self.offset != len(self.data):
            raise MalformedEvidence(
                f"{self.what}: {len(self.data) - self.offset} trailing byte(s) after the structure"
            )


def _hash_name(alg: int, field: str, what: str) -> str:
    bank = BANK_BY_ALG.get(alg)
    if bank is None:
        raise UnsupportedEvidence(
            f"{what}: {field} 0x{alg:04x} is no hash this verifier knows "
            f"(SHA-1, SHA-256, SHA-384, SHA-512)"
        )
    return bank


@dataclass(frozen=True, slots=True)
class PcrSelection:
    """One bank of a TPML_PCR_SELECTION: its name and the PCR indexes, ascending."""

    bank: str
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Attest:
    """A TPMS_ATTEST of type ATTEST_QUOTE, exactly as the TPM signed it (``raw``)."""

    raw: bytes
    #: The qualifiedSigner's name algorithm (bank name) and digest: the AK's TPM name.
    name_alg: str
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    selection: tuple[PcrSelection, ...]
    pcr_digest: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> Attest:
        r = _Reader(data, "TPMS_ATTEST")
        magic = r.u32("magic")
        if magic != TPM_GENERATED_VALUE:
            raise MalformedEvidence(
                f"TPMS_ATTEST: magic 0x{magic:08x}, expected TPM_GENERATED_VALUE 0xff544347"
            )
        kind = r.u16("type")
        if kind != TPM_ST_ATTEST_QUOTE:
            raise MalformedEvidence(
                f"TPMS_ATTEST: type 0x{kind:04x}, expected TPM_ST_ATTEST_QUOTE 0x8018"
            )
        name = r.tpm2b("qualifiedSigner", 2 + max(DIGEST_SIZES.values()))
        if len(name) in (0, 4):  # TPM2B_NAME: empty, or a TPM_HANDLE
            raise MalformedEvidence(
                f"TPMS_ATTEST: qualifiedSigner of {len(name)} bytes is a handle or empty: "
                "expected nameAlg and a digest, which name the AK"
            )
        if len(name) < 2:
            raise MalformedEvidence("TPMS_ATTEST: qualifiedSigner is shorter than a nameAlg")
        name_alg = _hash_name(
            int.from_bytes(name[:2], "big"), "qualifiedSigner nameAlg", "TPMS_ATTEST"
        )
        if len(name) != 2 + DIGEST_SIZES[name_alg]:
            raise MalformedEvidence(
                f"TPMS_ATTEST: qualifiedSigner is {len(name)} bytes; a {name_alg} name is "
                f"{2 + DIGEST_SIZES[name_alg]}"
            )
        extra_data = r.tpm2b("extraData", MAX_EXTRA_DATA)
        clock = r.u64("clockInfo.clock")
        reset_count = r.u32("clockInfo.resetCount")
        restart_count = r.u32("clockInfo.restartCount")
        safe = r.u8("clockInfo.safe")
        if safe > 1:
            raise MalformedEvidence(f"TPMS_ATTEST: clockInfo.safe is {safe}, expected 0 or 1")
        firmware_version = r.u64("firmwareVersion")
        selection = _selection(r)
        pcr_digest = r.tpm2b("pcrDigest", max(DIGEST_SIZES.values()))
        if len(pcr_digest) != DIGEST_SIZES[name_alg]:
            raise MalformedEvidence(
                f"TPMS_ATTEST: pcrDigest is {len(pcr_digest)} bytes; the name algorithm "
                f"{name_alg} makes it {DIGEST_SIZES[name_alg]}"
            )
        r.end()
        return cls(
            raw=data,
            name_alg=name_alg,
            qualified_signer=name,
            extra_data=extra_data,
            clock=clock,
            reset_count=reset_count,
            restart_count=restart_count,
            safe=bool(safe),
            firmware_version=firmware_version,
            selection=selection,
            pcr_digest=pcr_digest,
        )

    def selected(self) -> dict[str, tuple[int, ...]]:
        return {s.bank: s.indexes for s in self.selection}


def _selection(r: _Reader) -> tuple[PcrSelection, ...]:
    count = r.u32("pcrSelect.count")
    if not 1 <= count <= MAX_BANKS:
        raise MalformedEvidence(
            f"TPMS_ATTEST: pcrSelect.count is {count}, expected 1..{MAX_BANKS} banks"
        )
    out: list[PcrSelection] = []
    for n in range(count):
        alg = r.u16(f"pcrSelections[{n}].hash")
        bank = _hash_name(alg, f"pcrSelections[{n}].hash", "TPMS_ATTEST")
        if any(s.bank == bank for s in out):
            raise MalformedEvidence(f"TPMS_ATTEST: the {bank} bank is selected twice")
        size = r.u8(f"pcrSelections[{n}].sizeofSelect")
        if not MIN_SIZEOF_SELECT <= size <= MAX_SIZEOF_SELECT:
            raise MalformedEvidence(
                f"TPMS_ATTEST: pcrSelections[{n}].sizeofSelect is {size}, expected "
                f"{MIN_SIZEOF_SELECT}..{MAX_SIZEOF_SELECT}"
            )
        bitmap = r.take(size, f"pcrSelections[{n}].pcrSelect")
        indexes = tuple(i for i in range(8 * size) if bitmap[i // 8] >> (i % 8) & 1)
        if indexes and indexes[-1] > MAX_PCR:
            raise MalformedEvidence(
                f"TPMS_ATTEST: the {bank} selection names PCR {indexes[-1]}; PCRs are 0..{MAX_PCR}"
            )
        out.append(PcrSelection(bank, indexes))
    if not any(s.indexes for s in out):
        raise MalformedEvidence("TPMS_ATTEST: the quote selects no PCR")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TpmSignature:
    """A TPMT_SIGNATURE: the scheme ("rsassa", "rsapss", "ecdsa"), its hash, and either the
    RSA signature or the ECDSA integers r and s."""

    scheme: str
    hash_alg: str
    rsa_signature: bytes = b""
    r: int = 0
    s: int = 0

    @property
    def name(self) -> str:
        """ "ecdsa-sha256", "rsassa-sha256", ...: how claims name it."""
        return f"{self.scheme}-{self.hash_alg}"

    @classmethod
    def from_bytes(cls, data: bytes) -> TpmSignature:
        r = _Reader(data, "TPMT_SIGNATURE")
        alg = r.u16("sigAlg")
        scheme = _SIGNATURE_SCHEMES.get(alg)
        if scheme is None:
            raise UnsupportedEvidence(
                f"TPMT_SIGNATURE: sigAlg 0x{alg:04x}; expected RSASSA (0x0014), RSAPSS (0x0016) "
                "or ECDSA (0x0018)"
            )
        hash_alg = _hash_name(r.u16("hash"), "hash", "TPMT_SIGNATURE")
        if scheme == "ecdsa":
            r_bytes = r.tpm2b("signatureR", MAX_ECC_PARAMETER)
            s_bytes = r.tpm2b("signatureS", MAX_ECC_PARAMETER)
            r.end()
            return cls(
                scheme, hash_alg, r=int.from_bytes(r_bytes, "big"), s=int.from_bytes(s_bytes, "big")
            )
        signature = r.tpm2b("sig", MAX_RSA_SIGNATURE)
        if not signature:
            raise MalformedEvidence("TPMT_SIGNATURE: the RSA signature is empty")
        r.end()
        return cls(scheme, hash_alg, rsa_signature=signature)

    def to_bytes(self) -> bytes:
        """Marshal again (for tools converting DER ECDSA signatures, and for tests)."""
        alg = {v: k for k, v in _SIGNATURE_SCHEMES.items()}[self.scheme]
        head = alg.to_bytes(2, "big") + alg_of_bank(self.hash_alg).to_bytes(2, "big")
        if self.scheme == "ecdsa":
            return head + _tpm2b(_integer(self.r)) + _tpm2b(_integer(self.s))
        return head + _tpm2b(self.rsa_signature)


def _integer(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _tpm2b(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def pcr_digest(attest: Attest, pcrs: Mapping[str, Mapping[int, bytes]]) -> bytes:
    """H(PCR[i0] || PCR[i1] || ...) over the selected values, bank by bank in selection order,
    indexes ascending, H the AK's name algorithm (not the bank's). ``pcrs`` must hold every
    selected value (the caller checks)."""
    h = hashlib.new(attest.name_alg)
    for selection in attest.selection:
        bank = pcrs[selection.bank]
        for index in selection.indexes:
            h.update(bank[index])
    return h.digest()
