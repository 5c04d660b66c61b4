"""The TPM appraisal policy: named reference images of PCR values and expected events, the
AK paths accepted, and whether a log is required or an all-reset PCR set refused. JSON::

    {"evidence_kind": "tpm2-quote", "name": "...",
     "images": [{"name": "...", "pcrs": {"sha256": {"0": "<hex>", ...}},
                 "events": [{"pcr": 9, "digest": {"sha256": "<hex>"}, "label": "kernel"}]}],
     "ak_paths": ["enrolled", "gcp", "aws-nitrotpm"],
     "require_event_log": false, "reject_all_reset": true, "clock_skew_seconds": 60}

An image matches when every PCR it lists equals the quoted value and every event it lists
appears in the replayed log (same PCR, same digest in each bank it names). Fail closed: a
policy without images is refused, ``unendorsed`` is never an accepted path, and only
``{"evidence_kind": "tpm2-quote", "unsafe_accept_any": true}`` (in code
:class:`UnsafeAcceptAnyTpmPolicy`) accepts any PCR values, with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar

from verifier.errors import PolicyInvalid
from verifier.policy import (
    DEFAULT_CLOCK_SKEW,
    SchemePolicy,
    UnsafePolicyWarning,
    canonical_digest,
    check_images,
    json_seconds,
    policy_bool,
    policy_hex,
    policy_image_object,
    policy_images,
    policy_loads,
    policy_name,
    policy_object,
    policy_seconds,
)
from verifier.scheme import EvidenceKind
from verifier.tpm.structures import DIGEST_SIZES, MAX_PCR

__all__ = [
    "AK_PATHS",
    "ExpectedEvent",
    "TpmPolicy",
    "TpmReferenceImage",
    "UnsafeAcceptAnyTpmPolicy",
]

#: Who may vouch for the AK, in the order the scheme tries them. ``unendorsed`` is a result
#: name, never an accepted path.
AK_PATHS = ("aws-nitrotpm", "gcp", "enrolled")
_POLICY_KEYS = frozenset(
    {
        "name",
        "evidence_kind",
        "images",
        "ak_paths",
        "require_event_log",
        "reject_all_reset",
        "clock_skew_seconds",
        "unsafe_accept_any",
    }
)
MAX_LABEL = 128


@dataclass(frozen=True, slots=True)
class ExpectedEvent:
    pcr: int
    digests: Mapping[str, bytes]
    label: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.pcr, bool) or not 0 <= self.pcr <= MAX_PCR:
            raise PolicyInvalid(f"policy: event pcr must be 0..{MAX_PCR}")
        if not self.digests:
            raise PolicyInvalid("policy: an event names at least one digest")
        for bank, digest in self.digests.items():
            if DIGEST_SIZES.get(bank) != len(digest):
                raise PolicyInvalid(f"policy: event digest {bank!r} has the wrong bank or size")
        object.__setattr__(self, "digests", MappingProxyType(dict(sorted(self.digests.items()))))

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "pcr": self.pcr,
            "digest": {bank: value.hex() for bank, value in self.digests.items()},
        }
        if self.label is not None:
            out["label"] = self.label
        return out

    def describe(self) -> str:
        what = f"{self.label!r} " if self.label else ""
        digests = ", ".join(f"{b} {v.hex()}" for b, v in self.digests.items())
        return f"event {what}in PCR {self.pcr} ({digests})"


@dataclass(frozen=True, slots=True)
class TpmReferenceImage:
    """One acceptable platform state: PCR values by bank, and events the log must hold."""

    name: str
    pcrs: Mapping[str, Mapping[int, bytes]] = field(default_factory=dict)
    events: tuple[ExpectedEvent, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("reference image: a non-empty name is required")
        ordered: dict[str, Mapping[int, bytes]] = {}
        for bank in sorted(self.pcrs):
            size = DIGEST_SIZES.get(bank)
            if size is None:
                raise PolicyInvalid(
                    f"reference image {self.name!r}: bank {bank!r}; expected one of "
                    f"{', '.join(DIGEST_SIZES)}"
                )
            values = self.pcrs[bank]
            for index, value in values.items():
                if isinstance(index, bool) or not 0 <= index <= MAX_PCR or len(value) != size:
                    raise PolicyInvalid(
                        f"reference image {self.name!r}: {bank} PCR {index} must be an index "
                        f"0..{MAX_PCR} with a {size}-byte value"
                    )
            if values:
                ordered[bank] = MappingProxyType(dict(sorted(values.items())))
        object.__setattr__(self, "pcrs", MappingProxyType(ordered))
        object.__setattr__(self, "events", tuple(self.events))
        if not ordered and not self.events:
            raise PolicyInvalid(
                f"reference image {self.name!r} pins no PCR and no event: it would match any "
                "platform"
            )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "pcrs": {
                bank: {str(i): v.hex() for i, v in values.items()}
                for bank, values in self.pcrs.items()
            },
        }
        if self.events:
            out["events"] = [event.to_dict() for event in self.events]
        return out


@dataclass(frozen=True)
class TpmPolicy(SchemePolicy):
    """Reference values and rules an authentic TPM quote must satisfy."""

    name: str
    images: tuple[TpmReferenceImage, ...]
    ak_paths: tuple[str, ...] = AK_PATHS
    require_event_log: bool = False
    reject_all_reset: bool = True
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    evidence_kind: EvidenceKind = field(default=EvidenceKind.TPM2_QUOTE)
    _digest: str = field(init=False, repr=False, compare=False)

    accepts_any_measurement: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("policy: a non-empty name is required")
        if EvidenceKind(self.evidence_kind) is not EvidenceKind.TPM2_QUOTE:
            raise PolicyInvalid(f"policy {self.name!r}: a TPM policy judges tpm2-quote")
        object.__setattr__(self, "evidence_kind", EvidenceKind.TPM2_QUOTE)
        check_images(self, accepts="any platform", unsafe="UnsafeAcceptAnyTpmPolicy")
        paths = tuple(self.ak_paths)
        if not paths or len(set(paths)) != len(paths) or not set(paths) <= set(AK_PATHS):
            raise PolicyInvalid(
                f"policy {self.name!r}: ak_paths must be distinct names among "
                f"{', '.join(AK_PATHS)} ('unendorsed' is never accepted)"
            )
        object.__setattr__(self, "ak_paths", tuple(p for p in AK_PATHS if p in paths))
        if self.clock_skew < timedelta(0):
            raise PolicyInvalid(f"policy {self.name!r}: clock_skew must not be negative")
        object.__setattr__(self, "_digest", canonical_digest(self.to_dict()))

    @property
    def digest(self) -> str:
        return self._digest

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "evidence_kind": str(self.evidence_kind),
            "images": [image.to_dict() for image in self.images],
            "ak_paths": list(self.ak_paths),
            "require_event_log": self.require_event_log,
            "reject_all_reset": self.reject_all_reset,
            "clock_skew_seconds": json_seconds(self.clock_skew),
        }
        if self.accepts_any_measurement:
            out["unsafe_accept_any"] = True
        return out

    @classmethod
    def from_json(cls, text: str | bytes) -> TpmPolicy:
        return cls.from_dict(policy_loads(text))

    @classmethod
    def from_dict(cls, data: Any) -> TpmPolicy:
        data = policy_object(data, _POLICY_KEYS)
        if data.get("evidence_kind") != str(EvidenceKind.TPM2_QUOTE):
            raise PolicyInvalid("policy: a TPM policy needs evidence_kind 'tpm2-quote'")
        images = policy_images(data)
        paths = data.get("ak_paths", list(AK_PATHS))
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise PolicyInvalid("policy: 'ak_paths' must be a list of names")
        arguments: dict[str, Any] = {
            "images": tuple(_image(item) for item in images),
            "ak_paths": tuple(paths),
            "require_event_log": policy_bool(data, "require_event_log", False),
            "reject_all_reset": policy_bool(data, "reject_all_reset", True),
            "clock_skew": policy_seconds(data, "clock_skew_seconds", DEFAULT_CLOCK_SKEW),
        }
        unsafe = policy_bool(data, "unsafe_accept_any", False)
        name = policy_name(data, UnsafeAcceptAnyTpmPolicy.name if unsafe else None)
        if unsafe:
            return UnsafeAcceptAnyTpmPolicy(name=name, **arguments)
        return cls(name=name, **arguments)


@dataclass(frozen=True)
class UnsafeAcceptAnyTpmPolicy(TpmPolicy):
    """Accepts any PCR values. For exploration only: results are never better than
    ``warning``. The AK path, the binding, a required log and the all-reset rule are still
    checked."""

    name: str = "unsafe-accept-any"
    images: tuple[TpmReferenceImage, ...] = ()

    accepts_any_measurement: ClassVar[bool] = True

    def __post_init__(self) -> None:
        warnings.warn(
            "UnsafeAcceptAnyTpmPolicy accepts any PCR values; results are 'warning' at best",
            UnsafePolicyWarning,
            stacklevel=3,
        )
        super().__post_init__()


def _bank_values(value: Any, what: str) -> dict[str, bytes]:
    if not isinstance(value, dict) or not value:
        raise PolicyInvalid(f"policy: {what} must be a non-empty object of bank -> hex")
    out = {}
    for bank, digest in value.items():
        size = DIGEST_SIZES.get(bank)
        if size is None:
            raise PolicyInvalid(f"policy: {what}: unknown bank {str(bank)[:20]!r}")
        out[bank] = policy_hex(digest, size, f"{what} {bank}")
    return out


def _image(item: Any) -> TpmReferenceImage:
    item, name = policy_image_object(item, {"name", "pcrs", "events"})
    pcrs = item.get("pcrs", {})
    if not isinstance(pcrs, dict):
        raise PolicyInvalid(f"policy: image {name!r}: 'pcrs' must be an object")
    banks: dict[str, dict[int, bytes]] = {}
    for bank, values in pcrs.items():
        size = DIGEST_SIZES.get(bank)
        if size is None or not isinstance(values, dict):
            raise PolicyInvalid(f"policy: image {name!r}: pcrs bank {str(bank)[:20]!r}")
        banks[bank] = {}
        for index, value in values.items():
            if not isinstance(index, str) or not index.isdigit() or int(index) > MAX_PCR:
                raise PolicyInvalid(
                    f"policy: image {name!r}: {bank} PCR index {str(index)[:8]!r}; expected "
                    f"'0'..'{MAX_PCR}'"
                )
            banks[bank][int(index)] = policy_hex(value, size, f"image {name!r}: {bank} PCR {index}")
    events = item.get("events", [])
    if not isinstance(events, list):
        raise PolicyInvalid(f"policy: image {name!r}: 'events' must be a list")
    return TpmReferenceImage(name=name, pcrs=banks, events=tuple(_event(e, name) for e in events))


def _event(item: Any, image: str) -> ExpectedEvent:
    if not isinstance(item, dict) or set(item) - {"pcr", "digest", "label"}:
        raise PolicyInvalid(f"policy: image {image!r}: an event is {{pcr, digest, label}}")
    pcr = item.get("pcr")
    if not isinstance(pcr, int) or isinstance(pcr, bool):
        raise PolicyInvalid(f"policy: image {image!r}: event 'pcr' must be an integer")
    label = item.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        raise PolicyInvalid(f"policy: image {image!r}: event 'label' must be a short string")
    return ExpectedEvent(
        pcr=pcr,
        digests=_bank_values(item.get("digest"), f"image {image!r}: event digest"),
        label=label,
    )
