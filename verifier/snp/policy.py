"""The SEV-SNP appraisal policy: named reference images, guest policy rules, VMPL and a
minimum TCB, on the shared base of :mod:`verifier.policy`.

A report matches an image when its measurement is the image's and every optional value the
image lists (host_data, id_key_digest, author_key_digest, family_id, image_id) is equal;
several images may be acceptable at once. The JSON form (``--policy FILE``, and what the
ledger records)::

    {
      "name": "inference-snp",
      "evidence_kind": "amd-sev-snp",
      "images": [
        {"name": "inference-snp-v1", "measurement": "<96 hex>",
         "host_data": "<64 hex, optional>", "id_key_digest": "<96 hex, optional>",
         "author_key_digest": "<96 hex, optional>", "family_id": "<32 hex, optional>",
         "image_id": "<32 hex, optional>"}
      ],
      "allow_debug": false,
      "allow_smt": true,
      "allow_migration_agent": false,
      "max_vmpl": 0,
      "min_tcb": {"bootloader": 0, "tee": 0, "snp": 0, "microcode": 0, "fmc": 0},
      "clock_skew_seconds": 60
    }

Defaults are as shown; ``min_tcb`` may name any subset of the components (``fmc`` applies to
Turin only). Fail closed: a policy without images is refused;
``{"evidence_kind": "amd-sev-snp", "unsafe_accept_any": true}`` (in code
:class:`UnsafeAcceptAnySnpPolicy`) accepts any measurement, warns, and makes every result at
best ``warning``.
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
from verifier.snp.product import TCB_COMPONENTS

__all__ = ["SnpPolicy", "SnpReferenceImage", "UnsafeAcceptAnySnpPolicy"]

#: Optional image fields and their sizes in bytes.
IMAGE_FIELDS = {
    "host_data": 32,
    "id_key_digest": 48,
    "author_key_digest": 48,
    "family_id": 16,
    "image_id": 16,
}
MEASUREMENT_BYTES = 48
_MAX_VMPL = 3
_POLICY_KEYS = frozenset(
    {
        "name",
        "evidence_kind",
        "images",
        "allow_debug",
        "allow_smt",
        "allow_migration_agent",
        "max_vmpl",
        "min_tcb",
        "clock_skew_seconds",
        "unsafe_accept_any",
    }
)


@dataclass(frozen=True, slots=True)
class SnpReferenceImage:
    """One acceptable guest image: a name, its launch measurement, and optionally the other
    launch values the report must show."""

    name: str
    measurement: bytes
    host_data: bytes | None = None
    id_key_digest: bytes | None = None
    author_key_digest: bytes | None = None
    family_id: bytes | None = None
    image_id: bytes | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("reference image: a non-empty name is required")
        if len(self.measurement) != MEASUREMENT_BYTES:
            raise PolicyInvalid(
                f"reference image {self.name!r}: measurement must be {MEASUREMENT_BYTES} bytes"
            )
        for name, size in IMAGE_FIELDS.items():
            value = getattr(self, name)
            if value is not None and len(value) != size:
                raise PolicyInvalid(f"reference image {self.name!r}: {name} must be {size} bytes")

    def expected(self) -> dict[str, bytes]:
        """Every value this image pins, measurement first."""
        out = {"measurement": self.measurement}
        for name in IMAGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name}
        out.update((name, value.hex()) for name, value in self.expected().items())
        return out


@dataclass(frozen=True)
class SnpPolicy(SchemePolicy):
    """Reference values and rules that an authentic SEV-SNP report must satisfy."""

    name: str
    images: tuple[SnpReferenceImage, ...]
    allow_debug: bool = False
    #: Whether the guest may allow the host to use SMT (guest policy bit 16).
    allow_smt: bool = True
    #: Whether the guest may be associated with a migration agent (guest policy bit 18).
    allow_migration_agent: bool = False
    #: The highest VMPL the report may come from (0 is the most privileged).
    max_vmpl: int = 0
    #: Minimum SPL per TCB component of the reported TCB (the one the VCEK/VLEK certifies).
    min_tcb: Mapping[str, int] = field(default_factory=dict)
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    evidence_kind: EvidenceKind = field(default=EvidenceKind.AMD_SEV_SNP)
    _digest: str = field(init=False, repr=False, compare=False)

    accepts_any_measurement: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("policy: a non-empty name is required")
        if EvidenceKind(self.evidence_kind) is not EvidenceKind.AMD_SEV_SNP:
            raise PolicyInvalid(f"policy {self.name!r}: an SEV-SNP policy judges amd-sev-snp")
        object.__setattr__(self, "evidence_kind", EvidenceKind.AMD_SEV_SNP)
        check_images(self, accepts="any guest", unsafe="UnsafeAcceptAnySnpPolicy")
        if isinstance(self.max_vmpl, bool) or not 0 <= self.max_vmpl <= _MAX_VMPL:
            raise PolicyInvalid(f"policy {self.name!r}: max_vmpl must be 0..3")
        for component, minimum in self.min_tcb.items():
            if component not in TCB_COMPONENTS:
                raise PolicyInvalid(
                    f"policy {self.name!r}: min_tcb names {component!r}; expected "
                    f"{', '.join(TCB_COMPONENTS)}"
                )
            value: object = minimum  # from JSON, whatever the annotation says
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
                raise PolicyInvalid(
                    f"policy {self.name!r}: min_tcb {component} must be an integer 0..255"
                )
        ordered = {c: self.min_tcb[c] for c in TCB_COMPONENTS if c in self.min_tcb}
        object.__setattr__(self, "min_tcb", MappingProxyType(ordered))
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
            "allow_debug": self.allow_debug,
            "allow_smt": self.allow_smt,
            "allow_migration_agent": self.allow_migration_agent,
            "max_vmpl": self.max_vmpl,
            "min_tcb": dict(self.min_tcb),
            "clock_skew_seconds": json_seconds(self.clock_skew),
        }
        if self.accepts_any_measurement:
            out["unsafe_accept_any"] = True
        return out

    @classmethod
    def from_json(cls, text: str | bytes) -> SnpPolicy:
        """Parse the JSON form; raises :class:`PolicyInvalid` with the reason."""
        return cls.from_dict(policy_loads(text))

    @classmethod
    def from_dict(cls, data: Any) -> SnpPolicy:
        data = policy_object(data, _POLICY_KEYS)
        if data.get("evidence_kind") != str(EvidenceKind.AMD_SEV_SNP):
            raise PolicyInvalid("policy: an SEV-SNP policy needs evidence_kind 'amd-sev-snp'")
        unsafe = policy_bool(data, "unsafe_accept_any", False)
        max_vmpl = data.get("max_vmpl", 0)
        if not isinstance(max_vmpl, int) or isinstance(max_vmpl, bool):
            raise PolicyInvalid("policy: 'max_vmpl' must be an integer 0..3")
        min_tcb = data.get("min_tcb", {})
        if not isinstance(min_tcb, dict):
            raise PolicyInvalid("policy: 'min_tcb' must be an object")
        images = policy_images(data)
        arguments: dict[str, Any] = {
            "images": tuple(_image(item) for item in images),
            "allow_debug": policy_bool(data, "allow_debug", False),
            "allow_smt": policy_bool(data, "allow_smt", True),
            "allow_migration_agent": policy_bool(data, "allow_migration_agent", False),
            "max_vmpl": max_vmpl,
            "min_tcb": min_tcb,
            "clock_skew": policy_seconds(data, "clock_skew_seconds", DEFAULT_CLOCK_SKEW),
        }
        if unsafe:
            name = policy_name(data, UnsafeAcceptAnySnpPolicy.name)
            return UnsafeAcceptAnySnpPolicy(name=name, **arguments)
        return cls(name=policy_name(data, None), **arguments)


@dataclass(frozen=True)
class UnsafeAcceptAnySnpPolicy(SnpPolicy):
    """Accepts any launch measurement. For exploration only: results are never better than
    ``warning``. Debug guests, SMT, migration agents, VMPL, minimum TCB, nonce and binding
    are still checked."""

    name: str = "unsafe-accept-any"
    images: tuple[SnpReferenceImage, ...] = ()

    accepts_any_measurement: ClassVar[bool] = True

    def __post_init__(self) -> None:
        warnings.warn(
            "UnsafeAcceptAnySnpPolicy accepts any launch measurement; results are 'warning' "
            "at best",
            UnsafePolicyWarning,
            stacklevel=3,
        )
        super().__post_init__()


def _image(item: Any) -> SnpReferenceImage:
    item, name = policy_image_object(item, {"name", "measurement", *IMAGE_FIELDS})
    if "measurement" not in item:
        raise PolicyInvalid(f"policy: image {name!r}: 'measurement' is required")
    values = {
        key: policy_hex(item[key], size, f"image {name!r}: {key}")
        for key, size in (("measurement", MEASUREMENT_BYTES), *IMAGE_FIELDS.items())
        if key in item
    }
    return SnpReferenceImage(name=name, **values)
