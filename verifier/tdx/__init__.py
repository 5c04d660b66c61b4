"""The Intel DCAP scheme (``intel-tdx`` and ``intel-sgx``): ECDSA quotes signed by an
attestation key that Intel's quoting enclave certifies, whose report the platform's PCK
certificate signs, chained to the Intel SGX Root CA; judged with Intel's signed collateral.

::

    quote.py       the quote (SGX v3, TDX v4/v5, TD report 1.0/1.5), parsed by its lengths
    pck.py         the PCK certificate's SGX extension (FMSPC, TCB components, PCESVN)
    roots.py       the pinned Intel SGX Root CA (roots/), checked at load
    chain.py       PCK chain, TCB Signing certificate, PCK and Root CA CRLs
    collateral.py  TCB info and QE identity from their exact signed bytes; dcap-qvl JSON
    tcb.py         TCB level, TDX module identity, QE identity: status and advisories
    policy.py      TdxPolicy and SgxPolicy: images, debug, XFAM, SVNs, TCB status tiers
    appraisal.py   the quote against the policy, every violation collected
    claims.py      what the result carries
    verify.py      DcapVerifier, which ties the steps together
"""

from verifier.tdx.claims import DcapClaims
from verifier.tdx.collateral import endorsements_from_dcap_qvl_json
from verifier.tdx.pck import PckExtension
from verifier.tdx.policy import (
    SgxPolicy,
    SgxReferenceImage,
    TdxPolicy,
    TdxReferenceImage,
    UnsafeAcceptAnySgxPolicy,
    UnsafeAcceptAnyTdxPolicy,
)
from verifier.tdx.quote import EnclaveReport, Quote, TdReport, TeeType, parse_quote
from verifier.tdx.roots import INTEL_SGX_ROOT_CA_SHA256, intel_sgx_root_ca
from verifier.tdx.verify import DcapVerifier, unverified_pck

__all__ = [
    "INTEL_SGX_ROOT_CA_SHA256",
    "DcapClaims",
    "DcapVerifier",
    "EnclaveReport",
    "PckExtension",
    "Quote",
    "SgxPolicy",
    "SgxReferenceImage",
    "TdReport",
    "TdxPolicy",
    "TdxReferenceImage",
    "TeeType",
    "UnsafeAcceptAnySgxPolicy",
    "UnsafeAcceptAnyTdxPolicy",
    "endorsements_from_dcap_qvl_json",
    "intel_sgx_root_ca",
    "parse_quote",
    "unverified_pck",
]
