"""Intel DCAP collateral kept by the service: what judges a TDX or SGX quote beside the quote.

A quote is judged against collateral of the day: the TCB info of its platform's FMSPC, the
quoting enclave's identity, the PCK CA's and the root CA's CRLs, and the TCB Signing
certificate that signed the first two. Collateral reaches the service three ways, and all
three end here, in ``collateral_documents``, stored once by SHA-256:

* attached by the worker to its submission (kept as it judged that entry);
* imported by an operator: ``attest-ledger collateral import FILE`` (dcap-qvl's
  QuoteCollateralV3 JSON, an Intel PCS response body, a DER or PEM CRL, PEM certificates);
* fetched from the PCCS or Intel PCS at ``ATTEST_LEDGER_PCCS_URL``, when one is configured and
  nothing current is kept, and kept until its nextUpdate. With no URL nothing is fetched.

Nothing here is trusted because it is kept: the verifier checks every signature and chain
against the pinned (or configured) Intel root, as of the instant it judges. What is read here
(the FMSPC, the TEE, the issuer, the dates) only chooses which documents to hand it.
Whatever judged an entry is also stored in the ledger (``ledger_endorsements``) and named by
digest in the entry, so that re-verifying it years later uses exactly the collateral of the
day, whatever this cache holds by then.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger.models import CollateralDocument
from verifier import Endorsement, EndorsementKind, Evidence, EvidenceKind, VerifierError
from verifier.tdx import (
    Quote,
    endorsements_from_dcap_qvl_json,
    parse_quote,
    unverified_pck,
)

__all__ = [
    "CERTIFICATE",
    "CRL",
    "QE_IDENTITY",
    "TCB_INFO",
    "CollateralError",
    "CollateralSource",
    "DocumentInfo",
    "PcsClient",
    "describe",
    "documents_in_file",
    "http_get",
    "keep",
    "select_for_quote",
]

log = logging.getLogger(__name__)

TCB_INFO, QE_IDENTITY, CRL, CERTIFICATE = "tcb-info", "qe-identity", "crl", "certificate"
KINDS = (TCB_INFO, QE_IDENTITY, CRL, CERTIFICATE)
#: The common names Intel gives its CAs (the simulated PKI uses the same, but for its root).
ROOT_CA = "Intel SGX Root CA"
TCB_SIGNING = "Intel SGX TCB Signing"
PCK_PLATFORM_CA = "Intel SGX PCK Platform CA"
PCK_PROCESSOR_CA = "Intel SGX PCK Processor CA"
_MAX_DOCUMENT = 64 * 1024


class CollateralError(Exception):
    """A collateral document that cannot be kept (unreadable, of no known kind), or a fetch
    that failed."""

    code = "collateral_invalid"


@dataclass(frozen=True)
class DocumentInfo:
    """What a document says about itself, read without verifying it: for choosing, never for
    trusting."""

    kind: str
    #: TCB info: "TDX" or "SGX"; QE identity: "TD_QE", "QE" or "QVE"; None otherwise
    tee: str | None
    #: TCB info: the FMSPC in lowercase hex
    fmspc: str | None
    #: a CRL's issuer or a certificate's subject common name
    name: str | None
    issued_at: datetime | None
    next_update: datetime | None


def _instant(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _common_name(name: x509.Name) -> str | None:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else None


def describe(kind: str, data: bytes) -> DocumentInfo:
    """The metadata of one document of ``kind``; raises :class:`CollateralError`."""
    if len(data) > _MAX_DOCUMENT:
        raise CollateralError(f"{kind}: {len(data)} bytes, more than {_MAX_DOCUMENT}")
    try:
        if kind in (TCB_INFO, QE_IDENTITY):
            body = json.loads(data)
            inner = body.get("tcbInfo" if kind == TCB_INFO else "enclaveIdentity")
            if not isinstance(inner, dict) or not isinstance(body.get("signature"), str):
                raise CollateralError(f"{kind}: not an Intel PCS response body")
            fmspc = inner.get("fmspc") if kind == TCB_INFO else None
            return DocumentInfo(
                kind,
                str(inner.get("id", "SGX" if kind == TCB_INFO else "QE")),
                fmspc.lower() if isinstance(fmspc, str) else None,
                None,
                _instant(inner.get("issueDate")),
                _instant(inner.get("nextUpdate")),
            )
        if kind == CRL:
            crl = x509.load_der_x509_crl(data)
            return DocumentInfo(
                kind, None, None, _common_name(crl.issuer), crl.last_update_utc,
                crl.next_update_utc,
            )  # fmt: skip
        if kind == CERTIFICATE:
            certificate = x509.load_der_x509_certificate(data)
            return DocumentInfo(
                kind, None, None, _common_name(certificate.subject),
                certificate.not_valid_before_utc, certificate.not_valid_after_utc,
            )  # fmt: skip
    except CollateralError:
        raise
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise CollateralError(f"{kind}: does not parse ({str(exc)[:120]})") from None
    raise CollateralError(f"{kind!r} is no kind of Intel collateral ({', '.join(KINDS)})")


def keep(session: Session, documents: Sequence[tuple[str, bytes]], *, source: str) -> int:
    """Keep each (kind, bytes) once; returns how many were new. Raises
    :class:`CollateralError` before keeping anything if one is unreadable."""
    rows = []
    for kind, data in documents:
        info = describe(kind, data)
        rows.append(
            {
                "sha256": hashlib.sha256(data).digest(),
                "kind": kind,
                "data": data,
                "tee": info.tee,
                "fmspc": info.fmspc,
                "name": info.name,
                "issued_at": info.issued_at,
                "next_update": info.next_update,
                "source": source,
            }
        )
    if not rows:
        return 0
    statement = insert(CollateralDocument).values(rows).on_conflict_do_nothing()
    result = session.execute(statement.returning(CollateralDocument.sha256))
    return len(result.all())


def _latest(session: Session, *clauses: object, at: datetime) -> CollateralDocument | None:
    query = (
        select(CollateralDocument)
        .where(*clauses, CollateralDocument.issued_at <= at)  # type: ignore[arg-type]
        .order_by(CollateralDocument.issued_at.desc(), CollateralDocument.sha256)
        .limit(1)
    )
    return session.execute(query).scalar_one_or_none()


def select_for_quote(
    session: Session,
    *,
    tdx: bool,
    fmspc: str,
    pck_issuer: str | None,
    at: datetime,
    root: str = ROOT_CA,
) -> dict[str, CollateralDocument]:
    """The kept documents that judge a quote of this platform at ``at``: for each role
    ("tcb-info", "qe-identity", "pck-crl", "root-crl", "tcb-signing"), the one issued last at
    or before ``at`` (it may have expired by then: the verifier says so). ``pck_issuer`` and
    ``root``: the common names of the PCK CA and the root the quote's chain names (a CRL is
    chosen by its issuer). A role with none kept is absent."""
    found = {
        "tcb-info": _latest(
            session,
            CollateralDocument.kind == TCB_INFO,
            CollateralDocument.tee == ("TDX" if tdx else "SGX"),
            CollateralDocument.fmspc == fmspc.lower(),
            at=at,
        ),
        "qe-identity": _latest(
            session,
            CollateralDocument.kind == QE_IDENTITY,
            CollateralDocument.tee == ("TD_QE" if tdx else "QE"),
            at=at,
        ),
        "pck-crl": _latest(
            session, CollateralDocument.kind == CRL, CollateralDocument.name == pck_issuer, at=at
        )
        if pck_issuer
        else None,
        "root-crl": _latest(
            session, CollateralDocument.kind == CRL, CollateralDocument.name == root, at=at
        ),
        "tcb-signing": _latest(
            session,
            CollateralDocument.kind == CERTIFICATE,
            CollateralDocument.name == TCB_SIGNING,
            at=at,
        ),
    }
    return {role: document for role, document in found.items() if document is not None}


def current(document: CollateralDocument | None, at: datetime) -> bool:
    """Whether ``document`` is still inside its own window at ``at``."""
    return document is not None and (document.next_update is None or at < document.next_update)


# --- files an operator imports ------------------------------------------------------------


def documents_in_file(data: bytes) -> list[tuple[str, bytes]]:
    """The collateral documents in one file: dcap-qvl's QuoteCollateralV3 JSON, an Intel PCS
    TCB info or QE identity response body, a DER CRL, or PEM certificates and CRLs. Raises
    :class:`CollateralError` naming what the file is not, or which document in it is
    unreadable."""
    documents = _documents_in(data)
    for kind, document in documents:
        describe(kind, document)
    return documents


def _documents_in(data: bytes) -> list[tuple[str, bytes]]:
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        try:
            body = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise CollateralError(f"not JSON ({str(exc)[:80]})") from None
        if isinstance(body, dict) and "tcb_info" in body:
            return _from_dcap_qvl(data)
        if isinstance(body, dict) and "tcbInfo" in body:
            return [(TCB_INFO, data)]
        if isinstance(body, dict) and "enclaveIdentity" in body:
            return [(QE_IDENTITY, data)]
        raise CollateralError(
            "a JSON file that is neither dcap-qvl collateral (tcb_info, qe_identity, ...) nor "
            "an Intel PCS response body (tcbInfo or enclaveIdentity)"
        )
    if stripped.startswith(b"-----BEGIN"):
        return _from_pem(data)
    try:
        x509.load_der_x509_crl(data)
    except ValueError:
        raise CollateralError(
            "not collateral: expected dcap-qvl JSON, a PCS response body, a DER CRL or PEM"
        ) from None
    return [(CRL, data)]


def _from_pem(text: bytes) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    try:
        for certificate in x509.load_pem_x509_certificates(text):
            if certificate.subject != certificate.issuer:  # roots are pinned, never collateral
                out.append((CERTIFICATE, certificate.public_bytes(Encoding.DER)))
    except ValueError:
        pass
    if b"-----BEGIN X509 CRL-----" in text:
        for block in text.split(b"-----BEGIN X509 CRL-----")[1:]:
            pem = b"-----BEGIN X509 CRL-----" + block.split(b"-----END X509 CRL-----")[0]
            try:
                crl = x509.load_pem_x509_crl(pem + b"-----END X509 CRL-----\n")
            except ValueError as exc:
                raise CollateralError(f"a PEM CRL does not parse ({exc})") from None
            out.append((CRL, crl.public_bytes(Encoding.DER)))
    if not out:
        raise CollateralError("the PEM file holds no intermediate certificate and no CRL")
    return out


def _from_dcap_qvl(data: bytes) -> list[tuple[str, bytes]]:
    """dcap-qvl's QuoteCollateralV3, as the verifier reads it: TCB info and QE identity as
    the exact text Intel signed inside a PCS body beside its signature, the CRLs as DER, the
    issuer chains' intermediate certificates."""
    try:
        return [(str(e.kind), e.data) for e in endorsements_from_dcap_qvl_json(data)]
    except VerifierError as exc:
        raise CollateralError(exc.message) from None


# --- a PCCS or Intel PCS -------------------------------------------------------------------


def http_get(
    client: httpx.Client, url: str, *, limit: int, params: dict[str, str] | None = None
) -> httpx.Response:
    """GET ``url`` for collateral: a transport failure, a status other than 200 or an answer
    of more than ``limit`` bytes raises :class:`CollateralError` naming the URL."""
    try:
        response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise CollateralError(f"{url}: {exc}") from None
    if response.status_code != 200:
        raise CollateralError(f"{url}: HTTP {response.status_code}")
    if len(response.content) > limit:
        raise CollateralError(f"{url}: the answer is larger than {limit} bytes")
    return response


class PcsClient:
    """Intel's Provisioning Certification Service API v4, as Intel PCS
    (https://api.trustedservices.intel.com) and a PCCS serve it. Used only to fill the
    collateral cache, never while a quote is being verified."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/")
        self.client = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return http_get(self.client, f"{self.base}{path}", limit=_MAX_DOCUMENT, params=params)

    def _chain(self, response: httpx.Response, header: str) -> list[tuple[str, bytes]]:
        text = response.headers.get(header)
        return _from_pem(urllib.parse.unquote(text).encode()) if text else []

    def fetch(self, *, tdx: bool, fmspc: str, pck_ca: str) -> list[tuple[str, bytes]]:
        """Everything that judges a quote of this platform, fresh: TCB info, QE identity,
        the PCK CA's CRL (``pck_ca``: "platform" or "processor") and the root CA's CRL, and
        the certificates of their issuer chains."""
        tee = "tdx" if tdx else "sgx"
        tcb = self._get(f"/{tee}/certification/v4/tcb", {"fmspc": fmspc.lower()})
        qe = self._get(f"/{tee}/certification/v4/qe/identity")
        crl = self._get("/sgx/certification/v4/pckcrl", {"ca": pck_ca, "encoding": "der"})
        root = self._get("/sgx/certification/v4/rootcacrl")
        answered = describe(TCB_INFO, tcb.content)
        if answered.fmspc != fmspc.lower() or answered.tee != tee.upper():
            raise CollateralError(
                f"{self.base}: asked for the {tee.upper()} TCB info of FMSPC {fmspc.lower()}, "
                f"answered with {answered.tee} {answered.fmspc}"
            )
        out = [(TCB_INFO, tcb.content), (QE_IDENTITY, qe.content)]
        out += [(CRL, _crl_bytes(crl.content)), (CRL, _crl_bytes(root.content))]
        out += self._chain(tcb, "TCB-Info-Issuer-Chain")
        out += self._chain(qe, "SGX-Enclave-Identity-Issuer-Chain")
        out += self._chain(crl, "SGX-PCK-CRL-Issuer-Chain")
        return list(dict.fromkeys(out))


def _crl_bytes(content: bytes) -> bytes:
    """A CRL as PCS (DER) or a PCCS (hex of the DER, or PEM) answers it."""
    stripped = content.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            return x509.load_pem_x509_crl(stripped).public_bytes(Encoding.DER)
        except ValueError as exc:  # a PCCS answer is input: refused with our error
            raise CollateralError(f"a PEM CRL from the PCCS does not parse ({exc})") from None
    try:
        return bytes.fromhex(stripped.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return content


# --- completing a quote's collateral at intake ----------------------------------------------

DCAP_KINDS = (str(EvidenceKind.INTEL_TDX), str(EvidenceKind.INTEL_SGX))
_KEPT_MEMORY = 4096


def _platform(quote: Quote) -> tuple[str, str | None, str] | None:
    """(FMSPC, the PCK CA's and the root's common names) as the quote's PCK chain says,
    unverified; None if it does not read that far (the verifier will say why)."""
    try:
        chain = x509.load_pem_x509_certificates(quote.signature_data.pck_chain_pem)
    except (ValueError, IndexError):
        return None
    pck = unverified_pck(quote)
    if pck is None:
        return None
    return pck.fmspc.hex(), _common_name(chain[0].issuer), _common_name(chain[-1].issuer) or ""


def _crl_issuer(data: bytes) -> str | None:
    try:
        return _common_name(x509.load_der_x509_crl(data).issuer)
    except ValueError:
        return None


@dataclass
class CollateralSource:
    """Completes the collateral of a TDX or SGX quote before it is judged: what the worker
    attached is kept as it came; each missing document is taken from the kept collateral
    (chosen by the quote's FMSPC and PCK CA, as of the instant it is judged), fetched first
    from the configured PCCS when nothing current is kept. A failed fetch is not retried
    for the same platform within ``retry_seconds``; the quote is then judged with what there
    is, and its verdict says what was missing."""

    sessions: sessionmaker[Session]
    pcs: PcsClient | None = None
    retry_seconds: float = 60.0
    _failed: dict[tuple[bool, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: SHA-256 of the documents known to be kept already (bounded), so that a worker that
    #: attaches the same collateral to every quote costs no write
    _kept: dict[bytes, None] = field(default_factory=dict)

    def complete(self, evidence: Evidence, at: datetime) -> Evidence:
        if str(evidence.kind) not in DCAP_KINDS:
            return evidence
        try:
            quote = parse_quote(evidence.data)
        except VerifierError:
            return evidence
        platform = _platform(quote)
        if platform is None:
            return evidence
        fmspc, pck_issuer, root = platform
        given = evidence.endorsements
        self._keep_attached(given)
        kinds = {str(e.kind) for e in given}
        issuers = {_crl_issuer(e.data) for e in given if str(e.kind) == CRL}
        wanted = {
            "tcb-info": TCB_INFO not in kinds,
            "qe-identity": QE_IDENTITY not in kinds,
            "pck-crl": pck_issuer not in issuers,
            "root-crl": root not in issuers,
            "tcb-signing": CERTIFICATE not in kinds,
        }
        if not any(wanted.values()):
            return evidence
        chosen = self._choose(quote.is_tdx, fmspc, pck_issuer, root, at)
        stale = not all(current(chosen.get(r), at) for r, missing in wanted.items() if missing)
        if stale and self.pcs is not None and self._fetch(quote.is_tdx, fmspc, pck_issuer):
            chosen = self._choose(quote.is_tdx, fmspc, pck_issuer, root, at)
        added = tuple(
            Endorsement(EndorsementKind(chosen[role].kind), bytes(chosen[role].data))
            for role, missing in wanted.items()
            if missing and role in chosen
        )
        return Evidence(evidence.kind, evidence.data, (*given, *added))

    def _keep_attached(self, given: Sequence[Endorsement]) -> None:
        """Keep what a worker attached (unverified, like everything kept): later quotes of
        the platform and the revocation impact can use it. Unreadable documents are left to
        the verifier's verdict."""
        new = []
        with self._lock:
            for endorsement in given:
                digest = hashlib.sha256(endorsement.data).digest()
                if str(endorsement.kind) in KINDS and digest not in self._kept:
                    new.append(endorsement)
        readable = []
        for endorsement in new:
            try:
                describe(str(endorsement.kind), endorsement.data)
            except CollateralError:
                continue
            readable.append((str(endorsement.kind), endorsement.data))
        if not readable:
            return
        with self.sessions() as session, session.begin():
            keep(session, readable, source="worker")
        with self._lock:
            for _, data in readable:
                self._kept[hashlib.sha256(data).digest()] = None
            while len(self._kept) > _KEPT_MEMORY:
                del self._kept[next(iter(self._kept))]

    def _choose(
        self, tdx: bool, fmspc: str, pck_issuer: str | None, root: str, at: datetime
    ) -> dict[str, CollateralDocument]:
        with self.sessions() as session:
            chosen = select_for_quote(
                session, tdx=tdx, fmspc=fmspc, pck_issuer=pck_issuer, at=at, root=root
            )
            session.expunge_all()
        return chosen

    def _fetch(self, tdx: bool, fmspc: str, pck_issuer: str | None) -> bool:
        assert self.pcs is not None  # noqa: S101 - the caller checked
        key = (tdx, fmspc)
        now = time.monotonic()
        with self._lock:
            if now - self._failed.get(key, -self.retry_seconds) < self.retry_seconds:
                return False
        ca = "processor" if pck_issuer == PCK_PROCESSOR_CA else "platform"
        try:
            documents = self.pcs.fetch(tdx=tdx, fmspc=fmspc, pck_ca=ca)
            with self.sessions() as session, session.begin():
                keep(session, documents, source="pccs")
        except CollateralError as exc:
            log.warning("collateral for FMSPC %s could not be fetched: %s", fmspc, exc)
            with self._lock:
                self._failed[key] = now
            return False
        log.info("collateral for FMSPC %s fetched from %s", fmspc, self.pcs.base)
        return True
