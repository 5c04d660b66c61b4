"""Enrolment of on-premises attestation keys (the ``enrolled`` AK path).

An operator enrols an AK (by the SHA-256 of its SubjectPublicKeyInfo DER) in the ledger and
may revoke it later; the scheme is handed an :class:`EnrolmentBook` that answers, for an AK,
its enrolment. The AK is enrolled at the verification time ``at`` when
``enrolled_at <= at`` and (``revoked_at`` is None or ``at < revoked_at``); an AK the book
knows nothing of, or enrolled only after ``at``, is ``ak_unendorsed`` (nothing vouched for it
at that instant: a quote judged before its AK's enrolment and judged again later, with the
enrolment in the book, gets the same answer), and one revoked at or before ``at`` is
``ak_enrolment_revoked``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from verifier.errors import AkEnrolmentRevoked, AkUnendorsed
from verifier.timefmt import iso_utc

__all__ = ["Enrolment", "EnrolmentBook", "StaticEnrolments", "check_enrolment"]

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Enrolment:
    name: str
    ak_sha256: str  # lowercase hex SHA-256 of the AK SPKI DER
    enrolled_at: datetime  # aware UTC
    revoked_at: datetime | None
    entry_index: int | None  # the ledger entry that enrolled it
    ek_certificate_sha256: str | None

    def __post_init__(self) -> None:
        # ValueError: an enrolment is an argument (from the ledger), not evidence.
        if len(self.ak_sha256) != 64 or not set(self.ak_sha256) <= _HEX:
            raise ValueError("enrolment: ak_sha256 must be 64 lowercase hex digits")
        for moment in (self.enrolled_at, self.revoked_at):
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                raise ValueError("enrolment: times must be timezone-aware")
        if self.revoked_at is not None and self.revoked_at < self.enrolled_at:
            raise ValueError("enrolment: revoked before it was enrolled")


class EnrolmentBook(Protocol):
    def enrolment(self, ak_sha256: str) -> Enrolment | None: ...


class StaticEnrolments:
    """An :class:`EnrolmentBook` over a list (one enrolment per AK)."""

    def __init__(self, enrolments: Iterable[Enrolment]) -> None:
        self._by_ak: dict[str, Enrolment] = {}
        for enrolment in enrolments:
            if enrolment.ak_sha256 in self._by_ak:
                raise ValueError(f"enrolment: AK {enrolment.ak_sha256} is listed twice")
            self._by_ak[enrolment.ak_sha256] = enrolment

    def enrolment(self, ak_sha256: str) -> Enrolment | None:
        return self._by_ak.get(ak_sha256)


def check_enrolment(book: EnrolmentBook, ak_sha256: str, at: datetime) -> Enrolment:
    """The AK's enrolment valid at ``at``; raises AkUnendorsed (the book knows nothing of the
    AK, or it was enrolled after ``at``) or AkEnrolmentRevoked (revoked at or before ``at``)."""
    enrolment = book.enrolment(ak_sha256)
    if enrolment is None:
        raise AkUnendorsed(
            f"ak: nothing vouches for the AK (SHA-256 {ak_sha256}): no NitroTPM document, no "
            "AK certificate, and it was never enrolled; enrol it with `attest-ledger tpm enroll`"
        )
    if at < enrolment.enrolled_at:
        raise AkUnendorsed(
            f"ak: nothing vouched for the AK at {iso_utc(at)}: it is enrolled, as "
            f"{enrolment.name!r} (SHA-256 {ak_sha256}), only from {iso_utc(enrolment.enrolled_at)}"
        )
    if enrolment.revoked_at is not None and at >= enrolment.revoked_at:
        raise AkEnrolmentRevoked(
            f"AK {enrolment.name!r} (SHA-256 {ak_sha256}) was revoked at "
            f"{iso_utc(enrolment.revoked_at)}; verification time {iso_utc(at)}"
        )
    return enrolment
