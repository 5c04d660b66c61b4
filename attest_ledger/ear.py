"""Every verdict as a signed EAR (draft-ietf-rats-ear): a JWT, ES256, by the verifier's key.

The service signs one EAR per verdict and the ledger entry carries it (``"ear"``, the
compact JWS), so the entry's inclusion proof proves the EAR was logged and the EAR's
signature proves who issued it. The EAR says what the entry says: it is built from the
record (:func:`build_ear`), and :func:`ear_disagreements` names what differs between an EAR
and the record that carries it (what both bundle verifiers check).

The claims::

    {"eat_profile": "tag:github.com,2023:veraison/ear", "iat": <verified_at, seconds>,
     "ear.verifier-id": {"developer": "attestation-ledger", "build": <version>},
     "ear.status": <the overall status, composed from the submods>,
     "eat_nonce": <the challenge, base64url, when the evidence carried one>,
     "submods": {"cpu0": {"ear.status", "ear.trustworthiness-vector",
                          "ear.appraisal-policy-id", "attestation-ledger.evidence-kind",
                          "attestation-ledger.evidence-sha256", "attestation-ledger.reasons"}},
     "attestation-ledger.result-hash", "attestation-ledger.worker",
     "attestation-ledger.verified-at"}

One submod per device: a Nitro enclave, an SEV-SNP or TDX guest, a TPM is ``cpu0``; the
devices judged beside it are named as the record's ``devices`` name them (``gpu0``,
``switch4``...), each with its own status, vector and reasons; ``ear.status`` is the
record's composed verdict. The EAR never holds the entry's index (unknown before the append).

The key: ECDSA P-256, PEM (PKCS #8) with mode 0600 at ``ATTEST_LEDGER_EAR_KEY`` (default
``<data dir>/ear-key.pem``), created once and never replaced; its ``kid`` is its RFC 7638
JWK thumbprint. JOSE is joserfc's (see the README's dependency table).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from verifier.result import AR4SI_TIERS, EAR_PROFILE

__all__ = [
    "ALGORITHM",
    "CPU",
    "EarError",
    "EarKeyError",
    "EarSigner",
    "VerifiedEar",
    "build_ear",
    "compose_status",
    "ear_disagreements",
    "load_public_keys",
    "recorded_devices",
    "verify_ear",
]

ALGORITHM = "ES256"
#: the submod of a CPU TEE's verdict (Nitro, SEV-SNP, TDX, SGX, TPM); a GPU's is ``gpu0``
CPU = "cpu0"
DEVELOPER = "attestation-ledger"
#: the largest EAR a verifier reads (an entry is at most 64 KiB)
MAX_EAR_BYTES = 64 * 1024
_NONCE_BYTES = (8, 64)  # EAT's eat_nonce: 8 to 64 bytes
_STATUS_ORDER = ("affirming", "warning", "contraindicated")


class EarError(Exception):
    """An EAR that is not one this verifier issued, intact. ``code`` says which check."""

    code = "ear_invalid"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class EarKeyError(EarError):
    """The EAR key file is missing, unreadable, too open, not a P-256 key, or exists."""

    code = "ear_key_invalid"


@functools.cache  # metadata.version scans sys.path: ~2 ms, once per process, not per EAR
def _version() -> str:
    try:
        return f"attestation-ledger {metadata.version('attestation-ledger')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "attestation-ledger (source)"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class EarSigner:
    """The verifier's EAR signing key."""

    key: ECKey

    @classmethod
    def generate(cls) -> EarSigner:
        return cls._of(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def _of(cls, private: ec.EllipticCurvePrivateKey) -> EarSigner:
        if private.curve.name != "secp256r1":
            raise EarKeyError(f"the EAR key must be P-256, found {private.curve.name}")
        return cls(ECKey.import_key(private))

    @classmethod
    def load(cls, path: Path) -> EarSigner:
        try:
            mode = path.stat().st_mode
            pem = path.read_bytes()
        except FileNotFoundError:
            raise EarKeyError(
                f"{path} does not exist; create it with `attest-ledger keys init`"
            ) from None
        except OSError as exc:
            raise EarKeyError(f"cannot read {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise EarKeyError(
                f"{path} is readable by others (mode {stat.filemode(mode)}); chmod 600 it"
            )
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise EarKeyError(f"{path}: not an unencrypted PEM private key") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise EarKeyError(f"{path}: not an ECDSA P-256 key")
        return cls._of(private)

    @classmethod
    def create(cls, path: Path) -> EarSigner:
        """A new key at ``path`` (mode 0600), written whole or not at all (a temporary file
        linked into place), never replacing an existing one: raises :class:`EarKeyError`."""
        signer = cls.generate()
        private = signer.key.private_key
        assert isinstance(private, ec.EllipticCurvePrivateKey)  # noqa: S101 - generate() made it
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".ear-key-")
        try:
            with os.fdopen(descriptor, "wb") as handle:  # mkstemp: mode 0600 already
                handle.write(pem)
            os.link(temporary, path)  # fails if the path exists: never replaced
        except FileExistsError:
            raise EarKeyError(f"{path} already exists; the EAR key is never replaced") from None
        finally:
            os.unlink(temporary)
        return signer

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[EarSigner, bool]:
        """The key at ``path``, created if missing (True if it was); two processes starting
        at once end up with the same key."""
        if not path.exists():
            try:
                return cls.create(path), True
            except EarKeyError:
                if not path.exists():
                    raise
        return cls.load(path), False

    @functools.cached_property  # every EAR's header names it; the key never changes
    def kid(self) -> str:
        """The key's RFC 7638 JWK thumbprint (SHA-256, base64url)."""
        return str(self.key.thumbprint())

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK, with its ``kid``, ``alg`` and ``use``."""
        public = dict(self.key.as_dict(private=False))
        return {
            "kty": public["kty"], "crv": public["crv"], "x": public["x"], "y": public["y"],
            "kid": self.kid, "alg": ALGORITHM, "use": "sig",
        }  # fmt: skip

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The claims as a compact JWS (a JWT). The payload is ASCII JSON with sorted keys,
        so that any text an entry may hold (a lone surrogate too) is signed as it is."""
        payload = json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.kid}
        return str(jws.serialize_compact(header, payload.encode("ascii"), self.key))


@dataclass(frozen=True)
class VerifiedEar:
    kid: str
    header: dict[str, Any]
    claims: dict[str, Any]


def load_public_keys(data: bytes) -> list[dict[str, Any]]:
    """Public EAR keys from a JWKS, a single JWK or a PEM public key (what ``--ear-key`` and
    a bundle's ``ear-key.jwk`` give), each a JWK with its ``kid``. Raises
    :class:`EarKeyError`."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            public = serialization.load_pem_public_key(data)
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise EarKeyError("the EAR key is not an ECDSA key")
            keys = [ECKey.import_key(public)]
        else:
            found = json.loads(data)  # as the standalone verifier reads it: not UTF-8 fails
            listed = found.get("keys") if isinstance(found, dict) and "keys" in found else [found]
            if not isinstance(listed, list) or not listed:
                raise EarKeyError("not a JWK or a JWKS with keys")
            # the key material alone, as the thumbprint and the standalone verifier read it:
            # an ill-typed "alg", "use" or "kid" does not change which key this is
            keys = [ECKey.import_key(_key_material(dict(k))) for k in listed]
    except (ValueError, TypeError, KeyError, AttributeError, JoseError, RecursionError) as exc:
        raise EarKeyError(f"not a PEM public key, a JWK or a JWKS: {str(exc)[:80]}") from None
    out = []
    for key in keys:
        jwk = dict(key.as_dict(private=False))
        if jwk.get("crv") != "P-256":
            raise EarKeyError(f"an EAR key must be P-256, found {str(jwk.get('crv'))[:20]}")
        out.append({k: jwk[k] for k in ("kty", "crv", "x", "y")} | {"kid": str(key.thumbprint())})
    return out


def _key_material(jwk: dict[str, Any]) -> dict[str, Any]:
    if jwk.get("kty") != "EC":  # joserfc's ECKey takes any kty and answers "EC"
        raise EarKeyError("an EAR key must be an EC P-256 JWK")
    return {member: jwk[member] for member in ("kty", "crv", "x", "y") if member in jwk}


def verify_ear(token: object, keys: Iterable[Mapping[str, Any]]) -> VerifiedEar:
    """Check ``token``'s ES256 signature by the key its ``kid`` names among ``keys`` (JWKs);
    return its header and claims. Raises :class:`EarError` (``ear_malformed``,
    ``ear_unknown_key``, ``ear_signature_invalid``)."""
    if not isinstance(token, str) or len(token) > MAX_EAR_BYTES or token.count(".") != 2:
        raise EarError("not a compact JWS", "ear_malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(_padded(token.split(".")[0])))
    except (ValueError, RecursionError):
        raise EarError("its header is not base64url JSON", "ear_malformed") from None
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
        raise EarError(f"its header does not name {ALGORITHM}", "ear_malformed")
    kid = header.get("kid")
    chosen = [dict(k) for k in keys if k.get("kid") == kid]
    if not isinstance(kid, str) or not chosen:
        raise EarError(f"signed by a key not given (kid {str(kid)[:60]})", "ear_unknown_key")
    try:
        key_set = KeySet.import_key_set({"keys": chosen})
        opened = jws.deserialize_compact(token, key_set, algorithms=[ALGORITHM])
    except JoseError:
        raise EarError("its signature does not verify", "ear_signature_invalid") from None
    except (ValueError, TypeError):
        raise EarError("not a compact JWS", "ear_malformed") from None
    try:
        claims = json.loads(opened.payload)
    except (ValueError, RecursionError, UnicodeError):
        raise EarError("its payload is not JSON", "ear_malformed") from None
    if not isinstance(claims, dict):
        raise EarError("its payload is not a JSON object", "ear_malformed")
    return VerifiedEar(kid, dict(opened.headers()), claims)


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)


def compose_status(statuses: Sequence[str]) -> str:
    """The overall status of submods' statuses: the worst of them (the policy's composition
    while each device is judged alone)."""
    return max(statuses, key=_STATUS_ORDER.index) if statuses else "contraindicated"


def build_ear(
    record: Mapping[str, Any],
    *,
    evidence_sha256: str,
    trustworthiness_vector: Mapping[str, int],
    build: str | None = None,
    device_vectors: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """The EAR claims of a verdict record (as :func:`attest_ledger.intake.build_record`
    writes it, with its devices composed in): what it says, nothing else (no entry index).
    ``device_vectors``: each device's trustworthiness vector, by submod."""
    verified_at = str(record["verified_at"])
    reasons = [r for r in record.get("reasons", []) if isinstance(r, dict)]
    submods = {
        CPU: _appraisal(
            str(record.get("cpu_verdict", record["verdict"])),
            trustworthiness_vector,
            record.get("evidence_kind"),
            evidence_sha256,
            [str(r.get("code")) for r in reasons if "submod" not in r],
            record.get("policy"),
        )
    }
    for device in recorded_devices(record):
        name = str(device.get("submod"))
        submods[name] = _appraisal(
            str(device.get("verdict")),
            (device_vectors or {}).get(name, {}),
            device.get("evidence_kind"),
            device.get("evidence_sha256"),
            [str(r.get("code")) for r in reasons if r.get("submod") == name],
            device.get("policy"),
        )
    claims: dict[str, Any] = {
        "eat_profile": EAR_PROFILE,
        "iat": _seconds(verified_at),
        "ear.verifier-id": {"developer": DEVELOPER, "build": build or _version()},
        "ear.status": record["verdict"],
        "submods": submods,
        "attestation-ledger.result-hash": record.get("result_hash"),
        "attestation-ledger.worker": record.get("worker"),
        "attestation-ledger.verified-at": verified_at,
    }
    nonce = _nonce(record.get("nonce"))
    if nonce is not None:
        claims["eat_nonce"] = _b64url(nonce)
    return claims


_TIERS = frozenset(AR4SI_TIERS.values())


def _appraisal(  # noqa: PLR0917 - one submod's fields
    status: str,
    vector: Mapping[str, int],
    kind: object,
    evidence_sha256: object,
    codes: list[str],
    policy: object,
) -> dict[str, Any]:
    appraisal: dict[str, Any] = {
        "ear.status": status,
        "ear.trustworthiness-vector": {c: t for c, t in vector.items() if t in _TIERS},
        "attestation-ledger.evidence-kind": kind,
        "attestation-ledger.evidence-sha256": evidence_sha256,
        "attestation-ledger.reasons": codes,
    }
    if policy is not None:
        appraisal["ear.appraisal-policy-id"] = policy
    return appraisal


def recorded_devices(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The devices a record lists (its objects; anything else in the list is ignored)."""
    devices = record.get("devices")
    return [d for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []


def _seconds(instant: str) -> int:
    return int(datetime.fromisoformat(instant).timestamp())


def _nonce(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        nonce = bytes.fromhex(value)
    except ValueError:
        return None
    return nonce if _NONCE_BYTES[0] <= len(nonce) <= _NONCE_BYTES[1] else None


def ear_disagreements(claims: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    """What ``claims`` (a verified EAR) says otherwise than ``record`` (the entry carrying
    it): its status, each submod's status, evidence digest and policy id, the submods
    themselves, the result hash, worker, instant. Empty if it says the same. The standalone
    bundle verifier makes the same comparison."""
    submods = claims.get("submods")
    cpu = submods.get(CPU) if isinstance(submods, dict) else None
    if not isinstance(submods, dict) or not isinstance(cpu, dict):
        return [f"it has no {CPU} submod"]
    devices = {str(d.get("submod")): d for d in recorded_devices(record)}
    named = sorted(str(name) for name in submods)
    if named != sorted([CPU, *devices]):
        return [f"its submods are {', '.join(named)[:120]}, the entry's "
                f"{', '.join(sorted([CPU, *devices]))[:120]}"]  # fmt: skip
    pairs = [
        ("status", claims.get("ear.status"), record.get("verdict")),
        (f"{CPU} status", cpu.get("ear.status"), record.get("cpu_verdict", record.get("verdict"))),
        ("evidence SHA-256", cpu.get("attestation-ledger.evidence-sha256"),
         record.get("evidence_sha256")),
        ("result hash", claims.get("attestation-ledger.result-hash"), record.get("result_hash")),
        ("worker", claims.get("attestation-ledger.worker"), record.get("worker")),
        ("policy", cpu.get("ear.appraisal-policy-id"), record.get("policy")),
        ("verified_at", claims.get("attestation-ledger.verified-at"), record.get("verified_at")),
    ]  # fmt: skip
    for name, device in devices.items():
        said = submods[name] if isinstance(submods[name], dict) else {}
        pairs.extend(
            [
                (f"{name} status", said.get("ear.status"), device.get("verdict")),
                (f"{name} evidence SHA-256", said.get("attestation-ledger.evidence-sha256"),
                 device.get("evidence_sha256")),
                (f"{name} policy", said.get("ear.appraisal-policy-id"), device.get("policy")),
            ]
        )  # fmt: skip
    return [
        f"its {name} is {str(said)[:80]!r}, the entry's {str(recorded)[:80]!r}"
        for name, said, recorded in pairs
        if said != recorded
    ]
