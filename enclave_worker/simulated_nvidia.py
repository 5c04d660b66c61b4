"""A simulated NVIDIA device PKI and GPUs (and NVSwitches) that sign SPDM attestation reports.
NOT NVIDIA: every certificate's CN ends in " (simulated)", and creating either warns.

The shapes are NVIDIA's as measured on the real chains and reports in tests/fixtures/nvidia
(``tests/enclave_worker/test_simulated_nvidia.py`` compares them):

* Device chain, 5 certificates, ECDSA P-384 with SHA-384 everywhere, valid to
  9999-12-31T23:59:59Z: ``NVIDIA Device Identity CA`` (root; CN, O=NVIDIA) ←
  ``NVIDIA GH100 Identity`` or ``NVIDIA GB100 Identity`` (CN, O=NVIDIA Corporation) ←
  ``NVIDIA GH100 Provisioner ICA 1``, ``NVIDIA GB100 Provisioner ICA 00000`` or ``NVIDIA
  LS_10 Provisioner ICA 1`` (under GH100 Identity, as NVIDIA's) (CN, O, C) ← the device's
  ``<chip> A01 GSP BROM`` (NVSwitch: ``LS_10 A01 FSP BROM``; serialNumber, C, O, CN; its
  serial number 0x41 and the 8-byte device id) ← ``<chip> A01 GSP FMC LF``, the leaf, whose
  key signs the reports. The root, identities and ICAs belong to :class:`SimulatedNvidiaPki`;
  the BROM key and certificate to the device (:class:`SimulatedGpu`), whose BROM issues the
  leaf for the firmware it runs. The leaf carries the FWID, the SHA-384 of that firmware:
  Hopper and LS10 in extension 2.23.133.5.4.1 (``SEQUENCE {1, the BROM's
  SubjectPublicKeyInfo, SEQUENCE {sha384, OCTET STRING fwid}}``: the value's last 48 bytes),
  Blackwell in the DICE TcbInfo extension 2.23.133.5.4.1.1 (``fwids[0]``).
* RIM signing chain: ``NVIDIA CoRIM signing Root CA`` (C, O, CN; 30 years) ← ``NVIDIA
  Reference Value CA`` (10 years) ← ``NVIDIA Reference Value L3 001`` (3 years, pathLen 0) ←
  ``HCC RIM L4 Signer`` (2 years, like NVIDIA's short-lived signers; renewed by
  :meth:`SimulatedNvidiaPki.load_or_create` when expired). :mod:`enclave_worker.simulated_rim`
  signs RIMs with it.
* Report: SPDM 1.1 GET_MEASUREMENTS request ``11 E0 01 FF``, requester nonce (32), slot 0,
  then the MEASUREMENTS response ``11 60 00 00``, the number of blocks (64 on GPUs, 31 on
  LS10), the record length (3 bytes LE), DMTF blocks (index, 1, size 51 LE, type 1, 48 LE,
  the SHA-384 value), the responder nonce (32), opaque data length (u16 LE) and TLVs (type u16
  LE, length u16 LE, value): 6 VBIOS version (8 binary bytes on GPUs, ASCII on LS10), 3 driver
  version (ASCII, NUL-terminated; not on LS10), 20 FWID (not on LS10), 35 chip info (not on
  LS10, as NVIDIA's switch report), 36 feature flag (u16 LE: 0 SPT, 1 MPT, 2 PPCIE), and the
  signature: raw r||s (48 bytes each) of ECDSA P-384 over the SHA-384 of everything before it.

Measurement values are derived from (arch, driver, VBIOS, image), and which blocks the driver
and VBIOS RIMs cover follows NVIDIA's GH100 RIMs (:data:`VBIOS_INDICES`, :data:`DRIVER_INDICES`).
Written independently of ``verifier/`` (it imports nothing from it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID, ObjectIdentifier

from enclave_worker.attester import Endorsement, Evidence
from enclave_worker.der import der, der_integer, der_octet_string, der_oid, der_sequence
from enclave_worker.persist import locked, write_atomically

__all__ = [
    "ARCHS",
    "DEVICE_ROOT_FILE",
    "DRIVER_INDICES",
    "FEATURE_FLAGS",
    "FILES",
    "HOPPER_FWID_OID",
    "NVIDIA_GPU",
    "RIM_ROOT_FILE",
    "TCB_INFO_OID",
    "VBIOS_INDICES",
    "NvidiaCa",
    "SimulatedGpu",
    "SimulatedNvidiaPki",
    "SimulatedNvidiaWarning",
    "simulated_gpu_measurements",
]

#: The evidence kind of GPUs and NVSwitches.
NVIDIA_GPU: Final = "nvidia-gpu"
SIMULATED: Final = " (simulated)"
ARCHS: Final = ("HOPPER", "BLACKWELL", "LS10")
#: Opaque field 36 (u16 LE): single GPU passthrough, multi-GPU, protected PCIe.
FEATURE_FLAGS: Final = {"SPT": 0, "MPT": 1, "PPCIE": 2}
HOPPER_FWID_OID: Final = "2.23.133.5.4.1"
TCB_INFO_OID: Final = "2.23.133.5.4.1.1"
_SAN_OID: Final = "1.3.6.1.4.1.412.274.1"
_SHA384_OID: Final = "2.16.840.1.101.3.4.2.2"
#: The persisted files: certificate and key per member of the PKI.
DEVICE_ROOT_FILE: Final = "device-root.pem"
RIM_ROOT_FILE: Final = "rim-root.pem"
FILES: Final = {
    "device_root": (DEVICE_ROOT_FILE, "device-root.key"),
    "gh100_identity": ("gh100-identity.pem", "gh100-identity.key"),
    "gb100_identity": ("gb100-identity.pem", "gb100-identity.key"),
    "hopper_ica": ("gh100-provisioner-ica.pem", "gh100-provisioner-ica.key"),
    "blackwell_ica": ("gb100-provisioner-ica.pem", "gb100-provisioner-ica.key"),
    "ls10_ica": ("ls10-provisioner-ica.pem", "ls10-provisioner-ica.key"),
    "rim_root": (RIM_ROOT_FILE, "rim-root.key"),
    "rim_ca": ("rim-ca.pem", "rim-ca.key"),
    "rim_l3": ("rim-l3.pem", "rim-l3.key"),
    "rim_signer": ("rim-signer.pem", "rim-signer.key"),
}
_END: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_RIM_ROOT_YEARS, _RIM_CA_YEARS, _RIM_L3_YEARS, _RIM_SIGNER_YEARS = 30, 10, 3, 2
# NVIDIA's hosts, under .invalid: nothing is fetched from them.
_CRL_BASE: Final = "http://crl.ndis.simulated-nvidia.invalid"
_OCSP: Final = "http://ocsp.ndis.simulated-nvidia.invalid"


@dataclass(frozen=True)
class _Arch:
    name: str
    #: The chip as NVIDIA's names and the report's chip info spell it.
    chip: str
    #: The members of the PKI that certify its devices, and the ICA's common name.
    identity: str
    ica: str
    ica_name: str
    #: The prefix of the BROM and FMC LF common names.
    device: str
    blocks: int
    #: GPUs report their driver version, FWID and chip info; NVSwitches do not.
    is_gpu: bool
    default_vbios: str


_ARCHS: Final = {
    "HOPPER": _Arch(
        name="HOPPER",
        chip="GH100",
        identity="gh100_identity",
        ica="hopper_ica",
        ica_name="NVIDIA GH100 Provisioner ICA 1",
        device="GH100 A01 GSP",
        blocks=64,
        is_gpu=True,
        default_vbios="96.00.a5.00.01",
    ),
    "BLACKWELL": _Arch(
        name="BLACKWELL",
        chip="GB100",
        identity="gb100_identity",
        ica="blackwell_ica",
        ica_name="NVIDIA GB100 Provisioner ICA 00000",
        device="GB100 A01 GSP",
        blocks=64,
        is_gpu=True,
        default_vbios="97.00.e4.00.11",
    ),
    "LS10": _Arch(
        name="LS10",
        chip="LS_10",
        identity="gh100_identity",  # NVIDIA's LS_10 ICA is under the GH100 Identity
        ica="ls10_ica",
        ica_name="NVIDIA LS_10 Provisioner ICA 1",
        device="LS_10 A01 FSP",
        blocks=31,
        is_gpu=False,
        default_vbios="96.10.55.00.01",
    ),
}
#: Measurement indices (RIM ``Resource index``; report block = index + 1) that the VBIOS and
#: driver RIMs cover, as NVIDIA's GH100 RIMs do; the rest are measured but in neither.
VBIOS_INDICES: Final = {
    "HOPPER": (*range(7), *range(8, 13)),
    "BLACKWELL": (*range(7), *range(8, 13)),
    "LS10": tuple(range(12)),
}
DRIVER_INDICES: Final = {
    "HOPPER": (7, *range(21, 41)),
    "BLACKWELL": (7, *range(21, 41)),
    "LS10": (),
}
_GPU_VBIOS = re.compile(r"[0-9A-Fa-f]{2}(\.[0-9A-Fa-f]{2}){4}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.\-_]{0,62}")
_P384_ORDER: Final = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


class SimulatedNvidiaWarning(UserWarning):
    """Emitted when a simulated (non-NVIDIA) device PKI or GPU is created."""


@dataclass(frozen=True)
class NvidiaCa:
    """A member of the PKI that signs: its certificate (DER) and private key."""

    der: bytes
    private_key: ec.EllipticCurvePrivateKey

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


# --- names, extensions, issuing --------------------------------------------------------------


def _cn(common_name: str) -> x509.NameAttribute[str]:
    return x509.NameAttribute(NameOID.COMMON_NAME, common_name + SIMULATED)


_O_NVIDIA = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NVIDIA")
_O_CORPORATION = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NVIDIA Corporation")
_C_US = x509.NameAttribute(NameOID.COUNTRY_NAME, "US")


def _device_name(common_name: str, serial: int) -> x509.Name:
    """NVIDIA's BROM and FMC LF names: serialNumber (the certificate's, hex), C, O, CN."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"{serial:X}"),
            _C_US,
            _O_CORPORATION,
            _cn(common_name),
        ]
    )


def _key_usage(
    *, sign: bool = False, cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _crl(path: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(f"{_CRL_BASE}/{path}")],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def _ocsp() -> x509.AuthorityInformationAccess:
    return x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(_OCSP)
            )
        ]
    )


def _ski(key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key)


def _aki(issuer_key: ec.EllipticCurvePublicKey) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier(
        key_identifier=_ski(issuer_key).digest,
        authority_cert_issuer=None,
        authority_cert_serial_number=None,
    )


def _serial(key: ec.EllipticCurvePublicKey, size: int = 16) -> int:
    """A positive serial number of ``size`` bytes from the key (NVIDIA's CAs have 16)."""
    digest = hashlib.sha256(_spki(key)).digest()[:size]
    return (int.from_bytes(digest, "big") >> 1) | (1 << (8 * size - 2))


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _issue(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    serial: int,
    start: datetime,
    end: datetime,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    certificate = builder.sign(signer, hashes.SHA384(), ecdsa_deterministic=True)
    return certificate.public_bytes(serialization.Encoding.DER)


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def _device_ca(
    member: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: NvidiaCa | None,
    start: datetime,
) -> NvidiaCa:
    """The device root, a chip Identity or a Provisioner ICA, in NVIDIA's shapes."""
    public = key.public_key()
    authority = issuer.private_key.public_key() if issuer else public
    ca_usage = _key_usage(cert_sign=True, crl_sign=True)
    extensions: list[tuple[x509.ExtensionType, bool]]
    if member == "device_root":
        name = x509.Name([_cn("NVIDIA Device Identity CA"), _O_NVIDIA])
        extensions = [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (ca_usage, True),
            (_ski(public), False),
            (_aki(authority), False),
        ]
    elif member.endswith("_identity"):
        chip = member.removesuffix("_identity").upper()
        name = x509.Name([_cn(f"NVIDIA {chip} Identity"), _O_CORPORATION])
        extensions = [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (ca_usage, True),
            (_crl("crl/l1-root.crl"), False),
            (_ocsp(), False),
            (_ski(public), False),
            (_aki(authority), False),
        ]
    else:
        arch = _ARCHS[member.removesuffix("_ica").upper()]
        name = x509.Name([_cn(arch.ica_name), _O_CORPORATION, _C_US])
        extensions = [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (ca_usage, True),
            (_crl(f"crl/l2-{arch.identity.removesuffix('_identity')}.crl"), False),
            (_ocsp(), False),
            (_ski(public), False),
            (_aki(authority), False),
        ]
    der_bytes = _issue(
        subject=name,
        key=public,
        issuer=issuer.certificate.subject if issuer else name,
        signer=issuer.private_key if issuer else key,
        serial=_serial(public),
        start=start,
        end=_END,
        extensions=extensions,
    )
    return NvidiaCa(der_bytes, key)


def _rim_ca(
    member: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: NvidiaCa | None,
    start: datetime,
) -> NvidiaCa:
    """A member of the RIM signing chain, in NVIDIA's shapes."""
    public = key.public_key()
    authority = issuer.private_key.public_key() if issuer else public
    ca_usage = _key_usage(cert_sign=True, crl_sign=True)
    extensions: list[tuple[x509.ExtensionType, bool]]
    serial = _serial(public)
    if member == "rim_root":
        name = x509.Name([_C_US, _O_NVIDIA, _cn("NVIDIA CoRIM signing Root CA")])
        years = _RIM_ROOT_YEARS
        extensions = [
            (_ski(public), False),
            (_aki(authority), False),
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (ca_usage, True),
        ]
    elif member == "rim_ca":
        name = x509.Name([_cn("NVIDIA Reference Value CA"), _O_CORPORATION, _C_US])
        years = _RIM_CA_YEARS
        extensions = [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (ca_usage, True),
            (_crl("crl-corim/l1-corim"), False),
            (_ocsp(), False),
            (_ski(public), False),
            (_aki(authority), False),
        ]
    elif member == "rim_l3":
        name = x509.Name([_cn("NVIDIA Reference Value L3 001"), _O_CORPORATION, _C_US])
        years = _RIM_L3_YEARS
        extensions = [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (ca_usage, True),
            (_ocsp(), False),
            (_ski(public), False),
            (_aki(authority), False),
        ]
    else:
        name = x509.Name(
            [
                _C_US,
                x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
                _O_CORPORATION,
                _cn("HCC RIM L4 Signer"),
            ]
        )
        years = _RIM_SIGNER_YEARS
        serial = _serial(public, size=8)
        extensions = [
            (_ski(public), False),
            (_aki(authority), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(sign=True), True),
            (_ocsp(), False),
        ]
    der_bytes = _issue(
        subject=name,
        key=public,
        issuer=issuer.certificate.subject if issuer else name,
        signer=issuer.private_key if issuer else key,
        serial=serial,
        start=start,
        end=_add_years(start, years),
        extensions=extensions,
    )
    return NvidiaCa(der_bytes, key)


@dataclass(frozen=True)
class SimulatedNvidiaPki:
    """A simulated NVIDIA Device Identity CA with its chip Identities and Provisioner ICAs, and
    a simulated CoRIM signing root with the chain that signs RIMs."""

    device_root: NvidiaCa
    gh100_identity: NvidiaCa
    gb100_identity: NvidiaCa
    hopper_ica: NvidiaCa
    blackwell_ica: NvidiaCa
    ls10_ica: NvidiaCa
    rim_root: NvidiaCa
    rim_ca: NvidiaCa
    rim_l3: NvidiaCa
    rim_signer: NvidiaCa

    @classmethod
    def generate(
        cls, *, at: datetime, keys: Mapping[str, ec.EllipticCurvePrivateKey] | None = None
    ) -> SimulatedNvidiaPki:
        """A new PKI valid from a day before ``at`` (aware). ``keys`` (by member, the keys of
        :data:`FILES`) reuses keys: the same keys and ``at`` give the same certificates."""
        if at.tzinfo is None:
            raise ValueError("'at' must be timezone-aware")
        warnings.warn(
            "a simulated NVIDIA device PKI is not NVIDIA: its reports prove nothing about hardware",
            SimulatedNvidiaWarning,
            stacklevel=2,
        )
        keys = dict(keys or {})
        unknown = set(keys) - set(FILES)
        if unknown:
            raise ValueError(f"unknown members {sorted(unknown)}; one of {sorted(FILES)}")
        for member in FILES:
            keys.setdefault(member, ec.generate_private_key(ec.SECP384R1()))
        start = (at - timedelta(days=1)).replace(microsecond=0)
        root = _device_ca("device_root", keys["device_root"], issuer=None, start=start)
        gh100 = _device_ca("gh100_identity", keys["gh100_identity"], issuer=root, start=start)
        gb100 = _device_ca("gb100_identity", keys["gb100_identity"], issuer=root, start=start)
        rim_root = _rim_ca("rim_root", keys["rim_root"], issuer=None, start=start)
        rim_ca = _rim_ca("rim_ca", keys["rim_ca"], issuer=rim_root, start=start)
        rim_l3 = _rim_ca("rim_l3", keys["rim_l3"], issuer=rim_ca, start=start)
        return cls(
            device_root=root,
            gh100_identity=gh100,
            gb100_identity=gb100,
            hopper_ica=_device_ca("hopper_ica", keys["hopper_ica"], issuer=gh100, start=start),
            blackwell_ica=_device_ca(
                "blackwell_ica", keys["blackwell_ica"], issuer=gb100, start=start
            ),
            ls10_ica=_device_ca("ls10_ica", keys["ls10_ica"], issuer=gh100, start=start),
            rim_root=rim_root,
            rim_ca=rim_ca,
            rim_l3=rim_l3,
            rim_signer=_rim_ca("rim_signer", keys["rim_signer"], issuer=rim_l3, start=start),
        )

    @classmethod
    def load_or_create(cls, directory: Path, *, at: datetime) -> SimulatedNvidiaPki:
        """The persisted PKI in ``directory`` (:data:`DEVICE_ROOT_FILE`,
        :data:`RIM_ROOT_FILE` and the others of :data:`FILES`, keys mode 0600), created on
        first use. A service that trusts the two roots trusts every report and RIM signed
        under them. A RIM signer not valid at ``at`` is renewed (same key) and saved."""
        if at.tzinfo is None:
            raise ValueError("'at' must be timezone-aware")
        directory.mkdir(parents=True, exist_ok=True)
        with locked(directory / ".lock"):
            if all((directory / name).exists() for pair in FILES.values() for name in pair):
                members = {
                    member: NvidiaCa(
                        _load_certificate(directory / certificate_file),
                        _load_key(directory / key_file),
                    )
                    for member, (certificate_file, key_file) in FILES.items()
                }
                pki = cls(**members)
                for member, expected in (
                    ("device_root", "NVIDIA Device Identity CA"),
                    ("rim_root", "NVIDIA CoRIM signing Root CA"),
                ):
                    found = _common_name(getattr(pki, member).certificate)
                    if found != expected + SIMULATED:
                        raise ValueError(
                            f"{directory / FILES[member][0]} is not a simulated NVIDIA root "
                            f"(its CN is {found!r})"
                        )
                signer = pki.rim_signer.certificate
                if not signer.not_valid_before_utc <= at <= signer.not_valid_after_utc:
                    start = (at - timedelta(days=1)).replace(microsecond=0)
                    renewed = _rim_ca(
                        "rim_signer", pki.rim_signer.private_key, issuer=pki.rim_l3, start=start
                    )
                    _save(directory, "rim_signer", renewed)
                    pki = cls(**{**members, "rim_signer": renewed})
                return pki
            warnings.warn(
                "creating a simulated NVIDIA device root: it is not NVIDIA and proves nothing "
                "about hardware",
                SimulatedNvidiaWarning,
                stacklevel=2,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SimulatedNvidiaWarning)
                pki = cls.generate(at=at)
            pki.save(directory)
            return pki

    def save(self, directory: Path) -> None:
        """Persist every member as :meth:`load_or_create` reads them (the roots last)."""
        directory.mkdir(parents=True, exist_ok=True)
        for member in reversed(FILES):
            _save(directory, member, getattr(self, member))

    def root_pem(self) -> bytes:
        """The device root, which a verifier pins."""
        return self.device_root.pem()

    def rim_root_pem(self) -> bytes:
        """The RIM signing root, which a verifier pins."""
        return self.rim_root.pem()

    def rim_chain(self) -> tuple[bytes, ...]:
        """The RIM signer's chain (DER), signer first, root last, as RIMs carry it."""
        return (self.rim_signer.der, self.rim_l3.der, self.rim_ca.der, self.rim_root.der)

    def device_cas(self, arch: str) -> tuple[NvidiaCa, NvidiaCa]:
        """The Provisioner ICA and chip Identity that certify devices of ``arch``."""
        spec = _arch(arch)
        return getattr(self, spec.ica), getattr(self, spec.identity)

    def issue_brom(
        self, public_key: ec.EllipticCurvePublicKey, *, arch: str, device_id: bytes
    ) -> bytes:
        """The DER BROM certificate (the device identity) of a device of ``arch`` whose
        8-byte id is ``device_id``, issued by its Provisioner ICA, valid as the ICA is."""
        spec = _arch(arch)
        if len(device_id) != 8:
            raise ValueError(f"a device id is 8 bytes, not {len(device_id)}")
        if not isinstance(public_key.curve, ec.SECP384R1):
            raise ValueError("a BROM key is on P-384")
        ica, _identity = self.device_cas(arch)
        ica_certificate = ica.certificate
        serial = int.from_bytes(b"\x41" + device_id, "big")
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (_key_usage(cert_sign=True), True),
        ]
        if spec.name == "BLACKWELL":
            extensions.append((_ocsp(), False))
        extensions += [
            (_ski(public_key), False),
            (_aki(ica.private_key.public_key()), False),
        ]
        return _issue(
            subject=_device_name(f"{spec.device} BROM", serial),
            key=public_key,
            issuer=ica_certificate.subject,
            signer=ica.private_key,
            serial=serial,
            start=ica_certificate.not_valid_before_utc,
            end=_END,
            extensions=extensions,
        )


def _arch(arch: str) -> _Arch:
    spec = _ARCHS.get(arch)
    if spec is None:
        raise ValueError(f"unknown NVIDIA architecture {arch!r}; one of {list(ARCHS)}")
    return spec


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


# --- the device ------------------------------------------------------------------------------


def simulated_gpu_measurements(
    arch: str, *, driver: str, vbios: str, image: str = "default"
) -> tuple[bytes, ...]:
    """The SHA-384 measurement values (block 1 first) a simulated device of ``arch`` reports
    running ``driver``, ``vbios`` and ``image``: what the VBIOS RIM covers depends on the
    VBIOS, what the driver RIM covers on the driver, everything on the image."""
    spec = _arch(arch)
    vbios_indices, driver_indices = set(VBIOS_INDICES[arch]), set(DRIVER_INDICES[arch])
    values = []
    for index in range(spec.blocks):
        if index in vbios_indices:
            source = f"VBIOS {vbios.lower()}"
        elif index in driver_indices:
            source = f"driver {driver}"
        else:
            source = "runtime"
        label = f"simulated NVIDIA {arch} {source} image {image} measurement {index}"
        values.append(hashlib.sha384(label.encode()).digest())
    return tuple(values)


def _derive_key(secret: bytes, label: bytes) -> ec.EllipticCurvePrivateKey:
    seed = hmac.digest(secret, label, "sha384")
    scalar = int.from_bytes(seed, "big") % (_P384_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP384R1())


def _vbios_bytes(arch: _Arch, vbios: str) -> bytes:
    """Opaque field 6: ASCII on LS10; on GPUs 8 bytes, ``96.00.a5.00.01`` as
    ``00 a5 00 96 01 00 00 00`` (NVIDIA prints bytes 3.2.1.0.4)."""
    if arch.name == "LS10":
        return vbios.encode("ascii")
    parts = bytes.fromhex(vbios.replace(".", ""))
    return bytes([parts[3], parts[2], parts[1], parts[0], parts[4], 0, 0, 0])


def _tlv(kind: int, value: bytes) -> bytes:
    return kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value


def _hopper_fwid(brom_key: ec.EllipticCurvePublicKey, fwid: bytes) -> bytes:
    """The value of Hopper's extension 2.23.133.5.4.1, as NVIDIA's GH100 and LS_10 leaves."""
    return der_sequence(
        der_integer(1),
        _spki(brom_key),
        der_sequence(der_oid(_SHA384_OID), der_octet_string(fwid)),
    )


def _tcb_info(model: str, fwid: bytes) -> bytes:
    """A DICE TcbInfo (2.23.133.5.4.1.1) as NVIDIA's GB100 leaf: vendor, model, version, svn,
    layer, index, fwids (the firmware's, then zeros), flags, vendorInfo, type."""

    def fwid_entry(digest: bytes) -> bytes:
        return der_sequence(der_oid(_SHA384_OID), der_octet_string(digest))

    return der_sequence(
        der(0x80, b"NVIDIA"),
        der(0x81, model.encode()),
        der(0x82, b"01"),
        der(0x83, b"\x01"),
        der(0x84, b"\x00"),
        der(0x85, b"\x00"),
        der(0xA6, fwid_entry(fwid) + fwid_entry(bytes(48))),
        der(0x87, bytes.fromhex("0080000001")),
        der(0x88, b"\xc0"),
        der(0x89, b"\x00"),
    )


class SimulatedGpu:
    """A simulated NVIDIA GPU (or NVSwitch, ``arch="LS10"``) whose FMC signs SPDM reports.
    Warns when created; its reports prove nothing about hardware.

    The device's BROM key comes from ``secret`` (random unless given); its leaf (FMC LF)
    key, like a DICE alias key, from the secret and the firmware's FWID, so a device keeps
    its identity across :meth:`variant` and gets another leaf for other firmware.
    """

    kind = NVIDIA_GPU

    def __init__(
        self,
        pki: SimulatedNvidiaPki,
        *,
        arch: str = "HOPPER",
        driver: str = "590.12",
        vbios: str | None = None,
        feature_flag: str | None = None,
        image: str = "default",
        secret: bytes | None = None,
        blocks: Mapping[int, bytes] | None = None,
        opaque_fwid: bytes | None = None,
        foreign_key: bool = False,
    ) -> None:
        """``vbios`` defaults to the real sample's of the arch; ``feature_flag`` (SPT, MPT,
        PPCIE) to SPT on GPUs and none (no field) on LS10, as NVIDIA's switch report.

        Bad modes, for negative tests: ``blocks`` replaces measurement values (by block
        number, 1-based as in the report), ``opaque_fwid`` puts another FWID in the opaque
        data than the leaf's, ``foreign_key`` signs with a key the chain does not certify.
        """
        spec = _arch(arch)
        vbios = spec.default_vbios if vbios is None else vbios
        if spec.name == "LS10":
            if not _VERSION.fullmatch(vbios):
                raise ValueError(f"not a switch BIOS version: {vbios!r}")
        elif not _GPU_VBIOS.fullmatch(vbios):
            raise ValueError(f"a GPU VBIOS version is five hex bytes (96.00.a5.00.01): {vbios!r}")
        if not _VERSION.fullmatch(driver):
            raise ValueError(f"not a driver version: {driver!r}")
        if feature_flag is None and spec.name != "LS10":
            feature_flag = "SPT"
        if feature_flag is not None and feature_flag not in FEATURE_FLAGS:
            raise ValueError(f"unknown feature flag {feature_flag!r}; one of {list(FEATURE_FLAGS)}")
        if opaque_fwid is not None and len(opaque_fwid) != 48:
            raise ValueError(f"an FWID is 48 bytes, not {len(opaque_fwid)}")
        warnings.warn(
            "SimulatedGpu signs with a simulated NVIDIA device PKI, not NVIDIA hardware",
            SimulatedNvidiaWarning,
            stacklevel=2,
        )
        self.pki = pki
        self.arch = spec.name
        self.driver = driver
        self.vbios = vbios
        self.feature_flag = feature_flag
        self.image = image
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self.measurements = simulated_gpu_measurements(
            arch, driver=driver, vbios=vbios, image=image
        )
        reported = list(self.measurements)
        for block, value in (blocks or {}).items():
            if not 1 <= block <= spec.blocks:
                raise ValueError(f"a {arch} report has blocks 1 to {spec.blocks}, not {block}")
            if len(value) != 48:
                raise ValueError(f"a measurement is 48 bytes, not {len(value)}")
            reported[block - 1] = value
        self._reported = tuple(reported)
        self._blocks = dict(blocks or {})
        self._opaque_fwid = opaque_fwid
        self._foreign_key = foreign_key
        #: The SHA-384 of the FMC firmware: in the leaf and (GPUs) the opaque data.
        self.fwid = hashlib.sha384(
            f"simulated NVIDIA {arch} FMC firmware {vbios.lower()}".encode()
        ).digest()
        self.device_id = hmac.digest(self.secret, b"simulated NVIDIA device id", "sha256")[:8]
        self._brom_key = _derive_key(self.secret, b"simulated NVIDIA BROM")
        self.leaf_key = _derive_key(self.secret, b"simulated NVIDIA FMC LF " + self.fwid)
        self._signing_key = (
            ec.generate_private_key(ec.SECP384R1()) if foreign_key else self.leaf_key
        )
        self.brom = pki.issue_brom(self._brom_key.public_key(), arch=arch, device_id=self.device_id)
        self.leaf = self._issue_leaf()

    @property
    def chip(self) -> str:
        """The chip as NVIDIA names it: GH100, GB100, LS_10."""
        return _ARCHS[self.arch].chip

    @property
    def reported_measurements(self) -> tuple[bytes, ...]:
        """The values the reports carry (the measurements, with ``blocks`` applied)."""
        return self._reported

    def _issue_leaf(self) -> bytes:
        spec = _ARCHS[self.arch]
        brom = x509.load_der_x509_certificate(self.brom)
        public = self.leaf_key.public_key()
        serial = _serial(public, size=20)
        if spec.name == "BLACKWELL":
            fwid_extension = x509.UnrecognizedExtension(
                ObjectIdentifier(TCB_INFO_OID), _tcb_info(spec.device, self.fwid)
            )
        else:
            fwid_extension = x509.UnrecognizedExtension(
                ObjectIdentifier(HOPPER_FWID_OID),
                _hopper_fwid(self._brom_key.public_key(), self.fwid),
            )
        device_name = f"NVIDIA:{spec.chip}:{self.device_id.hex().upper()}"
        san = x509.SubjectAlternativeName(
            [x509.OtherName(ObjectIdentifier(_SAN_OID), der(0x0C, device_name.encode()))]
        )
        return _issue(
            subject=_device_name(f"{spec.device} FMC LF", serial),
            key=public,
            issuer=brom.subject,
            signer=self._brom_key,
            serial=serial,
            start=brom.not_valid_before_utc,
            end=_END,
            extensions=[
                (_key_usage(sign=True), True),
                (_ski(public), False),
                (_aki(self._brom_key.public_key()), False),
                (san, False),
                (fwid_extension, False),
            ],
        )

    def chain(self) -> tuple[bytes, ...]:
        """The device chain (DER), leaf first, root last, as NVIDIA's evidence carries it."""
        ica, identity = self.pki.device_cas(self.arch)
        return (self.leaf, self.brom, ica.der, identity.der, self.pki.device_root.der)

    def endorsements(self) -> tuple[Endorsement, ...]:
        return tuple(Endorsement("device-certificate", der_bytes) for der_bytes in self.chain())

    def opaque_data(self) -> bytes:
        """The MEASUREMENTS response's opaque TLVs."""
        spec = _ARCHS[self.arch]
        fields = [_tlv(6, _vbios_bytes(spec, self.vbios))]
        if spec.is_gpu:
            fields.append(_tlv(3, self.driver.encode("ascii") + b"\0"))
            fields.append(_tlv(20, self._opaque_fwid or self.fwid))
            fields.append(_tlv(35, spec.chip.encode("ascii") + b"\0"))
        if self.feature_flag is not None:
            fields.append(_tlv(36, FEATURE_FLAGS[self.feature_flag].to_bytes(2, "little")))
        return b"".join(fields)

    def report(self, nonce: bytes, *, responder_nonce: bytes | None = None) -> bytes:
        """The SPDM transcript: GET_MEASUREMENTS request carrying ``nonce`` (32 bytes) ||
        signed MEASUREMENTS response (its responder nonce random unless given)."""
        if len(nonce) != 32:
            raise ValueError(f"an SPDM nonce is 32 bytes, not {len(nonce)}")
        if responder_nonce is None:
            responder_nonce = secrets.token_bytes(32)
        elif len(responder_nonce) != 32:
            raise ValueError(f"an SPDM nonce is 32 bytes, not {len(responder_nonce)}")
        request = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce + b"\x00"
        record = b"".join(
            bytes([number, 1])
            + (3 + len(value)).to_bytes(2, "little")
            + b"\x01"
            + len(value).to_bytes(2, "little")
            + value
            for number, value in enumerate(self._reported, start=1)
        )
        opaque = self.opaque_data()
        response = (
            bytes([0x11, 0x60, 0x00, 0x00, len(self._reported)])
            + len(record).to_bytes(3, "little")
            + record
            + responder_nonce
            + len(opaque).to_bytes(2, "little")
            + opaque
        )
        signed = request + response
        signature = self._signing_key.sign(
            signed, ec.ECDSA(hashes.SHA384(), deterministic_signing=True)
        )
        r, s = decode_dss_signature(signature)
        return signed + r.to_bytes(48, "big") + s.to_bytes(48, "big")

    def evidence(self, nonce: bytes) -> Evidence:
        """A report over ``nonce`` with the device chain as endorsements."""
        return Evidence(self.kind, self.report(nonce), self.endorsements())

    def variant(
        self,
        *,
        driver: str | None = None,
        vbios: str | None = None,
        feature_flag: str | None = None,
        image: str | None = None,
        blocks: Mapping[int, bytes] | None = None,
        opaque_fwid: bytes | None = None,
        foreign_key: bool | None = None,
    ) -> SimulatedGpu:
        """The same device with other firmware or in a bad mode (see :meth:`__init__`);
        what is not given stays as it is."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedNvidiaWarning)
            return SimulatedGpu(
                self.pki,
                arch=self.arch,
                driver=self.driver if driver is None else driver,
                vbios=self.vbios if vbios is None else vbios,
                feature_flag=self.feature_flag if feature_flag is None else feature_flag,
                image=self.image if image is None else image,
                secret=self.secret,
                blocks=self._blocks if blocks is None else blocks,
                opaque_fwid=self._opaque_fwid if opaque_fwid is None else opaque_fwid,
                foreign_key=self._foreign_key if foreign_key is None else foreign_key,
            )


# --- persistence ------------------------------------------------------------------------------


def _save(directory: Path, member: str, ca: NvidiaCa) -> None:
    certificate_file, key_file = FILES[member]
    key_bytes = ca.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomically(directory / key_file, key_bytes, 0o600)
    write_atomically(directory / certificate_file, ca.pem(), 0o644)


def _load_certificate(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError(f"{path} is not a P-384 private key")
    return key
