"""A simulated AWS NitroTPM: swtpm's quote with the NitroTPM attestation document that vouches
for its AK, signed by a simulated Nitro PKI. NOT AWS, and it says so.

On an EC2 instance with NitroTPM, the NSM returns (through the TPM) an attestation document
for the instance's TPM: the Nitro document's envelope and PKI, ``module_id``
``i-<instance>-tpm0000000000000000``, ``nitrotpm_pcrs`` (the TPM's 24 SHA-384 PCRs) instead of
an enclave's ``pcrs``, ``public_key`` the AK's point (04||X||Y), ``user_data`` null and
``nonce`` the quote's nonce. That document is the AK's endorsement (the ``aws-nitrotpm`` path):
it ties the AK to a Nitro instance as a certificate ties a GCP vTPM's AK to Google.

:class:`SimulatedNitroTpm` does the same with a real software TPM and a simulated NSM: per job,
the :class:`~enclave_worker.tpm.TpmAttester`'s quote (which must quote the sha384 bank, so that
a verifier has quoted values to compare ``nitrotpm_pcrs`` with), then all 24 sha384 PCRs read
back with ``tpm2_pcrread`` (checked against the quoted ones: a PCR extended in between is
caught here), then the document, written and signed with the simulated NSM's own encoder and
COSE signing (:mod:`enclave_worker.simulated_nsm`), never the verifier's code, and put in the
container's ``nitro_document``. The AK must be an ECC key: a NitroTPM document binds a point,
so an RSA AK cannot be bound.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclave_worker.attester import Evidence
from enclave_worker.binding import NONCE_SIZE, ResultDigest
from enclave_worker.simulated_nsm import cose_sign1, encode_payload
from enclave_worker.simulated_pki import SimulatedNitroPki, SimulatedNitroWarning
from enclave_worker.tpm import PCR_COUNT, TPM2_QUOTE, TpmAttester, TpmError

__all__ = ["NITROTPM_BANK", "SimulatedNitroTpm"]

#: The bank NitroTPM documents carry (``nitrotpm_pcrs``), and the size of its values.
NITROTPM_BANK = "sha384"
_PCR_BYTES = 48
#: What follows the instance id in a NitroTPM document's module_id (as AWS writes it).
_MODULE_SUFFIX = "-tpm0000000000000000"


class SimulatedNitroTpm:
    """The attester of an EC2 instance's NitroTPM, simulated: ``tpm2-quote`` evidence whose
    AK a simulated NitroTPM document vouches for. Warns when created; never use it as proof."""

    kind = TPM2_QUOTE

    def __init__(
        self,
        tpm: TpmAttester,
        pki: SimulatedNitroPki,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``tpm``: an ECC-AK attester that quotes the sha384 bank; ``pki``: whose leaf
        signs the documents; ``clock``: the documents' timestamps (default: now)."""
        if tpm.ak_type != "ecc":
            raise ValueError(
                f"a NitroTPM document binds an ECC AK (public_key is its point 04||X||Y); an "
                f"{tpm.ak_type.upper()} AK cannot be bound: use an ECC AK"
            )
        if NITROTPM_BANK not in tpm.banks:
            raise ValueError(
                f"the TPM attester must quote the {NITROTPM_BANK} bank (it quotes "
                f"{', '.join(tpm.banks)}): a verifier compares nitrotpm_pcrs with the quoted "
                f"{NITROTPM_BANK} PCRs"
            )
        key = serialization.load_der_public_key(tpm.ak_public_der())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise TpmError(f"the TPM's ECC AK is a {type(key).__name__}")
        warnings.warn(
            "SimulatedNitroTpm signs NitroTPM documents with a simulated PKI, not AWS hardware, "
            "over a software TPM",
            SimulatedNitroWarning,
            stacklevel=2,
        )
        self.tpm = tpm
        self.pki = pki
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        #: The AK's point, the documents' ``public_key``.
        self.ak_point = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def module_id(self) -> str:
        return self.pki.instance_id + _MODULE_SUFFIX

    def attest(
        self,
        *,
        nonce: bytes,
        result: ResultDigest,
        input_sha256: bytes | None = None,
        timestamp: datetime | None = None,
    ) -> Evidence:
        """The TPM attester's quote of the job, with the NitroTPM document of its AK, its
        nonce and the TPM's sha384 PCRs in the container's ``nitro_document``."""
        with self._lock:
            quote, event_log = self.tpm.measured_quote(
                nonce=nonce, result=result, input_sha256=input_sha256
            )
            pcrs = self.tpm.read_pcrs(NITROTPM_BANK)
        for index, value in quote.pcrs[NITROTPM_BANK].items():
            if pcrs[index] != value:
                raise TpmError(
                    f"{NITROTPM_BANK} PCR {index} is {pcrs[index].hex()}, not "
                    f"{value.hex()} as quoted: it changed between the quote and the read; "
                    "quote again"
                )
        document = self.document(
            nonce=quote.extra_data[:NONCE_SIZE], pcrs=pcrs, timestamp=timestamp
        )
        return Evidence(self.kind, self.tpm.container(quote, event_log, nitro_document=document))

    def payload_fields(
        self,
        *,
        nonce: bytes | None,
        pcrs: Mapping[int, bytes],
        public_key: bytes | None = None,
        timestamp: datetime | None = None,
    ) -> dict[str, object]:
        """The payload map as a NitroTPM writes it, in its order; ``public_key`` defaults to
        the AK's point (tests pass another)."""
        if sorted(pcrs) != list(range(PCR_COUNT)) or any(
            len(value) != _PCR_BYTES for value in pcrs.values()
        ):
            raise ValueError(
                f"nitrotpm_pcrs are the {PCR_COUNT} {NITROTPM_BANK} PCRs 0..{PCR_COUNT - 1} of "
                f"{_PCR_BYTES} bytes"
            )
        moment = timestamp or self._clock()
        return {
            "module_id": self.module_id,
            "digest": "SHA384",
            "timestamp": int(moment.timestamp() * 1000),
            "nitrotpm_pcrs": dict(sorted(pcrs.items())),
            "certificate": self.pki.leaf.der,
            "cabundle": self.pki.cabundle(),
            "public_key": self.ak_point if public_key is None else public_key,
            "user_data": None,
            "nonce": nonce,
        }

    def document(
        self,
        *,
        nonce: bytes | None,
        pcrs: Mapping[int, bytes],
        public_key: bytes | None = None,
        timestamp: datetime | None = None,
    ) -> bytes:
        """A NitroTPM attestation document (untagged COSE_Sign1, ES384, indefinite-length
        payload map as documents since 2025), signed by the simulated leaf."""
        fields = self.payload_fields(
            nonce=nonce, pcrs=pcrs, public_key=public_key, timestamp=timestamp
        )
        return cose_sign1(encode_payload(fields), self.pki.leaf.private_key)
