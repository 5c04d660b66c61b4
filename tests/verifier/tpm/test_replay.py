"""Event logs through the TPM scheme: quotes signed here over the PCRs a log built here (or a
real firmware log, at its published PCRs) replays to; a log that does not replay; expected
events in the policy; a required log; legacy SHA-1 logs; IMA logs alone and after a boot
log; events in PCRs or banks the quote does not cover prove nothing."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from tests.verifier.tpm.support import (
    AT,
    TPM,
    BootLog,
    Quote,
    accept_any,
    digest,
    ima_entry,
    ima_pcr,
)
from verifier import Evidence, PolicyViolation, VerifierError
from verifier.tpm import (
    Enrolment,
    ExpectedEvent,
    StaticEnrolments,
    TpmPolicy,
    TpmReferenceImage,
    TpmVerifier,
)

EVENTLOGS = TPM / "eventlogs"
ARCH = EVENTLOGS / "gotpmtools_arch-linux-workstation.bin"


def verifier_for(quote: Quote) -> TpmVerifier:
    enrolment = Enrolment(
        name="rack-7",
        ak_sha256=hashlib.sha256(quote.ak).hexdigest(),
        enrolled_at=AT - timedelta(days=1),
        revoked_at=None,
        entry_index=3,
        ek_certificate_sha256=None,
    )
    return TpmVerifier(enrolments=StaticEnrolments([enrolment]))


JOB = ExpectedEvent(23, {"sha256": digest("sha256", b"job")}, "job")


def expecting(*events: ExpectedEvent, require_event_log: bool = False) -> TpmPolicy:
    return TpmPolicy(
        "p",
        (TpmReferenceImage("booted", {}, events=events or (JOB,)),),
        require_event_log=require_event_log,
    )


def codes(quote: Quote, evidence: Evidence, policy: TpmPolicy | None = None) -> list[str]:
    """The violations' codes, or the error's code alone."""
    try:
        verifier_for(quote).verify(evidence, at=AT, policy=policy or accept_any())
    except PolicyViolation as exc:
        return [v.code for v in exc.violations]
    except VerifierError as exc:
        return [exc.code]
    return []


BOOT = BootLog([(0, b"crtm"), (4, b"shim"), (4, b"grub"), (9, b"kernel"), (23, b"job")])


def quote_over(log: BootLog, banks: tuple[str, ...] = ("sha256",), **kwargs: object) -> Quote:
    return Quote(pcrs={bank: log.pcrs(bank) for bank in banks}, **kwargs)  # type: ignore[arg-type]


def test_a_hand_made_log_replays_to_the_quoted_pcrs_and_its_events_match() -> None:
    quote = quote_over(BOOT)
    evidence = quote.evidence(event_log=BOOT.bytes())
    kernel = ExpectedEvent(9, {"sha256": digest("sha256", b"kernel")}, "kernel")
    result = verifier_for(quote).verify(evidence, at=AT, policy=expecting(kernel))
    assert result.status == "affirming"
    assert result.matched_reference == "booted"
    log = result.claims.to_dict()["event_log"]
    assert log == {
        "format": "tcg-pc-client",
        "sha256": hashlib.sha256(BOOT.bytes()).hexdigest(),
        "events": 7,  # the Spec ID header, the StartupLocality, five measurements
        "replayed": [0, 4, 9, 23],
    }


def test_a_real_firmware_log_replays_to_its_published_pcrs() -> None:
    """go-tpm-tools' Arch Linux workstation log, quoted here at the PCR values its test
    publishes (tests/fixtures/tpm/eventlogs/expected_pcrs.json), SHA-1 and SHA-256."""
    published = json.loads((EVENTLOGS / "expected_pcrs.json").read_text())[ARCH.name]["pcrs"]
    pcrs = {
        bank: {int(i): bytes.fromhex(v) for i, v in values.items()}
        for bank, values in published.items()
    }
    quote = Quote(pcrs=pcrs)
    data = ARCH.read_bytes()
    result = verifier_for(quote).verify(quote.evidence(event_log=data), at=AT, policy=accept_any())
    assert result.claims.to_dict()["event_log"]["replayed"] == list(range(9))  # type: ignore[index]
    # one published value changed and the quote signed again over it: the log disagrees
    for bank in ("sha1", "sha256"):
        wrong = {b: dict(v) for b, v in pcrs.items()}
        wrong[bank][7] = bytes(len(wrong[bank][7]))
        other = Quote(pcrs=wrong, private_key=quote.private_key)
        assert codes(other, other.evidence(event_log=data)) == ["event_log_mismatch"]


def test_a_log_that_does_not_replay_is_event_log_mismatch() -> None:
    other = BootLog([(0, b"crtm"), (4, b"shim"), (4, b"evil"), (9, b"kernel"), (23, b"job")])
    quote = quote_over(BOOT)
    assert codes(quote, quote.evidence(event_log=other.bytes())) == ["event_log_mismatch"]
    assert codes(quote, quote.evidence(event_log=BOOT.bytes())) == []
    # the locality not honoured by the quote's PCR 0
    no_locality = BootLog(BOOT.measured, locality=False)
    assert codes(quote, quote.evidence(event_log=no_locality.bytes())) == ["event_log_mismatch"]
    # a log none of whose banks the quote carries cannot vouch for anything
    sha384 = quote_over(BOOT, ("sha384",))
    assert codes(sha384, sha384.evidence(event_log=BOOT.bytes())) == ["event_log_mismatch"]


def test_expected_events_must_be_in_what_the_log_proves() -> None:
    quote = quote_over(BOOT)
    evidence = quote.evidence(event_log=BOOT.bytes())
    absent = ExpectedEvent(9, {"sha256": digest("sha256", b"other kernel")})
    elsewhere = ExpectedEvent(8, {"sha256": digest("sha256", b"kernel")})
    for event in (absent, elsewhere):
        assert codes(quote, evidence, expecting(event)) == ["event_missing"]
    # no log at all
    kernel = ExpectedEvent(9, {"sha256": digest("sha256", b"kernel")})
    assert codes(quote, quote.evidence(), expecting(kernel)) == ["event_missing"]
    # EV_NO_ACTION extends nothing: the StartupLocality's zero digest never matches
    no_action = ExpectedEvent(0, {"sha256": bytes(32)})
    assert codes(quote, evidence, expecting(no_action)) == ["event_missing"]
    # a SHA-1 digest: the log has one, but the quote has no SHA-1 bank to prove it
    by_sha1 = ExpectedEvent(9, {"sha1": digest("sha1", b"kernel")})
    assert codes(quote, evidence, expecting(by_sha1)) == ["event_missing"]
    both = quote_over(BOOT, ("sha1", "sha256"))
    assert codes(both, both.evidence(event_log=BOOT.bytes()), expecting(by_sha1)) == []


def test_an_event_in_a_pcr_the_quote_does_not_cover_proves_nothing() -> None:
    values = BOOT.pcrs("sha256")
    quote = Quote(pcrs={"sha256": {23: values[23]}})
    evidence = quote.evidence(event_log=BOOT.bytes())
    job = ExpectedEvent(23, {"sha256": digest("sha256", b"job")})
    kernel = ExpectedEvent(9, {"sha256": digest("sha256", b"kernel")})
    assert codes(quote, evidence, expecting(job)) == []
    assert codes(quote, evidence, expecting(kernel)) == ["event_missing"]


def test_a_required_log_that_did_not_come_is_event_log_missing() -> None:
    quote = quote_over(BOOT)
    policy = expecting(require_event_log=True)
    assert codes(quote, quote.evidence(), policy) == ["event_log_missing", "event_missing"]
    assert codes(quote, quote.evidence(event_log=BOOT.bytes()), policy) == []


def test_a_legacy_sha1_log_is_replayed_in_the_sha1_bank() -> None:
    legacy = BootLog(BOOT.measured, legacy=True)
    quote = quote_over(legacy, ("sha1",))
    kernel = ExpectedEvent(9, {"sha1": digest("sha1", b"kernel")})
    assert codes(quote, quote.evidence(event_log=legacy.bytes()), expecting(kernel)) == []
    sha256_only = quote_over(BOOT)
    assert codes(sha256_only, sha256_only.evidence(event_log=legacy.bytes())) == [
        "event_log_mismatch"
    ]


def test_an_ima_log_alone_and_after_the_boot_log() -> None:
    entries = [ima_entry(10, "/usr/bin/job", b"job"), ima_entry(10, "/etc/conf", b"conf")]
    ima = b"".join(entries)
    alone = Quote(pcrs={"sha256": {10: ima_pcr(entries, "sha256")}})
    assert codes(alone, alone.evidence(ima_log=ima)) == []
    # after a boot log that also extends PCR 10: one sequence, boot events first
    boot = BootLog([(4, b"shim"), (10, b"boot_aggregate")])
    start = boot.pcrs("sha256")[10]
    pcrs = {**boot.pcrs("sha256"), 10: ima_pcr(entries, "sha256", start)}
    joined = Quote(pcrs={"sha256": pcrs})
    assert codes(joined, joined.evidence(event_log=boot.bytes(), ima_log=ima)) == []
    assert codes(joined, joined.evidence(ima_log=ima)) == ["event_log_mismatch"]


@pytest.mark.parametrize("log", [b"", b"\x00" * 31, BOOT.bytes()[:-1], BOOT.bytes() + b"\x00"])
def test_a_broken_log_is_malformed(log: bytes) -> None:
    quote = quote_over(BOOT)
    assert codes(quote, quote.evidence(event_log=log)) == ["malformed"]
