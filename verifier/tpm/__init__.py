"""The TPM 2.0 scheme (``tpm2-quote``): a TPM2_Quote signed by an attestation key (AK), the
PCR values it covers, optional event logs, and whatever vouches for the AK: an AWS NitroTPM
attestation document, a Google AK certificate, or an enrolment in the ledger.

::

    structures.py  TPMS_ATTEST (ATTEST_QUOTE) and TPMT_SIGNATURE, parsed strictly
    evidence.py    the tpm2-quote/v1 CBOR container; from_json for published samples
    ak.py          the AK's public key and the quote signature
    eventlog.py    TCG PC Client event logs (and ima.py: the Linux IMA log), parsed, replayed
    replay.py      event logs replayed against the quoted PCRs
    nitrotpm.py    the aws-nitrotpm path: a NitroTPM document that binds the AK
    gcp.py         the gcp path: the AK certificate chained to a pinned Google root
    enrolment.py   the enrolled path: EnrolmentBook, StaticEnrolments
    roots.py       the pinned Google roots and intermediate (roots/), checked at load
    der.py         raw DER reads: certificate names, Google's GCE instance extension
    policy.py      TpmPolicy: images of PCRs and events, AK paths, all-reset
    appraisal.py   the quote against the policy, every violation collected
    claims.py      what the result carries
    verify.py      TpmVerifier, which ties the steps together
"""

from verifier.tpm.claims import AkEndorsement, TpmClaims
from verifier.tpm.enrolment import Enrolment, EnrolmentBook, StaticEnrolments
from verifier.tpm.evidence import FORMAT, TpmEvidence, encode, from_json, parse_container
from verifier.tpm.policy import (
    AK_PATHS,
    ExpectedEvent,
    TpmPolicy,
    TpmReferenceImage,
    UnsafeAcceptAnyTpmPolicy,
)
from verifier.tpm.roots import (
    GCP_EKAK_ROOT_SHA256,
    GCP_VTPM_ROOT_2018_SHA256,
    gcp_ekak_root,
    gcp_vtpm_root_2018,
    google_roots,
)
from verifier.tpm.structures import Attest, PcrSelection, TpmSignature
from verifier.tpm.verify import ParsedQuote, TpmVerifier, parse_quote

__all__ = [
    "AK_PATHS",
    "FORMAT",
    "GCP_EKAK_ROOT_SHA256",
    "GCP_VTPM_ROOT_2018_SHA256",
    "AkEndorsement",
    "Attest",
    "Enrolment",
    "EnrolmentBook",
    "ExpectedEvent",
    "ParsedQuote",
    "PcrSelection",
    "StaticEnrolments",
    "TpmClaims",
    "TpmEvidence",
    "TpmPolicy",
    "TpmReferenceImage",
    "TpmSignature",
    "TpmVerifier",
    "UnsafeAcceptAnyTpmPolicy",
    "encode",
    "from_json",
    "gcp_ekak_root",
    "gcp_vtpm_root_2018",
    "google_roots",
    "parse_container",
    "parse_quote",
]
