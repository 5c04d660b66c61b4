"""Event logs against the quote: parse the logs that came with it (with
:mod:`verifier.tpm.eventlog`, the contract's parser), replay them, and require every PCR the
logs touch, in each bank the quote carries and the logs have digests for, to equal the
quoted value (``event_log_mismatch`` otherwise).

A TCG PC Client log and an IMA log may come together: the IMA events extend PCR 10 after the
boot events, so they are replayed as one sequence, boot log first.

TODO(eventlog): the parser is another helper's module, landing in parallel; it is imported
by name at run time so that this scheme type-checks without it. Once it is merged, import
``parse_event_log``/``parse_ima_log`` directly and drop :class:`_Parser`. Until then a
quote that brings a log fails closed with ``unsupported``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from verifier.errors import EventLogMismatch, UnsupportedEvidence

__all__ = ["EventLike", "LogLike", "ReplayedLog", "replay_logs"]


class EventLike(Protocol):
    @property
    def pcr(self) -> int: ...
    @property
    def digests(self) -> Mapping[str, bytes]: ...


class LogLike(Protocol):
    @property
    def format(self) -> str: ...
    @property
    def events(self) -> tuple[EventLike, ...]: ...
    def replay(self, bank: str) -> dict[int, bytes]: ...


class _Parser(Protocol):
    def __call__(self, data: bytes) -> LogLike: ...


@dataclass(frozen=True, slots=True)
class ReplayedLog:
    """What the claims say of the logs: the format and SHA-256 of the boot log (of the IMA
    log when it came alone), the events of both, the PCRs they account for."""

    format: str
    sha256: str
    events: tuple[EventLike, ...]
    replayed: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.format,
            "sha256": self.sha256,
            "events": len(self.events),
            "replayed": list(self.replayed),
        }


def _parser(name: str) -> _Parser:
    try:
        module = importlib.import_module("verifier.tpm.eventlog")
    except ModuleNotFoundError:
        raise UnsupportedEvidence(
            "tpm2-quote: an event log came with the quote, but this verifier has no event "
            "log parser"
        ) from None
    return cast(_Parser, getattr(module, name))


def replay_logs(
    event_log: bytes | None,
    ima_log: bytes | None,
    quoted: Mapping[str, Mapping[int, bytes]],
) -> ReplayedLog | None:
    """Parse and replay the logs; raises MalformedEvidence (the parser's), EventLogMismatch."""
    logs: list[LogLike] = []
    if event_log is not None:
        logs.append(_parser("parse_event_log")(event_log))
    if ima_log is not None:
        logs.append(_parser("parse_ima_log")(ima_log))
    raw = event_log if event_log is not None else ima_log
    if raw is None:
        return None
    log = logs[0]
    if len(logs) == 2:
        # The contract's EventLog is a dataclass: the IMA events follow the boot events.
        log = cast(LogLike, dataclasses.replace(cast(Any, log), events=log.events + logs[1].events))
    replayed: set[int] = set()
    for bank, values in quoted.items():
        if not any(bank in event.digests for event in log.events):
            continue
        for index, value in log.replay(bank).items():
            if index not in values:
                continue
            if not hmac.compare_digest(values[index], value):
                raise EventLogMismatch(
                    f"event log: replays {bank} PCR {index} to {value.hex()}, but the quote "
                    f"says {values[index].hex()}"
                )
            replayed.add(index)
    return ReplayedLog(
        format=log.format,
        sha256=hashlib.sha256(raw).hexdigest(),
        events=log.events,
        replayed=tuple(sorted(replayed)),
    )
