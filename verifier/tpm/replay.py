"""Event logs against the quote: parse the logs that came with it (:mod:`verifier.tpm.eventlog`),
replay them, and require every PCR the logs extend that the quote includes, in each bank the
quote carries and the logs have digests for, to equal the quoted value
(``event_log_mismatch`` otherwise).

A TCG PC Client log and an IMA log may come together: the IMA events extend PCR 10 after the
boot events, so they are replayed as one sequence, boot log first. A log none of whose banks
the quote carries cannot be checked against it, so it is refused as ``event_log_mismatch``
too (it would otherwise vouch for events nothing verified).

What a log proves: an event counts (for a policy's expected events) only in a PCR the replay
compared with the quote, and only by its digests of the banks replayed; an event in a PCR the
quote does not include is carried, not proven.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from verifier.errors import EventLogMismatch
from verifier.tpm.eventlog import (
    BANKS,
    EV_NO_ACTION,
    Event,
    EventLog,
    parse_event_log,
    parse_ima_log,
)

__all__ = ["ReplayedLog", "replay_logs"]


@dataclass(frozen=True, slots=True)
class ReplayedLog:
    """What the claims say of the logs: the format and SHA-256 of the boot log (of the IMA
    log when it came alone), the events of both, the PCRs they account for (compared
    with the quote, in some bank)."""

    format: str
    sha256: str
    events: tuple[Event, ...]
    replayed: tuple[int, ...]
    #: (bank, PCR) pairs the replay compared with the quote
    compared: frozenset[tuple[str, int]] = frozenset()

    def proves(self, pcr: int, digests: Mapping[str, bytes]) -> bool:
        """True when an extending event of this log in ``pcr`` carries every one of
        ``digests`` (bank -> digest), each in a bank where the replay compared ``pcr`` with
        the quote (EV_NO_ACTION events extend nothing, so never match)."""
        if not digests or any((bank, pcr) not in self.compared for bank in digests):
            return False
        return any(
            event.pcr == pcr
            and event.type != EV_NO_ACTION
            and all(
                bank in event.digests and hmac.compare_digest(event.digests[bank], digest)
                for bank, digest in digests.items()
            )
            for event in self.events
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.format,
            "sha256": self.sha256,
            "events": len(self.events),
            "replayed": list(self.replayed),
        }


def _joined(logs: list[EventLog]) -> EventLog:
    if len(logs) == 1:
        return logs[0]
    boot, ima = logs
    banks = tuple(bank for bank in boot.banks if bank in ima.banks)
    return EventLog(boot.format, boot.events + ima.events, banks)


def replay_logs(
    event_log: bytes | None,
    ima_log: bytes | None,
    quoted: Mapping[str, Mapping[int, bytes]],
) -> ReplayedLog | None:
    """Parse and replay the logs; None if none came. Raises MalformedEvidence or
    EvidenceTooLarge (the parser's), EventLogMismatch."""
    logs: list[EventLog] = []
    if event_log is not None:
        logs.append(parse_event_log(event_log))
    if ima_log is not None:
        logs.append(parse_ima_log(ima_log))
    raw = event_log if event_log is not None else ima_log
    if raw is None:
        return None
    log = _joined(logs)
    banks = tuple(bank for bank in BANKS if bank in quoted and bank in log.banks)
    if not banks:
        carried = ", ".join(log.banks) or "none"
        raise EventLogMismatch(
            f"event log: its digests ({carried}) are of no bank the quote carries "
            f"({', '.join(quoted) or 'none'}): it cannot be replayed against the quote"
        )
    compared: set[tuple[str, int]] = set()
    for bank in banks:
        values = quoted[bank]
        for index, value in sorted(log.replay(bank).items()):
            if index not in values:
                continue
            if not hmac.compare_digest(values[index], value):
                raise EventLogMismatch(
                    f"event log: replays {bank} PCR {index} to {value.hex()}, but the quote "
                    f"says {values[index].hex()}"
                )
            compared.add((bank, index))
    return ReplayedLog(
        format=log.format,
        sha256=hashlib.sha256(raw).hexdigest(),
        events=log.events,
        replayed=tuple(sorted({index for _, index in compared})),
        compared=frozenset(compared),
    )
