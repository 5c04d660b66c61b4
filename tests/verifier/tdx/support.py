"""The real Intel DCAP samples (tests/fixtures/tdx/README.md): each quote, its collateral,
the window in which it evaluates, and the outcome recorded there (dcap-qvl 0.7.0)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from verifier import (
    Evidence,
    EvidenceKind,
    SgxPolicy,
    SgxReferenceImage,
    TdxPolicy,
    TdxReferenceImage,
    UnsafeAcceptAnySgxPolicy,
    UnsafeAcceptAnyTdxPolicy,
    UnsafePolicyWarning,
    endorsements_from_dcap_qvl_json,
    parse_quote,
)
from verifier.policy import SchemePolicy
from verifier.tdx import EnclaveReport, TdReport

TDX = Path(__file__).resolve().parent.parent.parent / "fixtures" / "tdx"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class RealQuote:
    quote: str
    collateral: str
    kind: EvidenceKind
    #: An instant inside the window, the window itself (start included, end excluded), the
    #: latest issue date and the earliest nextUpdate of the collateral.
    at: datetime
    latest_issue: datetime
    earliest_next_update: datetime
    #: The TCB status and advisories recorded, or None for the negative sample.
    status: str | None
    advisories: tuple[str, ...] = ()

    def bytes(self) -> bytes:
        return (TDX / self.quote).read_bytes()

    def collateral_bytes(self) -> bytes:
        return (TDX / self.collateral).read_bytes()

    def evidence(self, data: bytes | None = None) -> Evidence:
        return Evidence(
            self.kind,
            self.bytes() if data is None else data,
            endorsements_from_dcap_qvl_json(self.collateral_bytes()),
        )

    def policy(self, **overrides: object) -> SchemePolicy:
        """A policy whose one image is this quote's own measurement."""
        body = parse_quote(self.bytes()).body
        if isinstance(body, TdReport):
            arguments: dict[str, object] = {
                "name": "real",
                "images": (TdxReferenceImage("own", body.mr_td),),
            }
            arguments.update(overrides)
            return TdxPolicy(**arguments)  # type: ignore[arg-type]
        assert isinstance(body, EnclaveReport)
        arguments = {"name": "real", "images": (SgxReferenceImage("own", body.mr_enclave),)}
        arguments.update(overrides)
        return SgxPolicy(**arguments)  # type: ignore[arg-type]

    def accept_any(self, **overrides: object) -> SchemePolicy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            if self.kind is EvidenceKind.INTEL_TDX:
                return UnsafeAcceptAnyTdxPolicy(**overrides)  # type: ignore[arg-type]
            return UnsafeAcceptAnySgxPolicy(**overrides)  # type: ignore[arg-type]


PHALA_TDX = RealQuote(
    "phala_dcapqvl_tdx_quote.bin",
    "phala_dcapqvl_tdx_quote_collateral.json",
    EvidenceKind.INTEL_TDX,
    at=utc("2025-06-19T11:16:03"),
    latest_issue=utc("2025-06-19T10:32:27"),
    earliest_next_update=utc("2025-07-19T10:00:35"),
    status="UpToDate",
)
PHALA_SGX = RealQuote(
    "phala_dcapqvl_sgx_quote.bin",
    "phala_dcapqvl_sgx_quote_collateral.json",
    EvidenceKind.INTEL_SGX,
    at=utc("2025-06-19T11:56:11"),
    latest_issue=utc("2025-06-19T10:56:11"),
    earliest_next_update=utc("2025-07-19T10:01:18"),
    status="ConfigurationAndSWHardeningNeeded",
    advisories=("INTEL-SA-00289", "INTEL-SA-00615"),
)
GTG_V5 = RealQuote(
    "tdx_gtg_quote_v5_sample.dat",
    "tdx_dcapqvl_quote_outdated_collateral.json",
    EvidenceKind.INTEL_TDX,
    at=utc("2026-02-20T00:00:00"),
    latest_issue=utc("2026-02-18T10:58:51"),
    earliest_next_update=utc("2026-03-20T10:41:15"),
    status="UpToDate",
)
OUTDATED = RealQuote(
    "tdx_dcapqvl_quote_outdated.bin",
    "tdx_dcapqvl_quote_outdated_collateral.json",
    EvidenceKind.INTEL_TDX,
    at=utc("2026-02-20T00:00:00"),
    latest_issue=utc("2026-02-18T10:58:51"),
    earliest_next_update=utc("2026-03-20T10:41:15"),
    status=None,
)
POSITIVE = (PHALA_TDX, PHALA_SGX, GTG_V5)
REAL_QUOTES = (*POSITIVE, OUTDATED)
NO_SKEW = timedelta(0)
