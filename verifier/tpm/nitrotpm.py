"""The ``aws-nitrotpm`` AK path: an AWS NitroTPM attestation document that vouches for the
quote's AK.

1. The document is verified as the Nitro scheme verifies one (:mod:`verifier.nitro`):
   COSE_Sign1 ES384, certificate path from the Nitro anchor to its signing certificate at
   the verification time ``at`` (so an archived document fails as ``expired`` once its
   short-lived chain has lapsed). It must be a NitroTPM document (``nitrotpm_pcrs``).
2. Its ``public_key`` must be the AK: 04||X||Y of an ECC AK (an RSA AK cannot be bound).
3. Its ``nonce`` must equal the quote's extraData (the first 32 bytes of a 64-byte one).
4. Its ``nitrotpm_pcrs[i]`` must equal the quoted SHA-384 PCR i for every quoted SHA-384 PCR.
   A quote without a SHA-384 bank has nothing to compare them with: the AK binding then rests
   on 2 and 3, and a note says so (the document's PCRs are not copied into the claims: they
   are not what the quote signed).

Any disagreement is ``ak_binding_invalid``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from verifier.errors import AkBindingInvalid, VerifierError
from verifier.nitro.chain import LinkCache, NitroLinkCache, verify_chain
from verifier.nitro.verify import parse_evidence
from verifier.scheme import EvidenceKind
from verifier.timefmt import iso_utc
from verifier.tpm.ak import AttestationKey
from verifier.tpm.structures import Attest
from verifier.x509 import CertificateInfo, TrustAnchor

__all__ = ["NitroTpmBinding", "NitroTpmVerifier"]

_NONCE_BYTES = 32


@dataclass(frozen=True, slots=True)
class NitroTpmBinding:
    certificates: tuple[CertificateInfo, ...]
    summary: Mapping[str, object]  # module_id, timestamp, sha256
    notes: tuple[str, ...]


class NitroTpmVerifier:
    def __init__(self, anchor: TrustAnchor, *, cache_size: int = 512) -> None:
        self.anchor = anchor
        self._links: NitroLinkCache = LinkCache(cache_size)
        self._leaves: NitroLinkCache = LinkCache(cache_size)

    def verify(
        self,
        document_bytes: bytes,
        attest: Attest,
        ak: AttestationKey,
        pcrs: Mapping[str, Mapping[int, bytes]],
        *,
        at: datetime,
        clock_skew: timedelta,
    ) -> NitroTpmBinding:
        envelope, document = parse_evidence(document_bytes)
        if document.kind is not EvidenceKind.AWS_NITRO_TPM:
            raise AkBindingInvalid(
                "nitro_document: is a Nitro Enclaves document (pcrs), not a NitroTPM one "
                "(nitrotpm_pcrs)"
            )
        chain = verify_chain(
            document.certificate,
            document.cabundle,
            anchor=self.anchor,
            at=at,
            clock_skew=clock_skew,
            cache=self._links,
            leaf_cache=self._leaves,
        )
        envelope.verify_signature(chain.signing_key)
        point = ak.ec_point()
        if point is None:
            raise AkBindingInvalid(
                f"nitro_document: a NitroTPM document binds an ECC AK; this AK is {ak.key}"
            )
        if document.public_key is None or not hmac.compare_digest(document.public_key, point):
            found = "none" if document.public_key is None else f"{len(document.public_key)} bytes"
            raise AkBindingInvalid(
                f"nitro_document: public_key ({found}) is not the AK's point 04||X||Y "
                f"(AK SHA-256 {ak.sha256})"
            )
        expected_nonce = (
            attest.extra_data[:_NONCE_BYTES]
            if len(attest.extra_data) == 2 * _NONCE_BYTES
            else attest.extra_data
        )
        if document.nonce is None or not hmac.compare_digest(document.nonce, expected_nonce):
            raise AkBindingInvalid(
                f"nitro_document: nonce is not the quote's extraData ({expected_nonce.hex()[:64]})"
            )
        notes: list[str] = []
        quoted = pcrs.get("sha384")
        if quoted is None:
            notes.append(
                "nitro_document: the quote has no sha384 bank, so nitrotpm_pcrs were not "
                "compared with it; the AK binding rests on public_key and nonce"
            )
        else:
            for index, value in quoted.items():
                found_pcr = document.pcrs.get(index)
                if found_pcr is None or not hmac.compare_digest(found_pcr, value):
                    raise AkBindingInvalid(
                        f"nitro_document: nitrotpm_pcrs[{index}] is not the quoted sha384 PCR "
                        f"{index} ({value.hex()[:32]}...)"
                    )
        summary = {
            "module_id": document.module_id,
            "timestamp": iso_utc(document.timestamp),
            "sha256": hashlib.sha256(document_bytes).hexdigest(),
        }
        return NitroTpmBinding(chain.certificates, summary, tuple(notes))


def describe_document(document_bytes: bytes) -> Mapping[str, object] | None:
    """The document's summary without verifying it (for display), or None."""
    try:
        _, document = parse_evidence(document_bytes)
    except VerifierError:
        return None
    return {
        "module_id": document.module_id,
        "timestamp": iso_utc(document.timestamp),
        "sha256": hashlib.sha256(document_bytes).hexdigest(),
    }
