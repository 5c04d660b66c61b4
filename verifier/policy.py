"""The appraisal policy base that every scheme's policy builds on (RFC 9334's "Reference
Values" and the rules around them).

A scheme's policy (:class:`verifier.nitro.policy.Policy`, :class:`verifier.snp.policy.SnpPolicy`)
names the evidence kind it judges, the named reference images it accepts and its own rules.
What they share is here: a name, a kind, the clock skew tolerated, a canonical JSON form
whose SHA-256 identifies the exact policy that judged a piece of evidence (``policy_id``),
and the fail-closed convention: a policy without reference values is refused, and the only
way to accept any measurement is a class whose name starts with ``UnsafeAcceptAny`` and
which warns with :class:`UnsafePolicyWarning` when constructed.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from datetime import timedelta
from typing import Any, ClassVar

from verifier.errors import PolicyInvalid
from verifier.scheme import EvidenceKind

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "MAX_POLICY_SECONDS",
    "SchemePolicy",
    "UnsafePolicyWarning",
    "canonical_digest",
    "check_images",
    "json_seconds",
    "policy_bool",
    "policy_hex",
    "policy_image_object",
    "policy_images",
    "policy_loads",
    "policy_name",
    "policy_object",
    "policy_seconds",
]

DEFAULT_CLOCK_SKEW = timedelta(seconds=60)
MAX_POLICY_SECONDS = 10 * 365 * 86400


class UnsafePolicyWarning(UserWarning):
    """Emitted whenever a policy that accepts any measurement is constructed."""


class SchemePolicy(ABC):
    """What the verifier needs of every policy. Subclasses are frozen dataclasses."""

    name: str
    evidence_kind: EvidenceKind
    clock_skew: timedelta

    #: True only for the explicitly unsafe accept-any policies: results are at best warning.
    accepts_any_measurement: ClassVar[bool] = False

    @property
    @abstractmethod
    def digest(self) -> str:
        """SHA-256 of the canonical JSON form: what "the policy that judged it" points at."""

    @property
    def policy_id(self) -> str:
        return f"{self.name}@sha256:{self.digest}"

    @abstractmethod
    def to_dict(self) -> dict[str, object]:
        """The JSON form, as ``--policy FILE`` takes it and the ledger records it."""


def canonical_digest(data: dict[str, object]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no whitespace) of a policy's dict form."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def policy_seconds(data: dict[str, Any], key: str, default: timedelta) -> timedelta:
    """A number of seconds between 0 and ten years, or ``default`` when the key is absent."""
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        raise PolicyInvalid(f"policy: {key!r} must be a number of seconds")
    if not 0 <= value <= MAX_POLICY_SECONDS:
        raise PolicyInvalid(f"policy: {key!r} must be between 0 and {MAX_POLICY_SECONDS}")
    return timedelta(seconds=value)


def policy_bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise PolicyInvalid(f"policy: {key!r} must be true or false")
    return value


def policy_hex(value: Any, size: int, what: str) -> bytes:
    """Exactly ``size`` bytes written as hexadecimal (either case)."""
    if not isinstance(value, str):
        raise PolicyInvalid(f"policy: {what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise PolicyInvalid(f"policy: {what} is not hexadecimal") from None
    if len(raw) != size:
        raise PolicyInvalid(
            f"policy: {what} must be {size} bytes ({2 * size} hex digits), found {len(raw)}"
        )
    return raw


def json_seconds(value: timedelta) -> int | float:
    """A duration as the JSON number of seconds: an integer when it is whole."""
    seconds = value.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def policy_loads(text: str | bytes) -> Any:
    """The JSON text of a policy, or :class:`PolicyInvalid` saying why it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PolicyInvalid(f"policy: not valid JSON ({exc})") from None


def policy_object(data: Any, keys: frozenset[str] | set[str]) -> dict[str, Any]:
    """``data`` as a policy object holding no key outside ``keys``."""
    if not isinstance(data, dict):
        raise PolicyInvalid("policy: expected a JSON object")
    unknown = sorted(str(k) for k in set(data) - keys)
    if unknown:
        raise PolicyInvalid(f"policy: unknown key(s) {', '.join(map(repr, unknown))}")
    return data


def policy_images(data: dict[str, Any]) -> list[Any]:
    """The policy's ``images`` list (empty when absent), each item still to be parsed."""
    images = data.get("images", [])
    if not isinstance(images, list):
        raise PolicyInvalid("policy: 'images' must be a list")
    return images


def policy_image_object(item: Any, keys: frozenset[str] | set[str]) -> tuple[dict[str, Any], str]:
    """One item of the ``images`` list as an object holding no key outside ``keys``, and
    its name."""
    if not isinstance(item, dict):
        raise PolicyInvalid("policy: each image must be an object")
    unknown = sorted(str(k) for k in set(item) - keys)
    if unknown:
        raise PolicyInvalid(f"policy: image: unknown key(s) {', '.join(map(repr, unknown))}")
    name = item.get("name")
    if not isinstance(name, str):
        raise PolicyInvalid("policy: image 'name' must be a string")
    return item, name


def policy_name(data: dict[str, Any], default: str | None) -> str:
    """The policy's ``name``, or ``default`` when absent; a non-string is refused."""
    name = data.get("name", default)
    if not isinstance(name, str):
        raise PolicyInvalid("policy: 'name' must be a string")
    return name


def check_images(
    policy: Any, *, images: str = "reference images", accepts: str, unsafe: str
) -> None:
    """The rules every scheme's policy keeps for its images, run from ``__post_init__``.

    The images become a tuple; an accept-any policy takes none and any other policy needs at
    least one (``accepts`` names what an empty one would accept, ``unsafe`` the class to use
    if that is really meant); image names are unique. ``images`` is how the scheme calls
    them in its messages.
    """
    object.__setattr__(policy, "images", tuple(policy.images))
    if policy.accepts_any_measurement:
        if policy.images:
            raise PolicyInvalid(f"an accept-any policy takes no {images}")
    elif not policy.images:
        raise PolicyInvalid(
            f"policy {policy.name!r} lists no {images}; an empty policy would accept "
            f"{accepts}. Use {unsafe} if that is really meant."
        )
    names = [image.name for image in policy.images]
    if len(set(names)) != len(names):
        raise PolicyInvalid(f"policy {policy.name!r}: {images[:-1]} names must be unique")
