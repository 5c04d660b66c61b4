"""The simulated AMD PKI has AMD's certificate profile, measured on AMD's real certificates
(tests/fixtures/snp): names, serial numbers, validity, keys, extensions and their
criticality, and RSASSA-PSS signatures. Links are checked with plain ``cryptography``."""

from __future__ import annotations

import hashlib
import re
import stat
import warnings
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtensionOID, NameOID

from enclave_worker import SimulatedAmdPki, SimulatedAmdWarning, SimulatedSnpChip
from enclave_worker.simulated_amd import AMD_OID, der_integer
from enclave_worker.snp_report import PRODUCTS, Tcb
from tests.enclave_worker.snp_support import (
    SNP,
    amd_keys,
    amd_pki,
    fixture,
    fixture_certificate,
    load_certificate,
    snp_chip,
)
from tests.support import SIM_AT

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
# The fixture README's SHA-256 prefixes: the copies here are AMD's, byte for byte.
SHA256_PREFIX = {
    "amd_milan_ark.pem": "8c109952166431ff",
    "amd_milan_ask.pem": "8da3a65af1cb7cb9",
    "amd_genoa_ark.pem": "96bff94e97e2b7dd",
    "amd_genoa_ask.pem": "22fea250e0390b22",
    "amd_turin_ark.pem": "b69c981fe0216c3d",
    "amd_turin_ask.pem": "c72a54fb75a0a06b",
    "virtee_snp_vcek_milan.der": "3bbfb6ee259f75a9",
    "snp_oak_genoa_vcek.der": "b6563a6c7767990b",
    "virtee_snp_report_milan.bin": "120d77b213c8868d",
    "trustee_snp_test-vlek-report.bin": "decdab949afc5906",
    "trustee_snp_test-vlek.der": "296a7c99053efe4b",
    "snp_oak_genoa_v5_report.bin": "6d1ceffae6ad5cae",
}


@pytest.mark.parametrize("name", sorted(SHA256_PREFIX))
def test_the_fixtures_are_the_real_ones(name) -> None:
    assert hashlib.sha256(fixture(name)).hexdigest()[:16] == SHA256_PREFIX[name]


def signature_algorithm(certificate: x509.Certificate) -> bytes:
    """The certificate's outer AlgorithmIdentifier, as encoded."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    tbs = certificate.tbs_certificate_bytes
    rest = der[der.index(tbs) + len(tbs) :]
    assert rest[0] == 0x30
    assert rest[1] < 0x80
    return rest[: 2 + rest[1]]


def name_shape(name: x509.Name) -> list[tuple[str, object, str]]:
    """Each attribute's OID, ASN.1 string type and value, the CN without " (simulated)"."""
    return [
        (
            attribute.oid.dotted_string,
            attribute._type,
            str(attribute.value).removesuffix(" (simulated)"),
        )
        for attribute in name
    ]


def serial_number(certificate: x509.Certificate) -> int:
    with warnings.catch_warnings():  # serial 0: see snp_support.load_certificate
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return certificate.serial_number


def years(certificate: x509.Certificate) -> int:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    assert (end.month, end.day, end.time()) == (start.month, start.day, start.time())
    return end.year - start.year


def profile(certificate: x509.Certificate) -> dict[str, object]:
    """What must be AMD's: everything but keys, key ids, dates, URL hosts and values."""
    key = certificate.public_key()
    out: dict[str, object] = {
        "version": certificate.version,
        "signature_algorithm": signature_algorithm(certificate),
        "subject": name_shape(certificate.subject),
        "issuer": name_shape(certificate.issuer),
        "years": years(certificate),
        "key": (
            ("rsa", key.key_size, key.public_numbers().e)
            if isinstance(key, rsa.RSAPublicKey)
            else ("ec", key.curve.name)  # type: ignore[union-attr]
        ),
        "extensions": [(e.oid.dotted_string, e.critical) for e in certificate.extensions],
    }
    for extension in certificate.extensions:
        value = extension.value
        if isinstance(value, x509.BasicConstraints | x509.KeyUsage):
            out[extension.oid.dotted_string] = value
        elif isinstance(value, x509.SubjectKeyIdentifier):  # the SHA-1 of the key
            out["ski_method"] = value == x509.SubjectKeyIdentifier.from_public_key(key)  # type: ignore[arg-type]
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            out["aki_fields"] = (
                value.key_identifier is not None,
                value.authority_cert_issuer,
                value.authority_cert_serial_number,
            )
        elif isinstance(value, x509.CRLDistributionPoints):
            urls = [name.value for point in value for name in point.full_name or ()]
            out["crl_paths"] = [urlparse(url).path for url in urls]
        elif isinstance(value, x509.UnrecognizedExtension):
            out[extension.oid.dotted_string] = value.value[0]  # the DER tag (or raw hwID's)
    return out


@pytest.mark.parametrize("product", sorted(PRODUCTS))
@pytest.mark.parametrize("level", ["ark", "ask"])
def test_ark_and_ask_have_amds_profile(product, level) -> None:
    ours = getattr(amd_pki(product), level).certificate
    real = fixture_certificate(f"amd_{product.lower()}_{level}.pem")
    assert profile(ours) == profile(real)
    assert ours.serial_number == real.serial_number  # 0x10000, 0x10001, 0x20002...


@pytest.mark.parametrize(
    ("real_vcek", "product", "tcb"),
    [
        ("snp_oak_genoa_vcek.der", "Genoa", Tcb(10, 0, 25, 84)),
        ("virtee_snp_vcek_milan.der", "Milan", Tcb(3, 0, 8, 115)),
    ],
)
def test_vcek_has_amds_profile(real_vcek, product, tcb) -> None:
    pki = amd_pki(product)
    real = fixture_certificate(real_vcek)
    chip_id = real.extensions.get_extension_for_oid(x509.ObjectIdentifier(f"{AMD_OID}.4"))
    ours = load_certificate(
        pki.issue_vcek(
            ec.generate_private_key(ec.SECP384R1()).public_key(),
            chip_id=chip_id.value.value,  # type: ignore[attr-defined]
            tcb=tcb,
            at=SIM_AT,
        )
    )
    ours_profile, real_profile = profile(ours), profile(real)
    if product == "Milan":  # the 2023 Milan VCEK writes the PSS trailerField, KDS no longer does
        real_profile["signature_algorithm"] = ours_profile["signature_algorithm"]
        assert signature_algorithm(real) == signature_algorithm(pki.ask.certificate)
    assert ours_profile == real_profile
    assert serial_number(ours) == serial_number(real) == 0
    # Every AMD extension's value is byte for byte the real one's: same product name (for
    # Milan, "Milan-B0" there), same SPLs, same hwID.
    for extension in real.extensions:
        mine = ours.extensions.get_extension_for_oid(extension.oid).value.value  # type: ignore[attr-defined]
        theirs = extension.value.value  # type: ignore[attr-defined]
        if extension.oid.dotted_string == f"{AMD_OID}.2" and product == "Milan":
            assert (theirs, mine) == (b"\x16\x08Milan-B0", b"\x16\x05Milan")
        else:
            assert mine == theirs, extension.oid.dotted_string


def test_turin_vceks_carry_an_8_byte_hwid_and_the_fmc_spl() -> None:
    chip = snp_chip("Turin")
    vcek = load_certificate(chip.vcek)
    extensions = {e.oid.dotted_string: e.value.value for e in vcek.extensions}  # type: ignore[attr-defined]
    assert extensions[f"{AMD_OID}.4"] == chip.chip_id[:8]
    assert chip.chip_id[8:] == bytes(56)
    assert extensions[f"{AMD_OID}.3.9"] == der_integer(chip.tcb.fmc or 0)
    assert extensions[f"{AMD_OID}.2"] == b"\x16\x05Turin"


@pytest.mark.parametrize(("value", "encoded"), [(0, "020100"), (115, "020173"), (217, "020200d9")])
def test_spls_are_der_integers_as_amd_writes_them(value, encoded) -> None:
    """The fixture README: 217 is 02 02 00 d9 (a leading zero byte), 115 is 02 01 73."""
    assert der_integer(value).hex() == encoded


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_every_link_verifies_with_rsassa_pss(product) -> None:
    pki = amd_pki(product)
    ark, ask = pki.ark.certificate, pki.ask.certificate
    vcek = load_certificate(snp_chip(product).vcek)
    for child, parent in ((ark, ark), (ask, ark), (vcek, ask)):
        key = parent.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(child.signature, child.tbs_certificate_bytes, PSS, hashes.SHA384())
        assert child.issuer == parent.subject
        child.verify_directly_issued_by(parent)


def test_a_vcek_does_not_chain_to_another_products_ask() -> None:
    """The shared keys make Milan's and Genoa's ASKs the same key; the names still differ."""
    vcek = load_certificate(snp_chip("Milan").vcek)
    with pytest.raises(ValueError, match="issuer"):
        vcek.verify_directly_issued_by(amd_pki("Genoa").ask.certificate)


def test_names_say_simulated() -> None:
    pki = amd_pki()
    for certificate in (
        pki.ark.certificate,
        pki.ask.certificate,
        load_certificate(snp_chip().vcek),
    ):
        for name in (certificate.subject, certificate.issuer):
            common_name = str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
            assert re.fullmatch(r"(ARK|SEV)-\w+ \(simulated\)", common_name), common_name
    crl = pki.ark.certificate.extensions.get_extension_for_oid(
        ExtensionOID.CRL_DISTRIBUTION_POINTS
    ).value
    assert urlparse(crl[0].full_name[0].value).hostname.endswith(".invalid")  # type: ignore[index,union-attr]


def test_every_certificate_is_valid_at_the_generation_time() -> None:
    pki = amd_pki()
    for certificate in (
        pki.ark.certificate,
        pki.ask.certificate,
        load_certificate(snp_chip().vcek),
    ):
        assert certificate.not_valid_before_utc <= SIM_AT <= certificate.not_valid_after_utc


def test_the_vcek_is_per_chip_and_tcb() -> None:
    """Like AMD's, derived from the chip's secret and the TCB: same chip and TCB, same key."""
    pki, secret, chip_id = amd_pki(), b"s" * 32, bytes(range(64))
    one = SimulatedSnpChip.generate(pki, at=SIM_AT, secret=secret, chip_id=chip_id)
    again = SimulatedSnpChip.generate(pki, at=SIM_AT, secret=secret, chip_id=chip_id)
    newer = SimulatedSnpChip.generate(
        pki, at=SIM_AT, secret=secret, chip_id=chip_id, tcb=Tcb(10, 0, 26, 84)
    )
    other = SimulatedSnpChip.generate(pki, at=SIM_AT, chip_id=chip_id)

    def public(chip: SimulatedSnpChip) -> bytes:
        return chip.vcek_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    assert public(one) == public(again)
    assert len({public(one), public(newer), public(other)}) == 3
    assert load_certificate(newer.vcek).public_key() == newer.vcek_key.public_key()


def test_creating_a_simulated_pki_or_platform_warns() -> None:
    from enclave_worker import SimulatedSnpPlatform

    ark_key, ask_key = amd_keys()
    with pytest.warns(SimulatedAmdWarning, match="not AMD"):
        SimulatedAmdPki.generate(at=SIM_AT, ark_key=ark_key, ask_key=ask_key)
    with pytest.warns(SimulatedAmdWarning, match="not AMD hardware"):
        SimulatedSnpPlatform(snp_chip())


def test_generation_needs_an_aware_time_and_a_known_product() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        with pytest.raises(ValueError, match="timezone-aware"):
            SimulatedAmdPki.generate(at=SIM_AT.replace(tzinfo=None))
        with pytest.raises(ValueError, match="unknown AMD product"):
            SimulatedAmdPki.generate(at=SIM_AT, product="Naples")


@pytest.fixture
def quick_keys(monkeypatch):
    """load_or_create makes its keys with the session's (RSA-4096 takes seconds each)."""
    keys = iter(amd_keys() * 2)
    monkeypatch.setattr("enclave_worker.simulated_amd._new_rsa_key", lambda: next(keys))


def test_the_root_is_persisted_and_reused(tmp_path, quick_keys) -> None:
    directory = tmp_path / "simulated-amd"
    with pytest.warns(SimulatedAmdWarning, match="creating a simulated AMD root"):
        created = SimulatedAmdPki.load_or_create(directory, at=SIM_AT)
    assert created.product.name == "Genoa"
    for key_file in ("ark.key", "ask.key"):
        assert stat.S_IMODE((directory / key_file).stat().st_mode) == 0o600
    ark_pem = (directory / "ark.pem").read_bytes()
    later = datetime(2027, 1, 1, tzinfo=UTC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading a persisted root does not warn
        loaded = SimulatedAmdPki.load_or_create(directory, at=later)
    assert (directory / "ark.pem").read_bytes() == ark_pem
    assert loaded.ark.der == created.ark.der
    assert loaded.ask.der == created.ask.der
    assert loaded.product == created.product
    with pytest.raises(ValueError, match="simulated Genoa root, not Milan"):
        SimulatedAmdPki.load_or_create(directory, at=later, product="Milan")


def test_a_lost_ask_is_issued_again_under_the_persisted_ark(tmp_path, quick_keys) -> None:
    directory = tmp_path / "amd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        created = SimulatedAmdPki.load_or_create(directory, at=SIM_AT, product="Turin")
    (directory / "ask.pem").unlink()
    again = SimulatedAmdPki.load_or_create(directory, at=SIM_AT + timedelta(days=3))
    assert again.ark.der == created.ark.der
    assert again.product.name == "Turin"
    again.ask.certificate.verify_directly_issued_by(created.ark.certificate)
    assert (directory / "ask.pem").exists()


def test_a_file_that_is_not_a_simulated_root_is_refused(tmp_path) -> None:
    directory = tmp_path / "amd"
    directory.mkdir()
    (directory / "ark.pem").write_bytes(fixture("amd_genoa_ark.pem"))  # AMD's own
    (directory / "ark.key").write_bytes(
        amd_keys()[0].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="not a simulated AMD root"):
        SimulatedAmdPki.load_or_create(directory, at=SIM_AT)


def test_the_fixture_folder_is_here() -> None:
    assert (SNP / "README.md").read_text().startswith("# Real AMD SEV-SNP")
