"""The AWS Nitro scheme: attestation documents of Nitro Enclaves (``aws-nitro-enclave``) and
EC2 NitroTPM (``aws-nitro-tpm``), which share the envelope and the PKI.

::

    cbor.py       strict CBOR decoding (no duplicate keys, no tags, no trailing bytes)
    cose.py       the COSE_Sign1 envelope and its ES384 signature
    document.py   the attestation document's fields, typed and bounded
    trust.py      the pinned AWS Nitro Enclaves Root-G1 (roots/)
    chain.py      the certificate path from cabundle[0] to the signing certificate
    policy.py     reference images (PCRs), debug, freshness
    appraisal.py  the document against the policy, every violation collected
    claims.py     what the result carries: the document and each PCR's appraisal
    verify.py     NitroVerifier, which ties the steps together
"""

from verifier.nitro.claims import NitroClaims, PCRAppraisal
from verifier.nitro.cose import MAX_EVIDENCE_BYTES, COSESign1
from verifier.nitro.document import AttestationDocument
from verifier.nitro.policy import NITRO_KINDS, Policy, ReferenceImage, UnsafeAcceptAnyPolicy
from verifier.nitro.trust import AWS_NITRO_ROOT_G1_SHA256, aws_nitro_root_g1
from verifier.nitro.verify import DOCUMENT_TIME, NitroVerifier, parse_evidence

__all__ = [
    "AWS_NITRO_ROOT_G1_SHA256",
    "DOCUMENT_TIME",
    "MAX_EVIDENCE_BYTES",
    "NITRO_KINDS",
    "AttestationDocument",
    "COSESign1",
    "NitroClaims",
    "NitroVerifier",
    "PCRAppraisal",
    "Policy",
    "ReferenceImage",
    "UnsafeAcceptAnyPolicy",
    "aws_nitro_root_g1",
    "parse_evidence",
]
