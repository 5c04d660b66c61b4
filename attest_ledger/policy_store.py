"""The reference values in force, and their history in the ledger.

Named reference images of every evidence kind (a Nitro enclave's PCR set; an SEV-SNP guest's
launch measurement and optional launch values), whether debug enclaves are allowed, the
maximum document age and clock skew, each scheme's own settings (for SEV-SNP: debug, SMT,
migration agent, VMPL, minimum TCB), and which workers may attest which images. Every change
is made in one transaction with a ledger entry holding the complete policy after the change::

    {"kind": "policy", "change": {...}, "policy": {...}, "policy_sha256": "<hex>"}

and ``policy_settings.revision_entry`` then names that entry. A verdict records the revision
it was judged under, so an auditor can always find the exact reference values behind it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from attest_ledger.models import ApiClient, PolicyImage, PolicySettings, WorkerImage
from ledger.append import append
from ledger.entry import NewEntry, canonical_json
from verifier import (
    EvidenceKind,
    Policy,
    PolicyInvalid,
    ReferenceImage,
    SchemePolicy,
    SnpPolicy,
)
from verifier.nvidia import NvidiaPolicy
from verifier.tdx import SgxPolicy, TdxPolicy
from verifier.tdx.policy import TD_IMAGE_FIELDS
from verifier.tpm import TpmPolicy

__all__ = ["PolicyConfig", "PolicyError", "PolicyStore"]

_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PolicyError(Exception):
    """A policy change that cannot be made (unknown image or worker, bad PCR value...)."""


NITRO = str(EvidenceKind.AWS_NITRO_ENCLAVE)
SNP = str(EvidenceKind.AMD_SEV_SNP)
#: An SEV-SNP image's reference values: the measurement, and these if given (hex).
SNP_IMAGE_FIELDS = (
    "measurement",
    "host_data",
    "id_key_digest",
    "author_key_digest",
    "family_id",
    "image_id",
)
#: SEV-SNP settings and their defaults (verifier.snp.policy's JSON form).
SNP_DEFAULTS: Mapping[str, Any] = {
    "allow_debug": False,
    "allow_smt": True,
    "allow_migration_agent": False,
    "max_vmpl": 0,
    "min_tcb": {},
}
TDX = str(EvidenceKind.INTEL_TDX)
SGX = str(EvidenceKind.INTEL_SGX)
TPM = str(EvidenceKind.TPM2_QUOTE)
#: A TPM quote's settings: which AK paths are accepted, whether a log must come with it.
TPM_DEFAULTS: Mapping[str, Any] = {
    "ak_paths": ["aws-nitrotpm", "enrolled", "gcp"],
    "require_event_log": False,
    "reject_all_reset": True,
}
NVIDIA = str(EvidenceKind.NVIDIA_GPU)
#: The devices' settings: the RIMs that must judge each, the CC modes accepted, and which
#: devices must be beside the CPU evidence of one inference.
NVIDIA_DEFAULTS: Mapping[str, Any] = {
    "require_rims": ["driver", "vbios"],
    "feature_flags": None,
    "min_gpus": 1,
    "min_switches": 0,
}


@dataclass(frozen=True)
class SchemeRules:
    """How the reference images and settings of one evidence kind are kept: the verifier's
    policy type (whose ``from_dict`` decides what is valid), the image fields (the first is
    required, save for SGX, which needs MRENCLAVE or MRSIGNER) and the settings' defaults."""

    title: str
    policy: (
        type[SnpPolicy] | type[TdxPolicy] | type[SgxPolicy] | type[TpmPolicy] | type[NvidiaPolicy]
    )
    image_fields: tuple[str, ...]
    defaults: Mapping[str, Any]
    #: a placeholder image that passes the verifier's rules, to check settings alone
    placeholder: Mapping[str, Any]
    required: tuple[str, ...] = ()
    #: at least one of these (SGX: MRENCLAVE or MRSIGNER; TPM: PCRs or events)
    one_of: tuple[str, ...] = ()


#: Every evidence kind with images beside Nitro's, by kind name.
SCHEMES: Mapping[str, SchemeRules] = {
    SNP: SchemeRules(
        "SEV-SNP", SnpPolicy, SNP_IMAGE_FIELDS, SNP_DEFAULTS, {"measurement": "00" * 48},
        ("measurement",),
    ),
    TDX: SchemeRules(
        "TDX",
        TdxPolicy,
        ("mr_td", *TD_IMAGE_FIELDS),
        {"allow_debug": False, "xfam_allowed": None, "min_tee_tcb_svn": None,
         "tcb_status": {}, "allowed_advisories": None},
        {"mr_td": "00" * 48},
        ("mr_td",),
    ),
    SGX: SchemeRules(
        "SGX",
        SgxPolicy,
        ("mr_enclave", "mr_signer", "isv_prod_id", "min_isv_svn"),
        {"allow_debug": False, "tcb_status": {}, "allowed_advisories": None},
        {"mr_enclave": "00" * 32},
        one_of=("mr_enclave", "mr_signer"),
    ),
    TPM: SchemeRules(
        "TPM 2.0",
        TpmPolicy,
        ("pcrs", "events"),
        TPM_DEFAULTS,
        {"pcrs": {"sha256": {"0": "00" * 32}}},
        one_of=("pcrs", "events"),
    ),
    NVIDIA: SchemeRules(
        "NVIDIA GPU",
        NvidiaPolicy,
        ("arch", "driver_versions", "vbios_versions"),
        NVIDIA_DEFAULTS,
        {"arch": "LS10", "vbios_versions": ["00.00.00.00.00"]},
        ("arch",),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class PolicyConfig:
    #: Nitro enclave images: name -> PCR index -> value
    images: Mapping[str, Mapping[int, bytes]]
    allow_debug: bool
    max_age_seconds: int | None
    clock_skew_seconds: int
    workers: Mapping[str, frozenset[str]]
    revision_entry: int | None
    #: images of the other evidence kinds: name -> (kind, reference values as JSON)
    references: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    #: each other kind's settings (SEV-SNP: SNP_DEFAULTS's keys), as JSON
    schemes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    _compiled: dict[tuple[str, str], SchemePolicy | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def snapshot(self) -> dict[str, Any]:
        """The complete policy as JSON, in canonical order. A Nitro-only policy is written
        exactly as before there were other kinds (its digest is unchanged)."""
        images: list[dict[str, Any]] = [
            {"name": name, "pcrs": {str(i): v.hex() for i, v in sorted(pcrs.items())}}
            for name, pcrs in self.images.items()
        ]
        images.extend(
            {"name": name, "kind": kind, "reference": dict(reference)}
            for name, (kind, reference) in self.references.items()
        )
        out: dict[str, Any] = {
            "images": sorted(images, key=lambda image: str(image["name"])),
            "allow_debug": self.allow_debug,
            "max_age_seconds": self.max_age_seconds,
            "clock_skew_seconds": self.clock_skew_seconds,
            "workers": {worker: sorted(images) for worker, images in sorted(self.workers.items())},
        }
        if self.schemes:
            out["schemes"] = {kind: dict(v) for kind, v in sorted(self.schemes.items())}
        return out

    def kind_of(self, image: str) -> str | None:
        """The evidence kind of the image ``image`` (None if there is no such image)."""
        if image in self.images:
            return NITRO
        found = self.references.get(image)
        return found[0] if found is not None else None

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.snapshot())).hexdigest()

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any], revision: int | None) -> PolicyConfig:
        """The policy a ledger entry recorded (the inverse of :meth:`snapshot`)."""
        try:
            nitro, others = {}, {}
            for image in snapshot["images"]:
                if "kind" in image:
                    others[image["name"]] = (str(image["kind"]), dict(image["reference"]))
                else:
                    nitro[image["name"]] = {
                        int(i): bytes.fromhex(v) for i, v in image["pcrs"].items()
                    }
            return cls(
                images=nitro,
                allow_debug=bool(snapshot["allow_debug"]),
                max_age_seconds=snapshot["max_age_seconds"],
                clock_skew_seconds=int(snapshot["clock_skew_seconds"]),
                workers={w: frozenset(names) for w, names in snapshot["workers"].items()},
                revision_entry=revision,
                references=others,
                schemes={k: dict(v) for k, v in snapshot.get("schemes", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PolicyError(f"not a recorded policy: {exc}") from None

    def for_worker(self, worker: str, kind: str = NITRO) -> SchemePolicy | None:
        """The verifier policy for ``worker`` judging evidence of ``kind``: the images of that
        kind it may attest. None if it may attest none (the verifier refuses an empty
        policy, and so do we: fail closed)."""
        key = (worker, kind)
        if key not in self._compiled:
            names = sorted(self.workers.get(worker, ()))
            self._compiled[key] = (
                self._nitro(worker, [n for n in names if n in self.images])
                if kind in (NITRO, str(EvidenceKind.AWS_NITRO_TPM))
                else self._scheme(worker, kind, [n for n in names if self.kind_of(n) == kind])
                if kind in SCHEMES
                else None
            )
        return self._compiled[key]

    def _nitro(self, worker: str, names: list[str]) -> Policy | None:
        if not names:
            return None
        return Policy(
            name=f"worker:{worker}",
            images=tuple(ReferenceImage(name, dict(self.images[name])) for name in names),
            allow_debug=self.allow_debug,
            max_age=None
            if self.max_age_seconds is None
            else timedelta(seconds=self.max_age_seconds),
            clock_skew=timedelta(seconds=self.clock_skew_seconds),
        )

    def _scheme(self, worker: str, kind: str, names: list[str]) -> SchemePolicy | None:
        if not names:
            return None
        rules = SCHEMES[kind]
        return rules.policy.from_dict(
            {
                "name": f"worker:{worker}",
                "evidence_kind": kind,
                "images": [{"name": n, **self.references[n][1]} for n in names],
                **{**rules.defaults, **self.schemes.get(kind, {})},
                "clock_skew_seconds": self.clock_skew_seconds,
            }
        )


class PolicyStore:
    """Reads the policy (cached per revision) and makes recorded changes."""

    def __init__(self) -> None:
        self._cached: PolicyConfig | None = None

    def current(self, session: Session, *, revision: int | str | None = "read") -> PolicyConfig:
        """The policy in force (cached by revision). A caller that already read the revision
        passes it, saving a query."""
        if revision == "read":
            revision = session.execute(
                select(PolicySettings.revision_entry).where(PolicySettings.id == 1)
            ).scalar()
        cached = self._cached
        if cached is not None and cached.revision_entry == revision and revision is not None:
            return cached
        config = load(session)
        self._cached = config
        return config

    # --- changes, each recorded in the ledger ------------------------------------------------

    def add_image(self, session: Session, name: str, pcrs: Mapping[int, bytes]) -> int:
        if not _IMAGE_NAME.fullmatch(name):
            raise PolicyError("an image name is 1-64 letters, digits, '.', '_' or '-'")
        try:
            ReferenceImage(name, dict(pcrs))
        except PolicyInvalid as exc:
            raise PolicyError(exc.message) from None
        if session.get(PolicyImage, name) is not None:
            raise PolicyError(f"image {name!r} exists; remove it first to change its PCRs")
        session.add(PolicyImage(name=name, pcrs={str(i): v.hex() for i, v in sorted(pcrs.items())}))
        session.flush()
        return _record(session, {"action": "image_added", "image": name})

    def add_reference(
        self, session: Session, name: str, kind: str, reference: Mapping[str, Any]
    ) -> int:
        """Add a reference image of another evidence kind than Nitro's, its values as the
        verifier's policy JSON writes them (hex; SGX's ISV numbers as integers). SEV-SNP: a
        launch measurement and optionally host_data, id_key_digest, author_key_digest,
        family_id, image_id; TDX: mr_td and optionally RTMR0-3, mr_config_id, mr_owner,
        mr_owner_config; SGX: mr_enclave and/or mr_signer, isv_prod_id, min_isv_svn."""
        if not _IMAGE_NAME.fullmatch(name):
            raise PolicyError("an image name is 1-64 letters, digits, '.', '_' or '-'")
        rules = SCHEMES.get(kind)
        if rules is None:
            raise PolicyError(f"reference images of kind {kind!r} cannot be kept yet")
        values = {k: _canonical(k, v) for k, v in reference.items()}
        unknown = set(values) - set(rules.image_fields)
        if (
            unknown
            or not set(rules.required) <= set(values)
            or (rules.one_of and not set(rules.one_of) & set(values))
        ):
            required = ", ".join(rules.required) or " or ".join(rules.one_of)
            optional = ", ".join(f for f in rules.image_fields if f not in rules.required)
            raise PolicyError(f"a {rules.title} image has {required} and may have {optional}")
        try:  # the verifier's own rules decide what a valid image is
            rules.policy.from_dict(
                {"name": "check", "evidence_kind": kind, "images": [{"name": name, **values}]}
            )
        except PolicyInvalid as exc:
            raise PolicyError(exc.message) from None
        if session.get(PolicyImage, name) is not None:
            raise PolicyError(f"image {name!r} exists; remove it first to change it")
        session.add(PolicyImage(name=name, evidence_kind=kind, pcrs={}, reference=values))
        session.flush()
        return _record(session, {"action": "image_added", "image": name, "kind": kind})

    def set_scheme_options(self, session: Session, kind: str, **values: Any) -> int:
        """Change settings of one evidence kind (SCHEMES[kind].defaults' keys). A value of
        None leaves a setting as it is; ``reset=[names]`` puts those back to their default."""
        rules = SCHEMES.get(kind)
        if rules is None:
            raise PolicyError(f"evidence kind {kind!r} has no settings of its own")
        reset = values.pop("reset", ()) or ()
        values = {k: v for k, v in values.items() if v is not None}
        values.update((name, rules.defaults.get(name)) for name in reset)
        if not values:
            raise PolicyError("nothing to change")
        if set(values) - set(rules.defaults):
            raise PolicyError(f"{rules.title} settings are {', '.join(rules.defaults)}")
        settings = session.execute(
            select(PolicySettings).where(PolicySettings.id == 1)
        ).scalar_one()
        schemes = {k: dict(v) for k, v in settings.schemes.items()}
        merged = {**rules.defaults, **schemes.get(kind, {}), **values}
        try:  # checked by the verifier's rules, with a placeholder image
            rules.policy.from_dict(
                {
                    "name": "check",
                    "evidence_kind": kind,
                    "images": [{"name": "check", **rules.placeholder}],
                    **merged,
                }
            )
        except PolicyInvalid as exc:
            raise PolicyError(exc.message) from None
        schemes[kind] = merged
        session.execute(
            update(PolicySettings).where(PolicySettings.id == 1).values(schemes=schemes)
        )
        return _record(session, {"action": "options_set", "kind": kind, **values})

    def remove_image(self, session: Session, name: str) -> int:
        if session.get(PolicyImage, name) is None:
            raise PolicyError(f"no image named {name!r}")
        session.execute(delete(WorkerImage).where(WorkerImage.image_name == name))
        session.execute(delete(PolicyImage).where(PolicyImage.name == name))
        return _record(session, {"action": "image_removed", "image": name})

    def set_options(
        self,
        session: Session,
        *,
        allow_debug: bool | None = None,
        max_age_seconds: int | str | None = "keep",
        clock_skew_seconds: int | None = None,
    ) -> int:
        values: dict[str, Any] = {}
        if allow_debug is not None:
            values["allow_debug"] = allow_debug
        if max_age_seconds != "keep":
            if max_age_seconds is not None and not (
                isinstance(max_age_seconds, int) and max_age_seconds > 0
            ):
                raise PolicyError("max age must be a positive number of seconds, or none")
            values["max_age_seconds"] = max_age_seconds
        if clock_skew_seconds is not None:
            if clock_skew_seconds < 0:
                raise PolicyError("clock skew must not be negative")
            values["clock_skew_seconds"] = clock_skew_seconds
        if not values:
            raise PolicyError("nothing to change")
        session.execute(update(PolicySettings).where(PolicySettings.id == 1).values(**values))
        return _record(session, {"action": "options_set", **values})

    def allow(self, session: Session, worker: str, image: str) -> int:
        client = _worker(session, worker)
        if session.get(PolicyImage, image) is None:
            raise PolicyError(f"no image named {image!r}")
        if session.get(WorkerImage, (client.id, image)) is None:
            session.add(WorkerImage(client_id=client.id, image_name=image))
            session.flush()
        return _record(session, {"action": "worker_allowed", "worker": worker, "image": image})

    def deny(self, session: Session, worker: str, image: str) -> int:
        client = _worker(session, worker)
        if session.get(WorkerImage, (client.id, image)) is None:
            raise PolicyError(f"worker {worker!r} may not attest {image!r} anyway")
        session.execute(
            delete(WorkerImage).where(
                WorkerImage.client_id == client.id, WorkerImage.image_name == image
            )
        )
        return _record(session, {"action": "worker_denied", "worker": worker, "image": image})


def _canonical(key: str, value: Any) -> Any:
    """A reference value as it is kept: hex lowercased; an NVIDIA arch as NVIDIA writes it,
    its versions lowercased (the verifier compares them so)."""
    if key == "arch" and isinstance(value, str):
        return value.upper()
    if isinstance(value, str):
        return value.lower()
    if key in ("driver_versions", "vbios_versions") and isinstance(value, list):
        return [v.lower() if isinstance(v, str) else v for v in value]
    return value


def _worker(session: Session, name: str) -> ApiClient:
    client = session.execute(select(ApiClient).where(ApiClient.name == name)).scalar_one_or_none()
    if client is None or client.role != "worker":
        raise PolicyError(f"no worker named {name!r}")
    return client


def load(session: Session) -> PolicyConfig:
    settings = session.execute(select(PolicySettings).where(PolicySettings.id == 1)).scalar_one()
    images: dict[str, dict[int, bytes]] = {}
    references: dict[str, tuple[str, dict[str, Any]]] = {}
    for stored in session.execute(select(PolicyImage)).scalars():
        if stored.evidence_kind == NITRO:
            images[stored.name] = {int(i): bytes.fromhex(v) for i, v in stored.pcrs.items()}
        else:
            references[stored.name] = (stored.evidence_kind, dict(stored.reference))
    workers: dict[str, set[str]] = {}
    for name, image in session.execute(
        select(ApiClient.name, WorkerImage.image_name).join(
            WorkerImage, WorkerImage.client_id == ApiClient.id
        )
    ):
        workers.setdefault(name, set()).add(image)
    return PolicyConfig(
        images=images,
        allow_debug=settings.allow_debug,
        max_age_seconds=settings.max_age_seconds,
        clock_skew_seconds=settings.clock_skew_seconds,
        workers={k: frozenset(v) for k, v in workers.items()},
        revision_entry=settings.revision_entry,
        references=references,
        schemes={k: dict(v) for k, v in settings.schemes.items()},
    )


def _record(session: Session, change: dict[str, Any]) -> int:
    """Append the change and the complete resulting policy; make it the revision in force."""
    session.flush()
    config = load(session)
    entry = NewEntry.from_record(
        {
            "kind": "policy",
            "change": change,
            "policy": config.snapshot(),
            "policy_sha256": config.digest(),
        }
    )
    (appended,) = append(session, [entry])
    session.execute(
        update(PolicySettings).where(PolicySettings.id == 1).values(revision_entry=appended.index)
    )
    return appended.index
