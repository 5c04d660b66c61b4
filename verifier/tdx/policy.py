"""Appraisal policies for Intel TDX trust domains and SGX enclaves, on the shared base of
:mod:`verifier.policy`.

Both map the TCB status Intel's collateral gives to an EAR tier and may restrict advisories::

    {
      "name": "inference-tdx",
      "evidence_kind": "intel-tdx",
      "images": [
        {"name": "td-v1", "mr_td": "<96 hex>", "rtmr0": "<96 hex, optional>", ...
         "rtmr3": "...", "mr_config_id": "...", "mr_owner": "...", "mr_owner_config": "..."}
      ],
      "allow_debug": false,
      "xfam_allowed": ["e702060000000000"],        (optional; absent or null: any XFAM)
      "min_tee_tcb_svn": "<32 hex>",               (optional; per byte, component-wise)
      "tcb_status": {"OutOfDate": "warning"},      (overrides of the defaults below)
      "allowed_advisories": ["INTEL-SA-00615"],    (optional; null: any advisory only warns)
      "clock_skew_seconds": 60
    }

    {
      "name": "signer-sgx", "evidence_kind": "intel-sgx",
      "images": [{"name": "enclave-v1", "mr_enclave": "<64 hex, optional>",
                  "mr_signer": "<64 hex, optional>", "isv_prod_id": 0, "min_isv_svn": 0}],
      "allow_debug": false, "tcb_status": {...}, "allowed_advisories": null,
      "clock_skew_seconds": 60
    }

TCB status -> tier, by default: ``UpToDate`` affirming; ``SWHardeningNeeded``,
``ConfigurationNeeded``, ``ConfigurationAndSWHardeningNeeded`` warning; ``OutOfDate``,
``OutOfDateConfigurationNeeded`` contraindicated unless mapped to warning; ``Revoked`` always
contraindicated. Only ``UpToDate`` may be affirming. Advisories: with no allow-list, any
advisory makes the result at best ``warning``; with a list, an advisory outside it
contraindicates. Fail closed: no images is refused; ``"unsafe_accept_any": true`` (in code
:class:`UnsafeAcceptAnyTdxPolicy`, :class:`UnsafeAcceptAnySgxPolicy`) accepts any
measurement, warns, and makes every result at best ``warning``.
"""

from __future__ import annotations

import re
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
from verifier.tdx.collateral import TCB_STATUSES

__all__ = [
    "DEFAULT_TCB_STATUS_MAP",
    "SgxPolicy",
    "SgxReferenceImage",
    "TdxPolicy",
    "TdxReferenceImage",
    "UnsafeAcceptAnySgxPolicy",
    "UnsafeAcceptAnyTdxPolicy",
]

DEFAULT_TCB_STATUS_MAP: Mapping[str, str] = MappingProxyType(
    {
        "UpToDate": "affirming",
        "SWHardeningNeeded": "warning",
        "ConfigurationNeeded": "warning",
        "ConfigurationAndSWHardeningNeeded": "warning",
        "OutOfDate": "contraindicated",
        "OutOfDateConfigurationNeeded": "contraindicated",
        "Revoked": "contraindicated",
    }
)
_TIERS = ("affirming", "warning", "contraindicated")
_ADVISORY = re.compile(r"INTEL-SA-\d{5}|INTEL-DOC-\d{5}")
MR_BYTES = 48
TD_IMAGE_FIELDS = {
    "rtmr0": 48,
    "rtmr1": 48,
    "rtmr2": 48,
    "rtmr3": 48,
    "mr_config_id": 48,
    "mr_owner": 48,
    "mr_owner_config": 48,
}
_COMMON_KEYS = frozenset(
    {
        "name",
        "evidence_kind",
        "images",
        "allow_debug",
        "tcb_status",
        "allowed_advisories",
        "clock_skew_seconds",
        "unsafe_accept_any",
    }
)


def _status_map(name: str, given: Mapping[str, str]) -> Mapping[str, str]:
    merged = dict(DEFAULT_TCB_STATUS_MAP)
    for status, tier in given.items():
        if status not in TCB_STATUSES:
            raise PolicyInvalid(
                f"policy {name!r}: tcb_status names {str(status)[:40]!r}; expected one of "
                f"{', '.join(TCB_STATUSES)}"
            )
        if tier not in _TIERS:
            raise PolicyInvalid(
                f"policy {name!r}: tcb_status {status} must map to affirming, warning or "
                "contraindicated"
            )
        if status == "Revoked" and tier != "contraindicated":
            raise PolicyInvalid(f"policy {name!r}: a Revoked TCB is always contraindicated")
        if status != "UpToDate" and tier == "affirming":
            raise PolicyInvalid(
                f"policy {name!r}: only UpToDate may be affirming; map {status} to warning"
            )
        merged[status] = tier
    return MappingProxyType(merged)


def _advisories(name: str, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    out: tuple[object, ...] = tuple(value)
    for advisory in out:
        if not isinstance(advisory, str) or not _ADVISORY.fullmatch(advisory):
            raise PolicyInvalid(
                f"policy {name!r}: allowed_advisories: {str(advisory)[:40]!r} is not an Intel "
                "advisory ID (INTEL-SA-NNNNN)"
            )
    return tuple(sorted({str(a) for a in out}))


def _common_arguments(data: dict[str, Any]) -> dict[str, Any]:
    tcb_status = data.get("tcb_status", {})
    if not isinstance(tcb_status, dict):
        raise PolicyInvalid("policy: 'tcb_status' must be an object")
    advisories = data.get("allowed_advisories")
    if advisories is not None and not isinstance(advisories, list):
        raise PolicyInvalid("policy: 'allowed_advisories' must be a list or null")
    return {
        "allow_debug": policy_bool(data, "allow_debug", False),
        "tcb_status": tcb_status,
        "allowed_advisories": None if advisories is None else tuple(advisories),
        "clock_skew": policy_seconds(data, "clock_skew_seconds", DEFAULT_CLOCK_SKEW),
    }


def _check_common(policy: TdxPolicy | SgxPolicy, kind: EvidenceKind) -> None:
    if not policy.name:
        raise PolicyInvalid("policy: a non-empty name is required")
    if EvidenceKind(policy.evidence_kind) is not kind:
        raise PolicyInvalid(f"policy {policy.name!r}: this policy judges {kind}")
    object.__setattr__(policy, "evidence_kind", kind)
    check_images(policy, accepts="anything", unsafe="the UnsafeAcceptAny policy")
    object.__setattr__(policy, "tcb_status", _status_map(policy.name, policy.tcb_status))
    object.__setattr__(
        policy, "allowed_advisories", _advisories(policy.name, policy.allowed_advisories)
    )
    if policy.clock_skew < timedelta(0):
        raise PolicyInvalid(f"policy {policy.name!r}: clock_skew must not be negative")


def _common_dict(policy: TdxPolicy | SgxPolicy) -> dict[str, object]:
    return {
        "name": policy.name,
        "evidence_kind": str(policy.evidence_kind),
        "images": [image.to_dict() for image in policy.images],
        "allow_debug": policy.allow_debug,
        "tcb_status": dict(policy.tcb_status),
        "allowed_advisories": None
        if policy.allowed_advisories is None
        else list(policy.allowed_advisories),
        "clock_skew_seconds": json_seconds(policy.clock_skew),
    }


def _object(data: Any, keys: frozenset[str], kind: EvidenceKind) -> dict[str, Any]:
    checked = policy_object(data, keys)
    if checked.get("evidence_kind") != str(kind):
        raise PolicyInvalid(f"policy: this policy needs evidence_kind {str(kind)!r}")
    return checked


# --- TDX ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TdxReferenceImage:
    """One acceptable trust domain: MRTD, and optionally RTMR0-3 and the owner values."""

    name: str
    mr_td: bytes
    rtmr0: bytes | None = None
    rtmr1: bytes | None = None
    rtmr2: bytes | None = None
    rtmr3: bytes | None = None
    mr_config_id: bytes | None = None
    mr_owner: bytes | None = None
    mr_owner_config: bytes | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("reference image: a non-empty name is required")
        if len(self.mr_td) != MR_BYTES:
            raise PolicyInvalid(f"reference image {self.name!r}: mr_td must be 48 bytes")
        for name, size in TD_IMAGE_FIELDS.items():
            value = getattr(self, name)
            if value is not None and len(value) != size:
                raise PolicyInvalid(f"reference image {self.name!r}: {name} must be {size} bytes")

    def expected(self) -> dict[str, bytes]:
        out = {"mr_td": self.mr_td}
        for name in TD_IMAGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name}
        out.update((name, value.hex()) for name, value in self.expected().items())
        return out


@dataclass(frozen=True)
class TdxPolicy(SchemePolicy):
    """Reference values and rules an authentic TDX quote must satisfy."""

    name: str
    images: tuple[TdxReferenceImage, ...]
    allow_debug: bool = False
    #: XFAM values (8 bytes each) allowed; None allows any.
    xfam_allowed: tuple[bytes, ...] | None = None
    #: Minimum TEE_TCB_SVN, byte by byte (16 bytes); None: no minimum.
    min_tee_tcb_svn: bytes | None = None
    tcb_status: Mapping[str, str] = field(default_factory=dict)
    allowed_advisories: tuple[str, ...] | None = None
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    evidence_kind: EvidenceKind = field(default=EvidenceKind.INTEL_TDX)
    _digest: str = field(init=False, repr=False, compare=False)

    accepts_any_measurement: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_common(self, EvidenceKind.INTEL_TDX)
        if self.xfam_allowed is not None:
            values = tuple(self.xfam_allowed)
            if not values or any(len(v) != 8 for v in values):
                raise PolicyInvalid(
                    f"policy {self.name!r}: xfam_allowed lists 8-byte values (none: use null)"
                )
            object.__setattr__(self, "xfam_allowed", values)
        if self.min_tee_tcb_svn is not None and len(self.min_tee_tcb_svn) != 16:
            raise PolicyInvalid(f"policy {self.name!r}: min_tee_tcb_svn must be 16 bytes")
        object.__setattr__(self, "_digest", canonical_digest(self.to_dict()))

    @property
    def digest(self) -> str:
        return self._digest

    def to_dict(self) -> dict[str, object]:
        out = _common_dict(self)
        out["xfam_allowed"] = (
            None if self.xfam_allowed is None else [v.hex() for v in self.xfam_allowed]
        )
        out["min_tee_tcb_svn"] = (
            None if self.min_tee_tcb_svn is None else self.min_tee_tcb_svn.hex()
        )
        if self.accepts_any_measurement:
            out["unsafe_accept_any"] = True
        return out

    @classmethod
    def from_json(cls, text: str | bytes) -> TdxPolicy:
        return cls.from_dict(policy_loads(text))

    @classmethod
    def from_dict(cls, data: Any) -> TdxPolicy:
        data = _object(
            data, _COMMON_KEYS | {"xfam_allowed", "min_tee_tcb_svn"}, EvidenceKind.INTEL_TDX
        )
        unsafe = policy_bool(data, "unsafe_accept_any", False)
        images = policy_images(data)
        xfam = data.get("xfam_allowed")
        if xfam is not None and not isinstance(xfam, list):
            raise PolicyInvalid("policy: 'xfam_allowed' must be a list or null")
        minimum = data.get("min_tee_tcb_svn")
        arguments: dict[str, Any] = {
            "images": tuple(_td_image(item) for item in images),
            "xfam_allowed": None
            if xfam is None
            else tuple(policy_hex(v, 8, "xfam_allowed") for v in xfam),
            "min_tee_tcb_svn": None
            if minimum is None
            else policy_hex(minimum, 16, "min_tee_tcb_svn"),
            **_common_arguments(data),
        }
        if unsafe:
            return UnsafeAcceptAnyTdxPolicy(
                name=policy_name(data, UnsafeAcceptAnyTdxPolicy.name), **arguments
            )
        return cls(name=policy_name(data, None), **arguments)


def _td_image(item: Any) -> TdxReferenceImage:
    item, name = policy_image_object(item, {"name", "mr_td", *TD_IMAGE_FIELDS})
    if "mr_td" not in item:
        raise PolicyInvalid(f"policy: image {name!r}: 'mr_td' is required")
    values = {
        key: policy_hex(item[key], size, f"image {name!r}: {key}")
        for key, size in (("mr_td", MR_BYTES), *TD_IMAGE_FIELDS.items())
        if key in item
    }
    return TdxReferenceImage(name=name, **values)


@dataclass(frozen=True)
class UnsafeAcceptAnyTdxPolicy(TdxPolicy):
    """Accepts any MRTD and RTMRs. For exploration only: results are never better than
    ``warning``. Debug, XFAM, TEE_TCB_SVN, TCB status, nonce and binding are still checked."""

    name: str = "unsafe-accept-any"
    images: tuple[TdxReferenceImage, ...] = ()

    accepts_any_measurement: ClassVar[bool] = True

    def __post_init__(self) -> None:
        warnings.warn(
            "UnsafeAcceptAnyTdxPolicy accepts any TD measurement; results are 'warning' at best",
            UnsafePolicyWarning,
            stacklevel=3,
        )
        super().__post_init__()


# --- SGX ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SgxReferenceImage:
    """One acceptable enclave: MRENCLAVE and/or MRSIGNER, and optionally its ISV product id
    and a minimum ISV SVN."""

    name: str
    mr_enclave: bytes | None = None
    mr_signer: bytes | None = None
    isv_prod_id: int | None = None
    min_isv_svn: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise PolicyInvalid("reference image: a non-empty name is required")
        if self.mr_enclave is None and self.mr_signer is None:
            raise PolicyInvalid(
                f"reference image {self.name!r}: give mr_enclave, mr_signer or both"
            )
        for label in ("mr_enclave", "mr_signer"):
            value = getattr(self, label)
            if value is not None and len(value) != 32:
                raise PolicyInvalid(f"reference image {self.name!r}: {label} must be 32 bytes")
        for label in ("isv_prod_id", "min_isv_svn"):
            number: object = getattr(self, label)
            if number is not None and (
                not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 0xFFFF
            ):
                raise PolicyInvalid(
                    f"reference image {self.name!r}: {label} must be an integer 0..65535"
                )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name}
        if self.mr_enclave is not None:
            out["mr_enclave"] = self.mr_enclave.hex()
        if self.mr_signer is not None:
            out["mr_signer"] = self.mr_signer.hex()
        if self.isv_prod_id is not None:
            out["isv_prod_id"] = self.isv_prod_id
        if self.min_isv_svn is not None:
            out["min_isv_svn"] = self.min_isv_svn
        return out


@dataclass(frozen=True)
class SgxPolicy(SchemePolicy):
    """Reference values and rules an authentic SGX quote must satisfy."""

    name: str
    images: tuple[SgxReferenceImage, ...]
    allow_debug: bool = False
    tcb_status: Mapping[str, str] = field(default_factory=dict)
    allowed_advisories: tuple[str, ...] | None = None
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    evidence_kind: EvidenceKind = field(default=EvidenceKind.INTEL_SGX)
    _digest: str = field(init=False, repr=False, compare=False)

    accepts_any_measurement: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_common(self, EvidenceKind.INTEL_SGX)
        object.__setattr__(self, "_digest", canonical_digest(self.to_dict()))

    @property
    def digest(self) -> str:
        return self._digest

    def to_dict(self) -> dict[str, object]:
        out = _common_dict(self)
        if self.accepts_any_measurement:
            out["unsafe_accept_any"] = True
        return out

    @classmethod
    def from_json(cls, text: str | bytes) -> SgxPolicy:
        return cls.from_dict(policy_loads(text))

    @classmethod
    def from_dict(cls, data: Any) -> SgxPolicy:
        data = _object(data, _COMMON_KEYS, EvidenceKind.INTEL_SGX)
        unsafe = policy_bool(data, "unsafe_accept_any", False)
        images = policy_images(data)
        arguments: dict[str, Any] = {
            "images": tuple(_sgx_image(item) for item in images),
            **_common_arguments(data),
        }
        if unsafe:
            return UnsafeAcceptAnySgxPolicy(
                name=policy_name(data, UnsafeAcceptAnySgxPolicy.name), **arguments
            )
        return cls(name=policy_name(data, None), **arguments)


def _sgx_image(item: Any) -> SgxReferenceImage:
    item, name = policy_image_object(
        item, {"name", "mr_enclave", "mr_signer", "isv_prod_id", "min_isv_svn"}
    )
    values: dict[str, Any] = {
        key: policy_hex(item[key], 32, f"image {name!r}: {key}")
        for key in ("mr_enclave", "mr_signer")
        if key in item
    }
    for key in ("isv_prod_id", "min_isv_svn"):
        if key in item:
            values[key] = item[key]
    return SgxReferenceImage(name=name, **values)


@dataclass(frozen=True)
class UnsafeAcceptAnySgxPolicy(SgxPolicy):
    """Accepts any enclave. For exploration only: results are never better than ``warning``.
    Debug, TCB status, nonce and binding are still checked."""

    name: str = "unsafe-accept-any"
    images: tuple[SgxReferenceImage, ...] = ()

    accepts_any_measurement: ClassVar[bool] = True

    def __post_init__(self) -> None:
        warnings.warn(
            "UnsafeAcceptAnySgxPolicy accepts any enclave; results are 'warning' at best",
            UnsafePolicyWarning,
            stacklevel=3,
        )
        super().__post_init__()
