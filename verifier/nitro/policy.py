"""The Nitro appraisal policy: reference values and freshness rules (RFC 9334's "Reference
Values"), on the shared base of :mod:`verifier.policy`.

A :class:`Policy` names one or more acceptable enclave images. Each image lists the PCR values
it expects, by index; a document matches an image when every listed PCR is equal. Other
settings: the kind of evidence accepted, whether debug-mode enclaves (PCR0 all zero) are
allowed, the maximum age of a document and the clock skew tolerated.

Fail closed: a policy without images is refused (:class:`~verifier.errors.PolicyInvalid`).
Accepting any measurement needs :class:`UnsafeAcceptAnyPolicy`, which says so in its name,
warns when constructed, and makes every result at best ``warning``.

The JSON form (``--policy FILE``, and what the ledger records)::

    {
      "name": "inference-prod",
      "evidence_kind": "aws-nitro-enclave",
      "images": [
        {"name": "inference-v1.4", "pcrs": {"0": "<96 hex>", "1": "<96 hex>", "2": "<96 hex>"}}
      ],
      "allow_debug": false,
      "max_age_seconds": 300,
      "clock_skew_seconds": 60
    }

``{"unsafe_accept_any": true}`` (with no images) builds an :class:`UnsafeAcceptAnyPolicy`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar

from verifier.errors import PolicyInvalid
from verifier.nitro.document import PCR_BYTES
from verifier.policy import (
    DEFAULT_CLOCK_SKEW,
    SchemePolicy,
    UnsafePolicyWarning,
    canonical_digest,
    check_images,
    policy_bool,
    policy_images,
    policy_loads,
    policy_name,
    policy_object,
    policy_seconds,
)
from verifier.scheme import EvidenceKind

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_MAX_AGE",
    "NITRO_KINDS",
    "Policy",
    "ReferenceImage",
    "UnsafeAcceptAnyPolicy",
    "UnsafePolicyWarning",
]

DEFAULT_MAX_AGE = timedelta(minutes=5)
#: The evidence kinds a Nitro policy can judge: enclaves and NitroTPM share envelope and PKI.
NITRO_KINDS = (EvidenceKind.AWS_NITRO_ENCLAVE, EvidenceKind.AWS_NITRO_TPM)
_MAX_PCR_INDEX = 31
_POLICY_KEYS = frozenset(
    {
        "name",
        "evidence_kind",
        "images",
        "allow_debug",
        "max_age_seconds",
        "clock_skew_seconds",
        "unsafe_accept_any",
    }
)


@dataclass(frozen=True, slots=True)
class ReferenceImage:
    """One acceptable enclave image: a name and the PCR values it must show."""

    name: str
    pcrs: Mapping[int, bytes]

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("reference image: a non-empty name is required")
        if not self.pcrs:
            raise PolicyInvalid(f"reference image {self.name!r}: lists no PCR values")
        for index, value in self.pcrs.items():
            if isinstance(index, bool) or not 0 <= index <= _MAX_PCR_INDEX:
                raise PolicyInvalid(
                    f"reference image {self.name!r}: PCR index {index} is outside 0..31"
                )
            if len(value) != PCR_BYTES:
                raise PolicyInvalid(
                    f"reference image {self.name!r}: PCR{index} must be {PCR_BYTES} bytes"
                )
        object.__setattr__(self, "pcrs", MappingProxyType(dict(sorted(self.pcrs.items()))))

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "pcrs": {str(index): value.hex() for index, value in self.pcrs.items()},
        }


@dataclass(frozen=True)
class Policy(SchemePolicy):
    """Reference values and freshness rules that authentic Nitro evidence must satisfy."""

    name: str
    images: tuple[ReferenceImage, ...]
    evidence_kind: EvidenceKind = EvidenceKind.AWS_NITRO_ENCLAVE
    allow_debug: bool = False
    #: None means no age limit; only an explicit choice gives that.
    max_age: timedelta | None = DEFAULT_MAX_AGE
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    _digest: str = field(init=False, repr=False, compare=False)

    accepts_any_measurement: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("policy: a non-empty name is required")
        object.__setattr__(self, "evidence_kind", EvidenceKind(self.evidence_kind))
        if self.evidence_kind not in NITRO_KINDS:
            raise PolicyInvalid(
                f"policy {self.name!r}: a Nitro policy judges "
                f"{' or '.join(NITRO_KINDS)}, not {self.evidence_kind}"
            )
        check_images(self, accepts="any enclave", unsafe="UnsafeAcceptAnyPolicy")
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise PolicyInvalid(f"policy {self.name!r}: max_age must be positive")
        if self.clock_skew < timedelta(0):
            raise PolicyInvalid(f"policy {self.name!r}: clock_skew must not be negative")
        object.__setattr__(self, "_digest", canonical_digest(self.to_dict()))

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON form: what "the policy that judged it" points at."""
        return self._digest

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "evidence_kind": str(self.evidence_kind),
            "images": [image.to_dict() for image in self.images],
            "allow_debug": self.allow_debug,
            "max_age_seconds": None if self.max_age is None else self.max_age.total_seconds(),
            "clock_skew_seconds": self.clock_skew.total_seconds(),
        }
        if self.accepts_any_measurement:
            out["unsafe_accept_any"] = True
        return out

    @classmethod
    def from_json(cls, text: str | bytes) -> Policy:
        """Parse the JSON form; raises :class:`PolicyInvalid` with the reason."""
        return cls.from_dict(policy_loads(text))

    @classmethod
    def from_dict(cls, data: Any) -> Policy:
        data = policy_object(data, _POLICY_KEYS)
        unsafe = policy_bool(data, "unsafe_accept_any", False)
        kind_text = data.get("evidence_kind", str(EvidenceKind.AWS_NITRO_ENCLAVE))
        try:
            kind = EvidenceKind(kind_text)
        except ValueError:
            kind = None
        if kind not in NITRO_KINDS:
            choices = ", ".join(NITRO_KINDS)
            raise PolicyInvalid(f"policy: evidence_kind must be one of {choices}") from None
        allow_debug = policy_bool(data, "allow_debug", False)
        max_age = (
            None
            if data.get("max_age_seconds", 0) is None
            else policy_seconds(data, "max_age_seconds", DEFAULT_MAX_AGE)
        )
        clock_skew = policy_seconds(data, "clock_skew_seconds", DEFAULT_CLOCK_SKEW)
        parsed = tuple(_image(item) for item in policy_images(data))
        if unsafe:
            return UnsafeAcceptAnyPolicy(
                name=policy_name(data, UnsafeAcceptAnyPolicy.name),
                images=parsed,
                evidence_kind=kind,
                allow_debug=allow_debug,
                max_age=max_age,
                clock_skew=clock_skew,
            )
        return cls(
            name=policy_name(data, None),
            images=parsed,
            evidence_kind=kind,
            allow_debug=allow_debug,
            max_age=max_age,
            clock_skew=clock_skew,
        )


@dataclass(frozen=True)
class UnsafeAcceptAnyPolicy(Policy):
    """Accepts any PCR values. For exploration only: results are never better than ``warning``.

    Debug-mode documents are still rejected unless ``allow_debug`` is set, and nonce, binding
    and freshness are still checked.
    """

    name: str = "unsafe-accept-any"
    images: tuple[ReferenceImage, ...] = ()

    accepts_any_measurement: ClassVar[bool] = True

    def __post_init__(self) -> None:
        warnings.warn(
            "UnsafeAcceptAnyPolicy accepts any enclave measurement; results are 'warning' at best",
            UnsafePolicyWarning,
            stacklevel=3,
        )
        super().__post_init__()


def _image(item: Any) -> ReferenceImage:
    if not isinstance(item, dict) or set(item) != {"name", "pcrs"}:
        raise PolicyInvalid("policy: each image must be an object with exactly 'name' and 'pcrs'")
    name, pcrs = item["name"], item["pcrs"]
    if not isinstance(name, str):
        raise PolicyInvalid("policy: image 'name' must be a string")
    if not isinstance(pcrs, dict):
        raise PolicyInvalid(f"policy: image {name!r}: 'pcrs' must be an object")
    values: dict[int, bytes] = {}
    for key, hex_value in pcrs.items():
        if not isinstance(key, str) or not key.isdigit() or len(key) > 2:
            raise PolicyInvalid(f"policy: image {name!r}: PCR index {key!r} is not a number")
        if not isinstance(hex_value, str):
            raise PolicyInvalid(f"policy: image {name!r}: PCR{key} must be a hex string")
        try:
            values[int(key)] = bytes.fromhex(hex_value)
        except ValueError:
            raise PolicyInvalid(f"policy: image {name!r}: PCR{key} is not hexadecimal") from None
    return ReferenceImage(name=name, pcrs=values)
