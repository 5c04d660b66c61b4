"""The TPM 2.0 attester: quotes from a real TPM (or swtpm) through tpm2-tools.

Evidence kind ``tpm2-quote``: one CBOR map with the quote as the TPM signed it and what a
verifier needs to check it, ``format`` first (so that the kind shows in the first bytes),
then the other keys and everything inside them in canonical order (:func:`encode_container`)::

    {"format": "tpm2-quote/v1", "attest": TPMS_ATTEST, "signature": TPMT_SIGNATURE,
     "ak": SubjectPublicKeyInfo DER, "pcrs": {bank: {index: value}}, "event_log": bytes}

and, from :class:`~enclave_worker.simulated_nitrotpm.SimulatedNitroTpm`, ``"nitro_document"``:
a NitroTPM attestation document that vouches for the AK.

:class:`TpmAttester` drives tpm2-tools (Debian's ``tpm2-tools``) over a TCTI: ``swtpm:host=
127.0.0.1,port=N`` (:class:`~enclave_worker.swtpm.Swtpm`) or ``device:/dev/tpmrm0``.

* Keys, made once and kept as persistent handles: the EK (RSA-2048, the TCG default template,
  at 0x81010001 unless one is already there: a manufactured swtpm's or a platform's) and under
  it an AK (``tpm2_createak``: ECC P-256 ECDSA/SHA-256, or RSA-2048 RSASSA/SHA-256; name
  algorithm SHA-256), at 0x81008001 (ECC) or 0x81008002 (RSA). The AK's public key is
  recorded in the state directory, and a handle that holds another key is refused. swtpm has
  only three transient slots and no resource manager: the transient objects tpm2-tools
  leaves behind are flushed by handle.
* Per job: the job PCR (23, resettable at locality 0) is reset, then extended with one event
  per measurement (the model, the job's input digest when given, the result hash), each
  recorded in a TCG PC Client crypto-agile log (:mod:`enclave_worker.tcg_log`) with its digest
  in every active bank; then ``tpm2_quote`` over the selected PCRs (default sha256:0-7,23)
  with extraData = ``report_data(nonce, result)`` (64 bytes: nonce || SHA-256 of the result
  binding) or, with ``bind_result=False``, the 32-byte nonce alone. swtpm accepts 64 bytes of
  extraData (its TPM2B_DATA holds a TPMT_HA, 66); tpm2-tools refuses more than 64.
* Before the evidence leaves, the attester checks what it can: the quote's magic, type and
  extraData, that its pcrDigest is the SHA-256 of the PCR values read back, and that the log
  replays to the job PCR's value (another process extending it would be caught here).

Failures of the TPM or of a tool raise :class:`TpmError`, naming the command and its stderr.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from enclave_worker.attester import Evidence
from enclave_worker.binding import NONCE_SIZE, ResultDigest, report_data
from enclave_worker.tcg_log import BANKS, EventLogWriter

__all__ = [
    "AK_TYPES",
    "DEFAULT_PCRS",
    "EK_CERTIFICATE_INDEX",
    "EK_HANDLE",
    "FORMAT",
    "PCR_COUNT",
    "TPM2_QUOTE",
    "Quote",
    "TpmAttester",
    "TpmError",
    "check_quote",
    "job_events",
]

TPM2_QUOTE: Final = "tpm2-quote"
FORMAT: Final = "tpm2-quote/v1"
#: The TCG's handle for the RSA-2048 EK and the NV index of its certificate (TCG EK
#: Credential Profile 2.0, section 2.2.1.4 and 2.2.1.5).
EK_HANDLE: Final = 0x81010001
EK_CERTIFICATE_INDEX: Final = 0x01C00002
#: The AK types, with tpm2_createak's key, hash and scheme, and their persistent handles.
AK_TYPES: Final = {"ecc": ("ecc256", "ecdsa", 0x81008001), "rsa": ("rsa2048", "rsassa", 0x81008002)}
#: The PCR a job is measured into (resettable at locality 0) and the PCRs quoted by default.
JOB_PCR: Final = 23
#: A PC Client TPM's PCRs per bank (0..23).
PCR_COUNT: Final = 24
DEFAULT_PCRS: Final = (0, 1, 2, 3, 4, 5, 6, 7)
_TOOL_TIMEOUT: Final = 60.0
_MAGIC: Final = 0xFF544347
_ST_ATTEST_QUOTE: Final = 0x8018
_ALG_NAMES: Final = {alg_id: bank for bank, (alg_id, _) in BANKS.items()}
_EVENT_PREFIX: Final = b"attestation-ledger:"


class TpmError(RuntimeError):
    """The TPM or a tpm2-tools command failed, or gave something the attester refuses."""


def job_events(
    model: str, result: ResultDigest, input_sha256: bytes | None = None
) -> tuple[bytes, ...]:
    """The events a job is measured with, in order: the model, the input's SHA-256 (when
    given) and the result hash. A verifier's policy can list the first by its digest."""
    events = [_EVENT_PREFIX + b"model:" + model.encode()]
    if input_sha256 is not None:
        if len(input_sha256) != 32:
            raise ValueError(f"an input SHA-256 has 32 bytes, not {len(input_sha256)}")
        events.append(_EVENT_PREFIX + b"input:sha256:" + input_sha256.hex().encode())
    events.append(_EVENT_PREFIX + b"result:" + result.text().encode())
    return tuple(events)


@dataclass(frozen=True)
class Quote:
    """A quote as the attester read it back, before it goes into the container."""

    attest: bytes
    signature: bytes
    extra_data: bytes
    pcr_digest: bytes
    pcrs: Mapping[str, Mapping[int, bytes]]


class _Tools:
    """tpm2-tools over one TCTI."""

    def __init__(self, tcti: str) -> None:
        self.tcti = tcti

    def run(self, tool: str, *args: str) -> str:
        if shutil.which(tool) is None:
            raise TpmError(f"{tool} is not installed (Debian: apt-get install tpm2-tools)")
        env = {**os.environ, "TPM2TOOLS_TCTI": self.tcti}
        command = [tool, *args]
        try:
            done = subprocess.run(  # noqa: S603 - a tpm2-tools command, arguments built here
                command, capture_output=True, env=env, timeout=_TOOL_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise TpmError(f"{tool} did not finish within {_TOOL_TIMEOUT} s") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()
            raise TpmError(
                f"{tool} {' '.join(args[:1])} failed with status {done.returncode} "
                f"(TCTI {self.tcti}): {stderr[-1500:] or 'no message'}"
            )
        return done.stdout.decode(errors="replace")

    def transient_handles(self) -> set[str]:
        return set(re.findall(r"0x80[0-9a-fA-F]{6}", self.run("tpm2_getcap", "handles-transient")))

    def persistent_handles(self) -> set[int]:
        listed = self.run("tpm2_getcap", "handles-persistent")
        return {int(handle, 16) for handle in re.findall(r"0x81[0-9a-fA-F]{6}", listed)}

    def active_banks(self) -> dict[str, set[int]]:
        """Each allocated PCR bank with the PCRs it has (``tpm2_getcap pcrs``)."""
        banks: dict[str, set[int]] = {}
        for name, indexes in re.findall(
            r"-\s*(\w+):\s*\[([^\]]*)\]", self.run("tpm2_getcap", "pcrs")
        ):
            selected = {int(index) for index in re.findall(r"\d+", indexes)}
            if name in BANKS and selected:
                banks[name] = selected
        return banks


def encode_container(container: dict[str, Any]) -> bytes:
    """The container's bytes: a definite map whose first key is ``format``, then the other
    keys in canonical (RFC 8949 length-first) order, every value canonically encoded."""
    rest = {k: v for k, v in container.items() if k != "format"}
    ordered = sorted(rest, key=lambda k: cbor2.dumps(k, canonical=True))
    body = b"".join(
        cbor2.dumps(key, canonical=True) + cbor2.dumps(container[key], canonical=True)
        for key in ["format", *ordered]
        if key in container
    )
    if len(container) > 23:  # a one-byte map header (major type 5) counts up to 23
        raise TpmError(f"a container has at most 23 keys, not {len(container)}")
    return bytes([0xA0 + len(container)]) + body


class TpmAttester:
    """Quotes from a TPM over a TCTI, with the job measured into a PCR and logged."""

    kind = TPM2_QUOTE

    def __init__(
        self,
        tcti: str,
        state_dir: Path,
        *,
        ak_type: str = "ecc",
        pcr: int = JOB_PCR,
        banks: Sequence[str] = ("sha256",),
        pcrs: Sequence[int] = DEFAULT_PCRS,
        model: str = "demo-inference",
        bind_result: bool = True,
        ak_handle: int | None = None,
        ek_handle: int = EK_HANDLE,
    ) -> None:
        """``state_dir`` keeps the AK's public key (to recognise it at its handle) and the
        last job's event log; ``banks`` and ``pcrs``: what is quoted (``pcr`` always is);
        ``model``: what the first event of every job names; ``bind_result``: 64 bytes of
        extraData (nonce and result binding) rather than the nonce alone."""
        if ak_type not in AK_TYPES:
            raise ValueError(f"the AK type is one of {sorted(AK_TYPES)}, not {ak_type!r}")
        if not 0 <= pcr <= 23 or any(not 0 <= index <= 23 for index in pcrs):
            raise ValueError(f"PCR indexes are 0..23, not {pcr} and {sorted(pcrs)}")
        if not banks or any(bank not in BANKS for bank in banks):
            raise ValueError(f"the banks are among {sorted(BANKS)}, not {list(banks)}")
        self.tools = _Tools(tcti)
        self.state_dir = state_dir
        self.ak_type = ak_type
        self.pcr = pcr
        self.banks = tuple(dict.fromkeys(banks))
        self.pcrs = tuple(sorted({*pcrs, pcr}))
        self.model = model
        self.bind_result = bind_result
        self.ak_handle = AK_TYPES[ak_type][2] if ak_handle is None else ak_handle
        self.ek_handle = ek_handle
        self._lock = threading.Lock()
        state_dir.mkdir(parents=True, exist_ok=True)
        active = self.tools.active_banks()
        missing = [bank for bank in self.banks if self.pcr not in active.get(bank, set())]
        if missing:
            raise TpmError(
                f"this TPM has no {' or '.join(missing)} bank with PCR {self.pcr} "
                f"(its banks: {', '.join(sorted(active)) or 'none'})"
            )
        #: The banks the job PCR is extended in: every allocated one, so the log covers all.
        self.log_banks = tuple(bank for bank in BANKS if self.pcr in active.get(bank, set()))
        self._ak_der = self._load_or_create_ak()

    # Keys.

    @property
    def _ak_record(self) -> Path:
        return self.state_dir / f"ak-{self.ak_type}-{self.ak_handle:08x}.der"

    def _read_public(self, handle: int) -> bytes:
        with tempfile.TemporaryDirectory(prefix="tpm-") as scratch:
            out = Path(scratch) / "public.der"
            self.tools.run("tpm2_readpublic", "-c", f"0x{handle:08x}", "-f", "der", "-o", str(out))
            return out.read_bytes()

    def _load_or_create_ak(self) -> bytes:
        persistent = self.tools.persistent_handles()
        record = self._ak_record.read_bytes() if self._ak_record.exists() else None
        if self.ak_handle in persistent:
            found = self._read_public(self.ak_handle)
            if record != found:
                raise TpmError(
                    f"the TPM's persistent handle 0x{self.ak_handle:08x} holds a key that this "
                    f"attester did not make (no matching {self._ak_record}); choose another AK "
                    "handle or evict it"
                )
            return found
        before = self.tools.transient_handles()
        try:
            if self.ek_handle not in persistent:
                self.tools.run("tpm2_createek", "-c", f"0x{self.ek_handle:08x}", "-G", "rsa")
            with tempfile.TemporaryDirectory(prefix="tpm-") as scratch:
                context = str(Path(scratch) / "ak.ctx")
                key, scheme, _ = AK_TYPES[self.ak_type]
                self.tools.run(
                    "tpm2_createak", "-C", f"0x{self.ek_handle:08x}", "-c", context,
                    "-G", key, "-g", "sha256", "-s", scheme,
                )  # fmt: skip
                self.tools.run(
                    "tpm2_evictcontrol", "-C", "o", "-c", context, f"0x{self.ak_handle:08x}"
                )
        finally:
            for handle in sorted(self.tools.transient_handles() - before):
                self.tools.run("tpm2_flushcontext", handle)
        public = self._read_public(self.ak_handle)
        self._ak_record.write_bytes(public)
        return public

    def ak_public_der(self) -> bytes:
        """The AK's SubjectPublicKeyInfo, DER (what the container's ``ak`` carries)."""
        return self._ak_der

    def ak_public_pem(self) -> bytes:
        """The AK's public key, PEM, for enrolment with the service."""
        key = serialization.load_der_public_key(self._ak_der)
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise TpmError(f"the AK is a {type(key).__name__}, not an ECC or RSA key")
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def ek_certificate(self) -> bytes | None:
        """The EK's certificate (DER) from its NV index, if the TPM has one (a manufactured
        swtpm or a platform TPM does)."""
        listed = self.tools.run("tpm2_getcap", "handles-nv-index")
        if f"0x{EK_CERTIFICATE_INDEX:x}" not in listed.lower():
            return None
        with tempfile.TemporaryDirectory(prefix="tpm-") as scratch:
            out = Path(scratch) / "ek.der"
            self.tools.run("tpm2_nvread", f"0x{EK_CERTIFICATE_INDEX:08x}", "-o", str(out))
            data = out.read_bytes()
        # The NV index may be larger than the certificate: keep the DER SEQUENCE only.
        if len(data) < 4 or data[0] != 0x30 or data[1] != 0x82:
            raise TpmError("the EK certificate's NV index does not hold a DER certificate")
        return data[: 4 + int.from_bytes(data[2:4], "big")]

    # Jobs.

    def attest(
        self, *, nonce: bytes, result: ResultDigest, input_sha256: bytes | None = None
    ) -> Evidence:
        """Measure the job into the job PCR, quote with the nonce (and the result binding),
        and return the ``tpm2-quote`` container."""
        quote, event_log = self.measured_quote(
            nonce=nonce, result=result, input_sha256=input_sha256
        )
        return Evidence(self.kind, self.container(quote, event_log))

    def measured_quote(
        self, *, nonce: bytes, result: ResultDigest, input_sha256: bytes | None = None
    ) -> tuple[Quote, bytes]:
        """What :meth:`attest` sends, before it becomes a container: the job measured into
        the job PCR and quoted, checked against the job's log; the quote and that log."""
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"the challenge nonce must be {NONCE_SIZE} bytes, not {len(nonce)}")
        extra_data = report_data(nonce, result) if self.bind_result else nonce
        events = job_events(self.model, result, input_sha256)
        with self._lock:
            log = self._measure(events)
            quote = self.quote(extra_data)
            expected = _replay(log, self.pcr)
            for bank in self.banks:
                if quote.pcrs[bank][self.pcr] != expected[bank]:
                    raise TpmError(
                        f"PCR {self.pcr} ({bank}) is {quote.pcrs[bank][self.pcr].hex()}, not "
                        f"{expected[bank].hex()} as this job's log replays: something else "
                        "extended it"
                    )
            encoded_log = log.encode()
            (self.state_dir / "event_log.bin").write_bytes(encoded_log)
        return quote, encoded_log

    def container(
        self, quote: Quote, event_log: bytes, *, nitro_document: bytes | None = None
    ) -> bytes:
        """The ``tpm2-quote/v1`` container of ``quote`` (:func:`encode_container`), with a
        NitroTPM attestation document that vouches for the AK when one is given."""
        container: dict[str, Any] = {
            "format": FORMAT,
            "attest": quote.attest,
            "signature": quote.signature,
            "ak": self._ak_der,
            "pcrs": {bank: dict(values) for bank, values in quote.pcrs.items()},
            "event_log": event_log,
        }
        if nitro_document is not None:
            container["nitro_document"] = nitro_document
        return encode_container(container)

    def read_pcrs(self, bank: str) -> dict[int, bytes]:
        """Every PCR (0..23) of ``bank`` as the TPM holds it now (``tpm2_pcrread``)."""
        if bank not in BANKS:
            raise ValueError(f"the banks are among {sorted(BANKS)}, not {bank!r}")
        size = BANKS[bank][1]
        indexes = range(PCR_COUNT)
        with tempfile.TemporaryDirectory(prefix="tpm-") as scratch:
            out = Path(scratch) / "pcrs"
            self.tools.run(
                "tpm2_pcrread", f"{bank}:{','.join(map(str, indexes))}",
                "-o", str(out), "-F", "values",
            )  # fmt: skip
            values = out.read_bytes()
        if len(values) != size * PCR_COUNT:
            raise TpmError(
                f"tpm2_pcrread {bank} gave {len(values)} bytes, not {PCR_COUNT} values of {size}: "
                f"does this TPM have the {bank} bank?"
            )
        return {index: values[index * size : (index + 1) * size] for index in indexes}

    def _measure(self, events: Sequence[bytes]) -> EventLogWriter:
        log = EventLogWriter(self.log_banks)
        self.tools.run("tpm2_pcrreset", str(self.pcr))
        for label in events:
            event = log.measure(self.pcr, label)
            values = ",".join(f"{bank}={digest.hex()}" for bank, digest in event.digests)
            self.tools.run("tpm2_pcrextend", f"{self.pcr}:{values}")
        return log

    def quote(self, extra_data: bytes) -> Quote:
        """``tpm2_quote`` over the selected PCRs with ``extra_data`` (at most 64 bytes), the
        PCR values read back, and the attester's own checks of the result."""
        if len(extra_data) > 64:
            raise ValueError(f"extraData is at most 64 bytes, not {len(extra_data)}")
        indexes = ",".join(str(index) for index in self.pcrs)
        selection = "+".join(f"{bank}:{indexes}" for bank in self.banks)
        with tempfile.TemporaryDirectory(prefix="tpm-") as scratch:
            paths = {name: Path(scratch) / name for name in ("msg", "sig", "pcrs", "q")}
            paths["q"].write_bytes(extra_data)
            qualification = ("-q", str(paths["q"])) if extra_data else ()
            self.tools.run(
                "tpm2_quote", "-c", f"0x{self.ak_handle:08x}", "-l", selection,
                *qualification, "-g", "sha256",
                "-m", str(paths["msg"]), "-s", str(paths["sig"]),
                "-o", str(paths["pcrs"]), "-F", "values",
            )  # fmt: skip
            attest = paths["msg"].read_bytes()
            signature = paths["sig"].read_bytes()
            values = paths["pcrs"].read_bytes()
        return check_quote(attest, signature, extra_data, values)


def _replay(log: EventLogWriter, pcr: int) -> dict[str, bytes]:
    values = {bank: bytes(BANKS[bank][1]) for bank in log.banks}
    for event in log.events:
        if event.pcr == pcr:
            for bank, digest in event.digests:
                values[bank] = hashlib.new(bank, values[bank] + digest).digest()
    return values


def check_quote(attest: bytes, signature: bytes, extra_data: bytes, values: bytes) -> Quote:
    """The attester's own reading of its quote: TPMS_ATTEST (TPM 2.0 Library, Part 2,
    10.12.12) with TPMS_QUOTE_INFO, and the PCR values in the selection's order."""
    try:
        magic, kind, signer_size = struct.unpack_from(">IHH", attest)
        offset = 8 + signer_size
        (extra_size,) = struct.unpack_from(">H", attest, offset)
        quoted_extra = attest[offset + 2 : offset + 2 + extra_size]
        # clockInfo (17 bytes) and firmwareVersion (8) are not the attester's to check.
        offset += 2 + extra_size + 17 + 8
        (count,) = struct.unpack_from(">I", attest, offset)
        offset += 4
        selection: list[tuple[str, list[int]]] = []
        for _ in range(count):
            alg, size = struct.unpack_from(">HB", attest, offset)
            bitmap = attest[offset + 3 : offset + 3 + size]
            offset += 3 + size
            indexes = [i for i in range(8 * size) if bitmap[i // 8] >> (i % 8) & 1]
            selection.append((_ALG_NAMES[alg], indexes))
        (digest_size,) = struct.unpack_from(">H", attest, offset)
        pcr_digest = attest[offset + 2 : offset + 2 + digest_size]
        if offset + 2 + digest_size != len(attest):
            raise IndexError(
                f"{len(attest)} bytes, the pcrDigest ends at {offset + 2 + digest_size}"
            )
    except (struct.error, KeyError, IndexError) as exc:
        raise TpmError(f"tpm2_quote gave a TPMS_ATTEST this attester cannot read: {exc}") from exc
    if magic != _MAGIC or kind != _ST_ATTEST_QUOTE or quoted_extra != extra_data:
        raise TpmError(
            f"tpm2_quote gave magic 0x{magic:08x}, type 0x{kind:04x}, extraData "
            f"{quoted_extra.hex()}; expected 0x{_MAGIC:08x}, 0x{_ST_ATTEST_QUOTE:04x}, "
            f"{extra_data.hex()}"
        )
    pcrs: dict[str, dict[int, bytes]] = {}
    offset = 0
    for bank, indexes in selection:
        size = BANKS[bank][1]
        pcrs[bank] = {}
        for index in indexes:
            pcrs[bank][index] = values[offset : offset + size]
            offset += size
    if offset != len(values):
        raise TpmError(
            f"tpm2_quote read back {len(values)} bytes of PCR values; the selection needs {offset}"
        )
    if hashlib.sha256(values).digest() != pcr_digest:
        raise TpmError(
            "the PCR values read back do not hash to the quote's pcrDigest: a PCR changed "
            "between the quote and the read; quote again"
        )
    return Quote(attest, signature, extra_data, pcr_digest, pcrs)
