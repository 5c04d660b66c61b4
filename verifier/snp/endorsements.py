"""Which AMD endorsement an unlabelled certificate or CRL is, for tools that receive them as
files (``attest-ledger verify --endorsement FILE``) or in bulk.

Telling is not trusting: the kind only says where the verifier should try it. A VCEK carries
a hwID extension and a VLEK a cspID; the CAs are named as AMD names them: ``ARK-<line>``
(self-issued), ``SEV-<line>`` (ASK) and ``SEV-VLEK-<line>`` (ASVK).
"""

from __future__ import annotations

import re

from cryptography.x509.oid import NameOID

from verifier.scheme import EndorsementKind
from verifier.snp.vek import AMD_OID
from verifier.x509 import CERTIFICATE_PARSE_ERRORS, load_der_certificate, load_der_crl

__all__ = ["endorsement_kind_of"]

_ASVK = re.compile(r"SEV-VLEK-(Milan|Genoa|Turin)")
_ASK = re.compile(r"SEV-(Milan|Genoa|Turin)")
_ARK = re.compile(r"ARK-(Milan|Genoa|Turin)")


def endorsement_kind_of(der: bytes) -> EndorsementKind | None:
    """The kind of AMD endorsement ``der`` is, or None if it is none of them."""
    try:
        certificate = load_der_certificate(der, allow_zero_serial=True)
        oids = {extension.oid.dotted_string for extension in certificate.extensions}
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self_issued = certificate.subject == certificate.issuer
    except CERTIFICATE_PARSE_ERRORS:
        try:
            load_der_crl(der)
        except CERTIFICATE_PARSE_ERRORS:
            return None
        return EndorsementKind.CRL
    if f"{AMD_OID}.4" in oids and f"{AMD_OID}.5" not in oids:
        return EndorsementKind.VCEK
    if f"{AMD_OID}.5" in oids and f"{AMD_OID}.4" not in oids:
        return EndorsementKind.VLEK
    common_name = str(names[0].value) if len(names) == 1 else ""
    if _ARK.fullmatch(common_name) and self_issued:
        return EndorsementKind.ARK
    if _ASVK.fullmatch(common_name):
        return EndorsementKind.ASVK
    if _ASK.fullmatch(common_name):
        return EndorsementKind.ASK
    return None
