"""The NVIDIA GPU and NVSwitch appraisal policy, on the shared base of :mod:`verifier.policy`.

A report matches an image when its architecture (told from the verified leaf certificate)
is the image's, its driver version is one the image lists (GPUs; NVSwitches report none) and
its VBIOS version is one the image lists. The measurements are judged by the RIMs given with
the evidence; ``require_rims`` says which must be there. ``feature_flags`` lists the
confidential-computing modes accepted (opaque field 36: SPT single-GPU passthrough, MPT
multi-GPU passthrough, PPCIE protected PCIe); a report that states none fails such a
policy; ``null`` does not look at the flag. The JSON form::

    {
      "name": "h100-cc",
      "evidence_kind": "nvidia-gpu",
      "images": [{"name": "h100-590", "arch": "HOPPER", "driver_versions": ["590.12"],
                  "vbios_versions": ["96.00.a5.00.01"]}],
      "require_rims": ["driver", "vbios"],
      "feature_flags": ["SPT", "MPT", "PPCIE"],
      "min_gpus": 1, "min_switches": 0,
      "clock_skew_seconds": 60
    }

Defaults: ``require_rims`` both, ``feature_flags`` null, ``min_gpus`` 1, ``min_switches`` 0.
``min_gpus`` and ``min_switches`` say which devices must be beside the CPU evidence of one
inference (GPUs: Hopper and Blackwell; NVSwitches for protected PCIe): they are checked
where a submission's devices are composed, not per report. Versions are compared lowercased.
Fail closed: a policy without images is refused, and an image of a GPU architecture must
list driver versions; ``{"evidence_kind": "nvidia-gpu", "unsafe_accept_any": true}`` (in
code :class:`UnsafeAcceptAnyNvidiaPolicy`) accepts any architecture and version, warns, and
makes every result at best ``warning`` (RIMs given are still compared).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from verifier.errors import PolicyInvalid
from verifier.nvidia.report import FeatureFlag
from verifier.nvidia.rim import RimKind
from verifier.policy import (
    DEFAULT_CLOCK_SKEW,
    SchemePolicy,
    UnsafePolicyWarning,
    canonical_digest,
    check_images,
    json_seconds,
    policy_bool,
    policy_images,
    policy_loads,
    policy_name,
    policy_object,
    policy_seconds,
)
from verifier.scheme import EvidenceKind

__all__ = ["ARCHITECTURES", "NvidiaImage", "NvidiaPolicy", "UnsafeAcceptAnyNvidiaPolicy"]

#: Architectures, and whether their devices report a driver version.
ARCHITECTURES = {"HOPPER": True, "BLACKWELL": True, "LS10": False}
_POLICY_KEYS = frozenset(
    {
        "name",
        "evidence_kind",
        "images",
        "require_rims",
        "feature_flags",
        "clock_skew_seconds",
        "unsafe_accept_any",
        "min_gpus",
        "min_switches",
    }
)
#: the most devices a policy may require (a submission carries at most 16)
MAX_REQUIRED_DEVICES = 16
_IMAGE_KEYS = frozenset({"name", "arch", "driver_versions", "vbios_versions"})
_MAX_VERSION = 40


@dataclass(frozen=True, slots=True)
class NvidiaImage:
    name: str
    arch: str
    driver_versions: tuple[str, ...]
    vbios_versions: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("image: a non-empty name is required")
        if isinstance(self.arch, str):  # as NVIDIA writes it, or as a policy store keeps it
            object.__setattr__(self, "arch", self.arch.upper())
        if self.arch not in ARCHITECTURES:
            raise PolicyInvalid(
                f"image {self.name!r}: arch must be one of {', '.join(ARCHITECTURES)}"
            )
        object.__setattr__(self, "driver_versions", _versions(self.driver_versions, self.name))
        object.__setattr__(self, "vbios_versions", _versions(self.vbios_versions, self.name))
        if not self.vbios_versions:
            raise PolicyInvalid(f"image {self.name!r}: vbios_versions must not be empty")
        if ARCHITECTURES[self.arch] and not self.driver_versions:
            raise PolicyInvalid(
                f"image {self.name!r}: a {self.arch} image must list driver_versions"
            )
        if not ARCHITECTURES[self.arch] and self.driver_versions:
            raise PolicyInvalid(
                f"image {self.name!r}: {self.arch} devices report no driver version"
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "arch": self.arch,
            "driver_versions": list(self.driver_versions),
            "vbios_versions": list(self.vbios_versions),
        }


def _versions(values: Any, name: str) -> tuple[str, ...]:
    if not isinstance(values, list | tuple) or not all(
        isinstance(v, str) and 0 < len(v) <= _MAX_VERSION and v.isprintable() for v in values
    ):
        raise PolicyInvalid(f"image {name!r}: versions must be a list of short strings")
    return tuple(v.lower() for v in values)


@dataclass(frozen=True)
class NvidiaPolicy(SchemePolicy):
    """Reference values and rules that an authentic NVIDIA report must satisfy."""

    name: str
    images: tuple[NvidiaImage, ...]
    require_rims: tuple[RimKind, ...] = (RimKind.DRIVER, RimKind.VBIOS)
    feature_flags: tuple[FeatureFlag, ...] | None = None
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    evidence_kind: EvidenceKind = field(default=EvidenceKind.NVIDIA_GPU)
    #: devices that must be beside the CPU evidence (checked where devices are composed)
    min_gpus: int = 1
    min_switches: int = 0
    _digest: str = field(init=False, repr=False, compare=False)

    accepts_any_measurement: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise PolicyInvalid("policy: a non-empty name is required")
        if EvidenceKind(self.evidence_kind) is not EvidenceKind.NVIDIA_GPU:
            raise PolicyInvalid(f"policy {self.name!r}: an NVIDIA policy judges nvidia-gpu")
        object.__setattr__(self, "evidence_kind", EvidenceKind.NVIDIA_GPU)
        check_images(
            self, images="images", accepts="any device", unsafe="UnsafeAcceptAnyNvidiaPolicy"
        )
        try:
            rims = tuple(sorted({RimKind(k) for k in self.require_rims}))
            flags = (
                None
                if self.feature_flags is None
                else tuple(sorted({FeatureFlag(f) for f in self.feature_flags}))
            )
        except (ValueError, TypeError):
            raise PolicyInvalid(
                f"policy {self.name!r}: require_rims are driver or vbios; feature_flags are "
                "SPT, MPT or PPCIE"
            ) from None
        object.__setattr__(self, "require_rims", rims)
        object.__setattr__(self, "feature_flags", flags)
        if self.clock_skew < timedelta(0):
            raise PolicyInvalid(f"policy {self.name!r}: clock_skew must not be negative")
        for count in (self.min_gpus, self.min_switches):
            if type(count) is not int or not 0 <= count <= MAX_REQUIRED_DEVICES:
                raise PolicyInvalid(
                    f"policy {self.name!r}: min_gpus and min_switches are whole numbers, "
                    f"0 to {MAX_REQUIRED_DEVICES}"
                )
        object.__setattr__(self, "_digest", canonical_digest(self.to_dict()))

    @property
    def digest(self) -> str:
        return self._digest

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "evidence_kind": str(self.evidence_kind),
            "images": [image.to_dict() for image in self.images],
            "require_rims": [str(k) for k in self.require_rims],
            "feature_flags": None
            if self.feature_flags is None
            else [str(f) for f in self.feature_flags],
            "clock_skew_seconds": json_seconds(self.clock_skew),
            "min_gpus": self.min_gpus,
            "min_switches": self.min_switches,
        }
        if self.accepts_any_measurement:
            out["unsafe_accept_any"] = True
        return out

    @classmethod
    def from_json(cls, text: str | bytes) -> NvidiaPolicy:
        return cls.from_dict(policy_loads(text))

    @classmethod
    def from_dict(cls, data: Any) -> NvidiaPolicy:
        data = policy_object(data, _POLICY_KEYS)
        if data.get("evidence_kind") != str(EvidenceKind.NVIDIA_GPU):
            raise PolicyInvalid("policy: an NVIDIA policy needs evidence_kind 'nvidia-gpu'")
        images = policy_images(data)
        unsafe = policy_bool(data, "unsafe_accept_any", False)
        # accept-any requires no RIM unless it says so, as UnsafeAcceptAnyNvidiaPolicy() does
        rims = data.get("require_rims", [] if unsafe else ["driver", "vbios"])
        flags = data.get("feature_flags")
        if not isinstance(rims, list) or not (flags is None or isinstance(flags, list)):
            raise PolicyInvalid(
                "policy: 'require_rims' must be a list, 'feature_flags' a list or null"
            )
        if not all(isinstance(x, str) for x in [*rims, *(flags or [])]):
            raise PolicyInvalid("policy: 'require_rims' and 'feature_flags' hold strings")
        arguments: dict[str, Any] = {
            "images": tuple(_image(item) for item in images),
            "require_rims": tuple(rims),
            "feature_flags": None if flags is None else tuple(flags),
            "clock_skew": policy_seconds(data, "clock_skew_seconds", DEFAULT_CLOCK_SKEW),
            "min_gpus": data.get("min_gpus", 1),
            "min_switches": data.get("min_switches", 0),
        }
        name = policy_name(data, UnsafeAcceptAnyNvidiaPolicy.name)
        if unsafe:
            return UnsafeAcceptAnyNvidiaPolicy(name=name, **arguments)
        if "name" not in data:
            raise PolicyInvalid("policy: 'name' is required")
        return cls(name=name, **arguments)


@dataclass(frozen=True)
class UnsafeAcceptAnyNvidiaPolicy(NvidiaPolicy):
    """Accepts any architecture, driver and VBIOS version, and requires no RIM by default.
    For exploration only: results are never better than ``warning``. The chain, signature,
    FWID, nonce, the RIMs given and the feature flags asked for are still checked."""

    name: str = "unsafe-accept-any"
    images: tuple[NvidiaImage, ...] = ()
    require_rims: tuple[RimKind, ...] = ()

    accepts_any_measurement: ClassVar[bool] = True

    def __post_init__(self) -> None:
        warnings.warn(
            "UnsafeAcceptAnyNvidiaPolicy accepts any device and firmware version; results are "
            "'warning' at best",
            UnsafePolicyWarning,
            stacklevel=3,
        )
        super().__post_init__()


def _image(item: Any) -> NvidiaImage:
    if not isinstance(item, dict):
        raise PolicyInvalid("policy: each image must be an object")
    unknown = sorted(set(item) - _IMAGE_KEYS)
    if unknown:
        raise PolicyInvalid(f"policy: image: unknown key(s) {', '.join(map(repr, unknown))}")
    name, arch = item.get("name"), item.get("arch")
    if not isinstance(name, str) or not isinstance(arch, str):
        raise PolicyInvalid("policy: image 'name' and 'arch' must be strings")
    return NvidiaImage(
        name=name,
        arch=arch,
        driver_versions=item.get("driver_versions", []),
        vbios_versions=item.get("vbios_versions", []),
    )
