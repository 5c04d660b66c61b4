"""The SEV-SNP part of an entry's page: what the stored report says, laid out against the
policy revision the entry names, the endorsements it names and the instant it was judged at.

Framework-free, and nothing here verifies: the report is parsed (``describe``), each
certificate is read for display, and every comparison shown (measurement and launch values
against each reference image, guest policy bits and VMPL against the settings, the TCB
against the minimum, report_data against the recorded result hash, validity windows against
``verified_at``) is one a person can check by eye. The verdict itself is the recorded one,
and "re-verify" (:func:`attest_ledger.explain.reverify`) runs the scheme again.

An SEV-SNP report carries no time of its own: what expires is the VCEK or VLEK (and its ASK
or ASVK, and the ARK), so the windows are drawn against the instant the service judged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attest_ledger.policy_store import SNP, SNP_DEFAULTS, SNP_IMAGE_FIELDS, PolicyConfig
from verifier import (
    REPORT_DATA_BYTES,
    CertificateInfo,
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    ResultHash,
    SnpClaims,
    SnpVerifier,
)
from verifier.binding import REPORT_DATA_NONCE_BYTES
from verifier.snp.product import TCB_COMPONENTS, ProductLine
from verifier.snp.report import VMPL_HOST, SigningKey
from verifier.x509 import CERTIFICATE_PARSE_ERRORS, certificate_info, load_der_certificate

__all__ = [
    "ChainRow",
    "FlagRow",
    "SnpView",
    "StoredEndorsement",
    "TcbRow",
    "ValueRow",
    "explain_snp",
    "stored_evidence",
]

#: The key that signs, and the CA that signs it, by the report's key selection.
_SIGNERS = {
    SigningKey.VCEK: (EndorsementKind.VCEK, EndorsementKind.ASK),
    SigningKey.VLEK: (EndorsementKind.VLEK, EndorsementKind.ASVK),
}


@dataclass(frozen=True)
class StoredEndorsement:
    """An endorsement the entry names, and its bytes as stored (None: not in the ledger)."""

    kind: str
    sha256: str
    data: bytes | None

    @property
    def holds(self) -> bool:
        """The stored bytes are there and have the digest the entry names."""
        return self.data is not None and hashlib.sha256(self.data).hexdigest() == self.sha256


@dataclass(frozen=True)
class ValueRow:
    """One launch value of the report against the images compared with."""

    name: str
    value: str
    matched: tuple[str, ...]  # images that list this value, equal
    expected: tuple[tuple[str, str], ...]  # (image, value) of images that list another

    @property
    def status(self) -> str:
        if self.expected and not self.matched:
            return "mismatch"
        if self.matched:
            return "match"
        return "unreferenced"


@dataclass(frozen=True)
class FlagRow:
    """A guest policy bit (or the VMPL), and what the recorded settings say of it."""

    label: str
    value: str
    #: "refused" (the settings do not allow it), "allowed", or None (informative only)
    judgement: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class TcbRow:
    component: str
    reported: int | None
    certified: int | None  # the VCEK's or VLEK's SPL extension
    current: int | None
    committed: int | None
    launch: int | None
    minimum: int | None  # the recorded policy's, if it sets one

    @property
    def too_old(self) -> bool:
        return (
            self.minimum is not None and self.reported is not None and self.reported < self.minimum
        )

    @property
    def uncertified(self) -> bool:
        """The key certifies another SPL than the report's reported TCB."""
        return (
            self.certified is not None
            and self.reported is not None
            and self.certified != self.reported
        )


@dataclass(frozen=True)
class ChainRow:
    """One certificate of the path ARK -> ASK/ASVK -> VCEK/VLEK, as shown."""

    position: str  # "ARK", "ASK", "ASVK", "VCEK", "VLEK"
    origin: str  # where it comes from: the evidence, the package, the configuration
    info: CertificateInfo | None
    problem: str | None
    #: where ``verified_at`` falls: "before", "within" or "after" the window
    at_moment: str | None = None
    window: tuple[float, float] | None = None
    marker: float | None = None
    #: the digest the entry names this certificate by, when it came with the evidence
    named: str | None = None
    #: an ARK: whether its SHA-256 is one of the trust anchors the entry records
    recorded_anchor: bool | None = None


@dataclass
class SnpView:
    claims: SnpClaims
    moment: datetime | None
    images: list[str] = field(default_factory=list)
    values: list[ValueRow] = field(default_factory=list)
    flags: list[FlagRow] = field(default_factory=list)
    tcb: list[TcbRow] = field(default_factory=list)
    chain: list[ChainRow] = field(default_factory=list)
    #: the result-hash half of report_data: what it should be, and whether it is
    binding_expected: bytes | None = None
    binding_state: str | None = None  # "holds", "differs", "missing"

    @property
    def report_data_nonce(self) -> bytes:
        return self.claims.report.report_data[:REPORT_DATA_NONCE_BYTES]

    @property
    def report_data_binding(self) -> bytes:
        return self.claims.report.report_data[REPORT_DATA_NONCE_BYTES:REPORT_DATA_BYTES]

    @property
    def chip_masked(self) -> bool:
        return not any(self.claims.report.chip_id)

    @property
    def vmpl_text(self) -> str:
        vmpl = self.claims.report.vmpl
        return "host-requested (0xFFFFFFFF)" if vmpl == VMPL_HOST else str(vmpl)


def stored_evidence(kind: str, data: bytes, endorsements: Sequence[StoredEndorsement]) -> Evidence:
    """The evidence as the service judged it: its bytes and every endorsement the entry names
    that is stored (in the order named). An endorsement of a kind this verifier does not know
    is left out: no scheme could have used it. Raises ValueError for an unknown ``kind``."""
    given = []
    for stored in endorsements:
        if stored.data is None:
            continue
        try:
            given.append(Endorsement(EndorsementKind(stored.kind), stored.data))
        except ValueError:
            continue
    return Evidence(EvidenceKind(kind), data, tuple(given))


def explain_snp(
    record: Mapping[str, Any],
    evidence: bytes,
    endorsements: Sequence[StoredEndorsement],
    *,
    policy: PolicyConfig | None,
    scheme: SnpVerifier,
    moment: datetime | None,
) -> SnpView:
    """What the report says, laid out; raises :class:`VerifierError` (malformed or
    unsupported) when even the report does not parse."""
    claims = scheme.describe(stored_evidence(SNP, evidence, endorsements))
    view = SnpView(claims=claims, moment=moment)
    settings: dict[str, Any] = dict(SNP_DEFAULTS)
    worker = record.get("worker")
    if policy is not None:
        settings.update(policy.schemes.get(SNP, {}))
        allowed = policy.workers.get(worker, frozenset()) if isinstance(worker, str) else ()
        view.images = sorted(name for name in allowed if policy.kind_of(name) == SNP)
        view.values = _value_rows(claims, policy, view.images)
    else:
        view.values = _value_rows(claims, None, [])
    view.flags = _flag_rows(claims, settings if policy is not None else None)
    view.tcb = _tcb_rows(claims, settings.get("min_tcb") if policy is not None else None)
    view.chain = _chain_rows(claims, endorsements, scheme, moment, record)
    result_hash = record.get("result_hash")
    if isinstance(result_hash, str):
        try:
            view.binding_expected = ResultHash.parse(result_hash).report_data_half()
        except ValueError:  # a recorded hash that is not one
            view.binding_expected = None
    if view.binding_expected is not None:
        found = view.report_data_binding
        view.binding_state = (
            "holds"
            if found == view.binding_expected
            else "missing"
            if not any(found)
            else "differs"
        )
    return view


def _value_rows(
    claims: SnpClaims, policy: PolicyConfig | None, images: list[str]
) -> list[ValueRow]:
    report = claims.report
    rows = []
    for name in SNP_IMAGE_FIELDS:
        value: bytes = getattr(report, name)
        matched, expected = [], []
        for image in images:
            reference = policy.references[image][1] if policy is not None else {}
            listed = reference.get(name)
            if not isinstance(listed, str):
                continue
            if listed.lower() == value.hex():
                matched.append(image)
            else:
                expected.append((image, listed.lower()))
        rows.append(ValueRow(name, value.hex(), tuple(matched), tuple(expected)))
    return rows


def _flag_rows(claims: SnpClaims, settings: Mapping[str, Any] | None) -> list[FlagRow]:
    """The guest policy as the owner set it at launch, each rule-bearing bit with the
    recorded setting's judgement (None: no policy recorded, nothing judged)."""
    bits = claims.report.policy

    def judged(present: bool, setting: str) -> str | None:
        if settings is None or not present:
            return None
        return "allowed" if settings.get(setting) else "refused"

    decoded = bits.to_dict()
    rows = [
        FlagRow("ABI (minimum firmware)", f"{bits.abi_major}.{bits.abi_minor}"),
        FlagRow(
            "Debugging allowed (bit 19)",
            _yes(bits.debug),
            judged(bits.debug, "allow_debug"),
            "the host can read and change the guest's memory" if bits.debug else None,
        ),
        FlagRow(
            "SMT allowed (bit 16)", _yes(bits.smt_allowed), judged(bits.smt_allowed, "allow_smt")
        ),
        FlagRow(
            "Migration agent allowed (bit 18)",
            _yes(bits.migrate_ma),
            judged(bits.migrate_ma, "allow_migration_agent"),
        ),
        FlagRow("Single socket only (bit 20)", _yes(bits.single_socket)),
        FlagRow("CXL allowed (bit 21)", _yes(bool(decoded["cxl_allowed"]))),
        FlagRow("AES-256-XTS required (bit 22)", _yes(bool(decoded["mem_aes_256_xts"]))),
        FlagRow("RAPL disabled (bit 23)", _yes(bool(decoded["rapl_disabled"]))),
        FlagRow("Ciphertext hiding (bit 24)", _yes(bool(decoded["ciphertext_hiding"]))),
        FlagRow("Page swap disabled (bit 25)", _yes(bool(decoded["page_swap_disabled"]))),
    ]
    vmpl = claims.report.vmpl
    maximum = settings.get("max_vmpl") if settings is not None else None
    rows.append(
        FlagRow(
            "VMPL",
            "host-requested (0xFFFFFFFF)" if vmpl == VMPL_HOST else str(vmpl),
            None if not isinstance(maximum, int) else "refused" if vmpl > maximum else "allowed",
            None if not isinstance(maximum, int) else f"the policy accepts VMPL 0 to {maximum}",
        )
    )
    return rows


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _tcb_rows(claims: SnpClaims, minimum: Any) -> list[TcbRow]:
    product = claims.product
    components = product.components if product is not None else TCB_COMPONENTS
    spls = claims.vek.spls if claims.vek is not None else {}
    minimums = minimum if isinstance(minimum, Mapping) else {}

    def spl(tcb: Any, component: str) -> int | None:
        return None if tcb is None else tcb.components.get(component)

    rows = []
    for component in components:
        least = minimums.get(component)
        rows.append(
            TcbRow(
                component,
                spl(claims.reported_tcb, component),
                spls.get(component),
                spl(claims.current_tcb, component),
                spl(claims.committed_tcb, component),
                spl(claims.launch_tcb, component),
                least if isinstance(least, int) and not isinstance(least, bool) else None,
            )
        )
    return rows


def _chain_rows(
    claims: SnpClaims,
    endorsements: Sequence[StoredEndorsement],
    scheme: SnpVerifier,
    moment: datetime | None,
    record: Mapping[str, Any],
) -> list[ChainRow]:
    """ARK, ASK or ASVK, VCEK or VLEK: each the one that came with the evidence if one did
    (as the verifier takes them), otherwise what this service packages or was configured
    with for the report's product line."""
    report = claims.report
    signers = _SIGNERS.get(report.signing_key)
    if signers is None:
        return [ChainRow("key", "", None, "the report names no signing key (7: none)")]
    leaf_kind, ca_kind = signers
    product = claims.product
    store = scheme.trust_store
    anchors = record.get("trust_anchors")
    recorded = {a for a in anchors if isinstance(a, str)} if isinstance(anchors, list) else set()
    rows = []

    ark = _given(endorsements, EndorsementKind.ARK)
    if ark is not None:
        rows.append(
            _row(
                "ARK",
                "came with the evidence",
                ark.data,
                named=ark.sha256,
                moment=moment,
                role="root",
            )
        )
    elif product is not None and store.anchors_for(product):
        anchor = store.anchors_for(product)[0]
        origin = "pinned in this verifier" if anchor.origin == "pinned" else "configured here"
        rows.append(_row("ARK", origin, anchor.anchor.der, named=None, moment=moment, role="root"))
    else:
        rows.append(_missing("ARK", product, "no ARK is trusted here for it"))
    rows[-1] = _with_anchor(rows[-1], recorded)

    ca = _given(endorsements, ca_kind)
    position = ca_kind.name
    if ca is not None:
        rows.append(
            _row(
                position,
                "came with the evidence",
                ca.data,
                named=ca.sha256,
                moment=moment,
                role="intermediate",
            )
        )
    elif product is not None and (pinned := store.intermediates.get((product, ca_kind))):
        rows.append(
            _row(
                position,
                "packaged with this verifier",
                pinned.der,
                named=None,
                moment=moment,
                role="intermediate",
            )
        )
    else:
        rows.append(_missing(position, product, f"none came with it and no {position} is packaged"))

    leaf = _given(endorsements, leaf_kind)
    if leaf is not None:
        rows.append(
            _row(
                leaf_kind.name,
                "came with the evidence",
                leaf.data,
                named=leaf.sha256,
                moment=moment,
                role="leaf",
            )
        )
    else:
        rows.append(
            ChainRow(
                leaf_kind.name,
                "",
                None,
                f"the report is signed by its {leaf_kind.name}, and none came with it",
            )
        )
    return rows


def _given(endorsements: Sequence[StoredEndorsement], kind: EndorsementKind) -> _Held | None:
    for stored in endorsements:
        if stored.kind == kind.value and stored.data is not None:
            return _Held(stored.sha256, stored.data)
    return None


@dataclass(frozen=True)
class _Held:
    sha256: str
    data: bytes


def _missing(position: str, product: ProductLine | None, why: str) -> ChainRow:
    if product is None:
        return ChainRow(
            position, "", None, "the product line cannot be told, so neither can the root"
        )
    return ChainRow(position, "", None, f"{product}: {why}")


def _with_anchor(row: ChainRow, recorded: set[str]) -> ChainRow:
    if row.info is None or not recorded:
        return row
    return ChainRow(
        row.position, row.origin, row.info, row.problem, row.at_moment, row.window, row.marker,
        row.named, row.info.fingerprint_sha256 in recorded,
    )  # fmt: skip


def _row(
    position: str, origin: str, der: bytes, *, named: str | None, moment: datetime | None, role: str
) -> ChainRow:
    try:
        certificate = load_der_certificate(der, allow_zero_serial=True)
        info = certificate_info(certificate, der, position=position, role=role, issuer=None)
    except CERTIFICATE_PARSE_ERRORS as exc:
        return ChainRow(
            position, origin, None, f"not a certificate ({str(exc)[:100]})", named=named
        )
    if moment is None:
        return ChainRow(position, origin, info, None, named=named)
    start, end = info.not_before, info.not_after
    where = "before" if moment < start else "after" if moment > end else "within"
    # One scale per certificate (an ARK lives 25 years, a VLEK one): its window and the
    # instant judged at, with a margin so that a marker outside still shows.
    low, high = min(start, moment), max(end, moment)
    span = (high - low).total_seconds() or 1.0

    def position_of(t: datetime) -> float:
        return 5 + 90 * (t - low).total_seconds() / span

    return ChainRow(
        position, origin, info, None, where, (position_of(start), position_of(end)),
        position_of(moment), named,
    )  # fmt: skip
