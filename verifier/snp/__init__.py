"""The AMD SEV-SNP scheme (``amd-sev-snp``): attestation reports signed by a VCEK (per chip
and TCB) or a VLEK (per cloud provider), chained to AMD's root key of the product line.

::

    report.py     the 1184-byte ATTESTATION_REPORT, parsed strictly by its layout
    product.py    product lines (Milan, Genoa, Turin): CPUID, productName, TCB layout
    vek.py        the VCEK/VLEK certificate and its AMD extensions (SPLs, hwID, cspID)
    endorsements.py  which AMD endorsement an unlabelled certificate or CRL is
    roots.py      the pinned ARKs and their ASK/ASVK (roots/), checked at load
    chain.py      ARK -> ASK/ASVK -> VCEK/VLEK at the verification time, and CRLs
    policy.py     reference images (measurement, host_data, ID keys), guest policy, VMPL,
                  minimum TCB
    appraisal.py  the report against the policy, every violation collected
    claims.py     what the result carries: the report read for its product line, the key
    verify.py     SnpVerifier, which ties the steps together
"""

from verifier.snp.claims import SnpClaims
from verifier.snp.endorsements import endorsement_kind_of
from verifier.snp.policy import SnpPolicy, SnpReferenceImage, UnsafeAcceptAnySnpPolicy
from verifier.snp.product import ProductLine, TcbVersion
from verifier.snp.report import REPORT_BYTES, AttestationReport, GuestPolicy, SigningKey
from verifier.snp.roots import AMD_ARK_SHA256, amd_trust_store
from verifier.snp.vek import Vek, parse_vek
from verifier.snp.verify import SnpVerifier, parse_report

__all__ = [
    "AMD_ARK_SHA256",
    "REPORT_BYTES",
    "AttestationReport",
    "GuestPolicy",
    "ProductLine",
    "SigningKey",
    "SnpClaims",
    "SnpPolicy",
    "SnpReferenceImage",
    "SnpVerifier",
    "TcbVersion",
    "UnsafeAcceptAnySnpPolicy",
    "Vek",
    "amd_trust_store",
    "endorsement_kind_of",
    "parse_report",
    "parse_vek",
]
