"""The auditor portal: server-rendered pages under /portal, for people.

Works without JavaScript; the one script (``static/verify.js``) only adds the in-browser
check of an entry's inclusion proof and of the checkpoint's signature. Every value shown
passes through Jinja's autoescaping (evidence fields are attacker-controlled), and every
response carries a strict Content-Security-Policy (see :func:`web.create_app`).

Sign-in: a random session token in an HttpOnly, SameSite=Lax cookie (Secure unless turned
off for plain-HTTP deployments), looked up by its SHA-256 on every request; a CSRF token
per session on every form; the sign-in form itself is protected by a double-submit cookie.
Failed sign-ins are limited per name and per address (:mod:`attest_ledger.users`).
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import text

from attest_ledger.bundles.export import BundleSelection
from attest_ledger.display import visible
from attest_ledger.ear import EarError, ear_disagreements, verify_ear
from attest_ledger.explain import EntryView, explain_entry, reverify
from attest_ledger.explain_tdx import mimetype_of, suffix_of
from attest_ledger.impact import revocation_impact
from attest_ledger.models import CollateralDocument
from attest_ledger.users import (
    DEVICE_LIFETIME,
    UserError,
    csrf_matches,
    end_session,
    end_sessions,
    list_accounts,
    resume_session,
    set_disabled,
    sign_in,
)
from ledger.checkpoint import tlog_proof
from ledger.checkpoints import SignedCheckpoint, checkpoint_at, latest_checkpoint, list_checkpoints
from ledger.db import session_scope
from ledger.errors import EntryNotFound, InvalidNote, LedgerError, TreeSizeUnavailable
from ledger.merkle import verify_consistency
from ledger.note import open_note
from ledger.reads import consistency_proof, get_entry, inclusion_proof, tree_state
from ledger.search import SORTS, VERDICTS, EntryFilter, SearchError, parse_time, search_entries
from ledger.stats import aggregate, refresh
from verifier import EvidenceKind
from web.api import MAX_INDEX
from web.collateral_api import service_dcap_verifier
from web.compliance import AK_PATHS, EntryQuery
from web.exports import bundle_response
from web.portal_nvidia import (
    DERIVATION,
    SUBMOD,
    composite_of,
    device_blob,
    device_download,
    explain_device,
)
from web.portal_tpm import ENROLMENT, TPM2_QUOTE, explain_enrolment, explain_tpm, summary_of
from web.problems import Problem
from web.sessions import db
from web.submission import EVIDENCE_KINDS

__all__ = ["bp", "init_portal"]

bp = Blueprint("portal", __name__, url_prefix="/portal")

_PUBLIC = {"portal.login"}
_RANGES = {"48h": ("hour", timedelta(hours=48)), "30d": ("day", timedelta(days=30)),
           "12m": ("month", timedelta(days=366))}  # fmt: skip
_VERDICT_ORDER = ("affirming", "warning", "contraindicated")
#: an entry index the database can hold; a larger one matches no page (404)
_INDEX = f"<int(max={MAX_INDEX}):index>"
_DIGITS = re.compile(r"[0-9]{1,19}")
_SNP = str(EvidenceKind.AMD_SEV_SNP)
_TDX, _SGX = str(EvidenceKind.INTEL_TDX), str(EvidenceKind.INTEL_SGX)


def _whole(text: str) -> bool:
    """A whole number PostgreSQL's bigint holds (not str.isdigit(), for which "²" is one)."""
    return _DIGITS.fullmatch(text) is not None and int(text) <= MAX_INDEX


def _runtime() -> Any:
    return current_app.extensions["attest_ledger.runtime"]


def _now() -> datetime:
    now: datetime = _runtime().clock()
    return now


def _settings() -> Any:
    return _runtime().settings


def _session_cookie() -> str:
    return "__Host-al_session" if _settings().cookie_secure else "al_session"


def _device_cookie() -> str:
    return "__Host-al_device" if _settings().cookie_secure else "al_device"


# --- signing in -------------------------------------------------------------------------------


@bp.before_request
def _require_sign_in() -> ResponseReturnValue | None:
    g.user = None
    token = request.cookies.get(_session_cookie())
    if token:
        g.user = resume_session(db(), token, now=_now())
    if request.endpoint in _PUBLIC:
        return None
    if g.user is None:
        return redirect(url_for("portal.login", next=request.full_path.rstrip("?")))
    if request.method == "POST" and not csrf_matches(g.user.csrf_token, request.form.get("csrf")):
        raise Problem(400, "csrf_failed", "The form was stale or not ours; reload and try again.")
    return None


def _safe_next(target: str | None) -> str:
    """Only our own portal pages: never an absolute URL (no open redirect)."""
    if (
        target
        and target.startswith("/portal/")
        and not urlsplit(target).netloc
        and "\\" not in target
        and not target.startswith("//")
        and target.isprintable()  # CR/LF in a Location header was a 500
    ):
        return target
    return url_for("portal.overview")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    settings = _settings()
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.user is not None:
            return redirect(target)
        return _login_page(target, None, 200)
    expected = request.cookies.get("al_login")
    if not expected or not csrf_matches(expected, request.form.get("csrf")):
        return _login_page(target, "The sign-in form expired; please try again.", 400)
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    outcome = sign_in(
        _runtime().sessions,
        name,
        password,
        address=request.remote_addr or "unknown",
        now=_now(),
        lifetime=timedelta(hours=settings.session_hours),
        device_token=request.cookies.get(_device_cookie()),
    )
    if outcome.refused == "limited":
        return _login_page(
            target,
            "Too many failed sign-ins for this name from here. Try again in 15 minutes "
            "(a browser that signed in as you before is not held back by failures elsewhere).",
            429,
        )
    if outcome.refused == "busy":
        page = _login_page(
            target, "Too many sign-ins are being checked at once; try again in a moment.", 503
        )
        page.headers["Retry-After"] = "5"
        return page
    if outcome.token is None:
        return _login_page(target, "Unknown name or wrong password.", 401)
    response = redirect(target)
    if outcome.device_token is not None:  # this browser is now a known device of this user
        response.set_cookie(
            _device_cookie(),
            outcome.device_token,
            max_age=int(DEVICE_LIFETIME.total_seconds()),
            path="/",
            secure=settings.cookie_secure,
            httponly=True,
            samesite="Lax",
        )
    response.set_cookie(
        _session_cookie(),
        outcome.token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="Lax",
    )
    response.delete_cookie("al_login", path="/portal/login")
    return response


def _login_page(target: str, error: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(32)
    response = make_response(
        render_template("portal/login.html", csrf=token, next=target, error=error), status
    )
    response.set_cookie(
        "al_login",
        token,
        max_age=3600,
        path="/portal/login",
        secure=_settings().cookie_secure,
        httponly=True,
        samesite="Strict",
    )
    return response


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    token = request.cookies.get(_session_cookie(), "")
    with session_scope(_runtime().sessions) as session:
        end_session(session, token)
    response = redirect(url_for("portal.login", signed_out=1))
    response.delete_cookie(_session_cookie(), path="/", secure=_settings().cookie_secure)
    return response


# --- overview ----------------------------------------------------------------------------------


def _checkpoint_status(checkpoint: SignedCheckpoint | None, now: datetime) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    try:
        open_note(checkpoint.note, [_runtime().log_key])
        verified = True
    except InvalidNote:
        verified = False
    return {
        "checkpoint": checkpoint,
        "verified": verified,
        "age": now - checkpoint.created_at,
    }


def _series(bucket: str, since: datetime, now: datetime, counts: list[Any]) -> list[dict[str, Any]]:
    """Every bucket from ``since`` to ``now``, with its count per verdict (zeros included)."""
    since, now = since.astimezone(UTC), now.astimezone(UTC)
    starts: list[datetime] = []
    if bucket == "hour":
        moment = since.replace(minute=0, second=0, microsecond=0)
        while moment <= now:
            starts.append(moment)
            moment += timedelta(hours=1)
    elif bucket == "day":
        moment = since.replace(hour=0, minute=0, second=0, microsecond=0)
        while moment <= now:
            starts.append(moment)
            moment += timedelta(days=1)
    else:
        moment = since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        while moment <= now:
            starts.append(moment)
            moment = (moment + timedelta(days=32)).replace(day=1)
    table: dict[datetime, dict[str, int]] = {s: dict.fromkeys(_VERDICT_ORDER, 0) for s in starts}
    for count in counts:
        start = count.bucket.astimezone(UTC)
        if start in table and count.group["verdict"] in _VERDICT_ORDER:
            table[start][count.group["verdict"]] += count.entries
    return [{"start": s, "counts": table[s], "total": sum(table[s].values())} for s in starts]


def _chart(series: list[dict[str, Any]], bucket: str) -> dict[str, Any]:
    """Bar geometry for the template's SVG: one stacked bar per bucket."""
    width, height, left, bottom = 960.0, 240.0, 44.0, 24.0
    peak = max((item["total"] for item in series), default=0) or 1
    slot = (width - left) / max(len(series), 1)
    bars, labels = [], []
    every = max(1, len(series) // 8)
    for n, item in enumerate(series):
        x, y = left + n * slot + slot * 0.1, height - bottom
        for verdict in _VERDICT_ORDER:
            value = item["counts"][verdict]
            if value:
                h = (height - bottom - 10) * value / peak
                y -= h
                bars.append(
                    {"x": x, "y": y, "w": slot * 0.8, "h": h, "verdict": verdict, "n": value,
                     "start": item["start"]}
                )  # fmt: skip
        if n % every == 0:
            fmt = {"hour": "%H:00", "day": "%d %b", "month": "%b %Y"}[bucket]
            centre = x + slot * 0.4
            anchor = "end" if centre > width - 30 else "middle"  # the last label stays inside
            labels.append(
                {"x": min(centre, width), "text": item["start"].strftime(fmt), "anchor": anchor}
            )
    return {"width": width, "height": height, "left": left, "bottom": bottom, "bars": bars,
            "labels": labels, "peak": peak}  # fmt: skip


def _top(session: Any, column: str, since: datetime) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for count in aggregate(
        session, bucket="month", since=since, group_by=(column,), where={"kind": "attestation"}
    ):
        name = count.group[column] or "(none)"
        totals[name] = totals.get(name, 0) + count.entries
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:5]


def _by_kind(counts: list[Any]) -> list[dict[str, Any]]:
    """Attestations of the period per evidence kind and verdict, the most numerous first."""
    table: dict[str, dict[str, int]] = {}
    for count in counts:
        kind = count.group["evidence_kind"] or "(none)"
        verdicts = table.setdefault(kind, dict.fromkeys(_VERDICT_ORDER, 0))
        if count.group["verdict"] in verdicts:
            verdicts[count.group["verdict"]] += count.entries
    rows = [{"kind": k, "counts": v, "total": sum(v.values())} for k, v in table.items()]
    return sorted(rows, key=lambda row: (-row["total"], row["kind"]))


@bp.get("/")
def overview() -> str:
    chosen = request.args.get("range", "48h")
    if chosen not in _RANGES:
        raise Problem(400, "malformed_request", f"range must be one of {', '.join(_RANGES)}")
    bucket, span = _RANGES[chosen]
    with session_scope(_runtime().sessions) as writer:
        refresh(writer, max_steps=1)  # cheap when the publisher keeps up (it normally does)
    session = db()
    state = tree_state(session)
    counted, now = session.execute(_COUNTED).one()
    since = now - span
    counts = aggregate(
        session,
        bucket=bucket,
        since=since,
        group_by=("verdict", "evidence_kind"),
        where={"kind": "attestation"},
    )
    series = _series(bucket, since, now, counts)
    rejections = []
    for row in search_entries(session, EntryFilter(verdict="contraindicated"), limit=8).rows:
        record = json.loads(row.data)
        rejections.append({"row": row, "reasons": record.get("reasons") or []})
    return render_template(
        "portal/overview.html",
        size=state.size,
        counted=counted,
        latest=_checkpoint_status(latest_checkpoint(session), now),
        chosen=chosen,
        ranges=list(_RANGES),
        chart=_chart(series, bucket),
        totals={v: sum(item["counts"][v] for item in series) for v in _VERDICT_ORDER},
        kinds=_by_kind(counts),
        images=_top(session, "image", since),
        workers=_top(session, "worker", since),
        rejections=rejections,
    )


# How far the hourly counts go, and the database's clock: entries and checkpoints are
# stamped by it, so the overview's periods and ages are measured on it too.
_COUNTED = text("SELECT next_idx, now() FROM ledger_stats_state WHERE id = 1")


# --- entries -----------------------------------------------------------------------------------


def _first_reason(data: bytes) -> str | None:
    reasons = json.loads(data).get("reasons") or []
    if reasons and isinstance(reasons[0], dict):
        return str(reasons[0].get("code"))
    return None


@bp.get("/entries")
def entries() -> Response:
    args = request.args
    sort = args.get("sort") or "index-desc"
    error: SearchError | None = None
    page = None
    try:
        selection = EntryQuery.from_params(args)
        page = search_entries(
            db(), selection, sort=sort, after=args.get("after") or None,
            before=args.get("before") or None, limit=50,
        )  # fmt: skip
    except SearchError as exc:
        error = exc
        selection = EntryQuery()
    rows = [
        {
            "row": r,
            "reason": _first_reason(r.data),
            "tpm": summary_of(r.data)
            if r.kind == ENROLMENT or r.evidence_kind == TPM2_QUOTE
            else None,
        }
        for r in (page.rows if page else [])
    ]
    base = {k: v for k, v in args.items() if v and k not in ("after", "before")}
    return make_response(
        render_template(
            "portal/entries.html",
            args=args,
            rows=rows,
            page=page,
            error=error,
            sorts=SORTS,
            verdicts=VERDICTS,
            evidence_kinds=EVIDENCE_KINDS,
            ak_paths=AK_PATHS,
            filtered=not selection.empty,
            newer=_entries_url({**base, "before": page.before}) if page and page.before else None,
            older=_entries_url({**base, "after": page.after}) if page and page.after else None,
            permalink=_entries_url({k: v for k, v in args.items() if v}),
            export_url=url_for("portal.export")
            + ("?" + urlencode(selection.to_params()) if not selection.empty else ""),
        ),
        400 if error else 200,
    )


def _entries_url(params: dict[str, str]) -> str:
    query = urlencode(params)
    return url_for("portal.entries") + (f"?{query}" if query else "")


def _explain(index: int) -> EntryView:
    """The entry laid out, with the service's schemes (whose roots an SEV-SNP path is shown
    with when they did not come with the evidence)."""
    return explain_entry(db(), index, schemes=_runtime().intake.schemes)


def _entry_page(index: int, reverification: Any = None) -> str:
    session = db()
    try:
        view = _explain(index)
    except EntryNotFound:
        size = tree_state(session).size
        raise Problem(
            404,
            "not_found",
            f"There is no entry {index}: the ledger holds {size} entries (0 to {size - 1})."
            if size
            else "There is no entry yet: the ledger is empty.",
        ) from None
    latest = latest_checkpoint(session)
    covered = latest is not None and latest.tree_size > index
    kind = view.record.get("kind")
    tpm = (
        explain_tpm(session, index, view.record, view.evidence, policy=view.policy)
        if kind == "attestation" and view.evidence_kind == TPM2_QUOTE
        else None
    )
    return render_template(
        "portal/entry.html",
        view=view,
        tpm=tpm,
        enrolment=explain_enrolment(view.record) if kind == ENROLMENT else None,
        composite=composite_of(view.record),
        record=view.record,
        index=index,
        latest=latest if covered else None,
        reverification=reverification,
        log_key=str(_runtime().log_key),
        json_text=json.dumps(view.record, indent=2, ensure_ascii=False),
        ear=_ear_of(view.record),
        user_data_text=_printable(view.document.user_data if view.document else None),
    )


def _ear_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The entry's EAR for the page: its claims, key id and whether its signature (by this
    verifier's key) holds and it says what the entry says, checked here. None: no EAR (an
    entry from before EARs, or not a verdict)."""
    token = record.get("ear")
    if token is None:
        return None
    signer = _runtime().ear_signer
    try:
        verified = verify_ear(token, signer.jwks()["keys"])
    except EarError as exc:
        return {"valid": False, "problem": exc.message, "kid": None, "claims_text": None}
    differ = ear_disagreements(verified.claims, record)
    return {
        "valid": not differ,
        "problem": "; ".join(differ) or None,
        "kid": verified.kid,
        "claims_text": json.dumps(verified.claims, indent=2, sort_keys=True, ensure_ascii=False),
        "submods": _submods(verified.claims),
    }


def _submods(claims: dict[str, Any]) -> list[dict[str, Any]]:
    """Each submod of an EAR (``cpu0``, then the devices in the record's order: gpu0,
    switch2...) with its status, evidence kind and reason codes, as the EAR says them."""
    submods = claims.get("submods")
    if not isinstance(submods, dict):
        return []
    out = []
    for name, given in submods.items():
        said = given if isinstance(given, dict) else {}
        status = said.get("ear.status")
        reasons = said.get("attestation-ledger.reasons")
        out.append(
            {
                "name": str(name),
                "status": status if isinstance(status, str) else None,
                "kind": str(said.get("attestation-ledger.evidence-kind") or ""),
                "policy": str(said.get("ear.appraisal-policy-id") or ""),
                "reasons": [str(r) for r in reasons] if isinstance(reasons, list) else [],
                "device": SUBMOD.fullmatch(str(name)) is not None,
            }
        )
    return out


@bp.get(f"/entries/{_INDEX}/ear.jwt")
def entry_ear(index: int) -> Response:
    """The entry's EAR, the compact JWS exactly as the entry holds it."""
    token = json.loads(get_entry(db(), index).data).get("ear")
    if not isinstance(token, str):
        raise Problem(404, "not_found", f"entry {index} has no EAR")
    return _download(token.encode(), "application/jwt", f"entry-{index}-ear.jwt")


def _printable(data: bytes | None) -> str | None:
    """``data`` as text when it is printable UTF-8 (shown escaped, beside the hex)."""
    if not data:
        return None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


@bp.get(f"/entries/{_INDEX}")
def entry(index: int) -> str:
    return _entry_page(index)


@bp.post(f"/entries/{_INDEX}/reverify")
def entry_reverify(index: int) -> str:
    view = _explain(index)
    if view.evidence is None:
        raise Problem(400, "malformed_request", f"entry {index} has no evidence to verify")
    scheme = _runtime().intake.schemes.get(view.evidence_kind)
    if scheme is None:
        raise Problem(
            400,
            "unsupported_evidence_kind",
            f"entry {index} holds {view.evidence_kind} evidence, which this service does not judge",
        )
    try:
        again = reverify(view, scheme)
    except ValueError as exc:  # no recorded instant to judge at
        raise Problem(400, "malformed_request", f"entry {index}: {exc}") from None
    return _entry_page(index, again)


def _download(body: bytes | str, mimetype: str, filename: str) -> Response:
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get(f"/entries/{_INDEX}/evidence.cbor")
def entry_evidence(index: int) -> Response:
    """A Nitro document, as submitted (CBOR)."""
    view = _explain(index)
    if view.evidence is None:
        raise Problem(404, "not_found", f"entry {index} has no evidence")
    if not view.is_nitro:
        raise Problem(
            404,
            "not_found",
            f"entry {index} holds {view.evidence_kind} evidence, not a Nitro document: "
            f"see /portal/entries/{index}/evidence.bin",
        )
    return _download(view.evidence, "application/cbor", f"entry-{index}-evidence.cbor")


@bp.get(f"/entries/{_INDEX}/evidence.bin")
def entry_evidence_bytes(index: int) -> Response:
    """The evidence of any kind, byte for byte as submitted (an SEV-SNP report: 1184 bytes)."""
    view = _explain(index)
    if view.evidence is None:
        raise Problem(404, "not_found", f"entry {index} has no evidence")
    name = {_SNP: "report", _TDX: "quote", _SGX: "quote"}.get(view.evidence_kind, "evidence")
    return _download(view.evidence, "application/octet-stream", f"entry-{index}-{name}.bin")


def _endorsement(index: int, sha256: str, suffix: str) -> Response:
    """An endorsement the entry names, by its SHA-256; only those the entry names, only bytes
    that have that digest, and only under the suffix of its kind (``.json``: Intel's TCB info
    and QE identity, served as JSON; ``.der``: a certificate or CRL)."""
    view = _explain(index)
    named = next((e for e in view.endorsements if e.sha256 == sha256), None)
    if named is None:
        raise Problem(404, "not_found", f"entry {index} names no endorsement with that SHA-256")
    if not named.holds:
        raise Problem(
            404,
            "not_found",
            f"entry {index} names this {named.kind}, but the ledger does not hold its bytes",
        )
    if suffix_of(named.kind) != suffix:
        raise Problem(
            404,
            "not_found",
            f"entry {index} names this {named.kind} as "
            f"/portal/entries/{index}/endorsements/{sha256}.{suffix_of(named.kind)}",
        )
    assert named.data is not None  # noqa: S101 - holds: the bytes are there
    return _download(
        named.data, mimetype_of(named.kind), f"entry-{index}-{named.kind}-{sha256[:16]}.{suffix}"
    )


@bp.get(f"/entries/{_INDEX}/endorsements/<sha256>.der")
def entry_endorsement_der(index: int, sha256: str) -> Response:
    """A certificate or CRL the entry names (DER)."""
    return _endorsement(index, sha256, "der")


@bp.get(f"/entries/{_INDEX}/endorsements/<sha256>.json")
def entry_endorsement_json(index: int, sha256: str) -> Response:
    """An Intel TCB info or QE identity the entry names, byte for byte as signed (JSON)."""
    return _endorsement(index, sha256, "json")


def _device(index: int, submod: str) -> tuple[EntryView, Any]:
    view = _explain(index)
    device = explain_device(db(), view.record, submod) if SUBMOD.fullmatch(submod) else None
    if device is None:
        raise Problem(404, "not_found", f"entry {index} has no device {submod[:20]!r}")
    return view, device


@bp.get(f"/entries/{_INDEX}/devices/<submod>")
def entry_device(index: int, submod: str) -> str:
    """One device of a composite entry: its chain, nonce, FWID and measurements."""
    view, device = _device(index, submod)
    return render_template(
        "portal/device.html", view=view, record=view.record, index=index, device=device,
        derivation=DERIVATION,
    )  # fmt: skip


@bp.get(f"/entries/{_INDEX}/devices/<submod>/report.bin")
def entry_device_report(index: int, submod: str) -> Response:
    """A device's SPDM report (request || response), byte for byte as submitted."""
    _, device = _device(index, submod)
    if device.evidence is None:
        raise Problem(404, "not_found", f"the ledger does not hold the report of {submod}")
    return _download(
        device.evidence, "application/octet-stream", f"entry-{index}-{submod}-report.bin"
    )


@bp.get(f"/entries/{_INDEX}/devices/<submod>/endorsements/<sha256>.<suffix>")
def entry_device_endorsement(index: int, submod: str, sha256: str, suffix: str) -> Response:
    """A certificate (DER), RIM (XML) or OCSP response (DER) the device names, by SHA-256."""
    _, device = _device(index, submod)
    named = device_blob(db(), device, sha256)
    if named is None or named.kind == "nvidia-gpu":
        raise Problem(404, "not_found", f"{submod} names no endorsement with that SHA-256")
    if not named.holds:
        raise Problem(404, "not_found", f"the ledger does not hold this {named.kind}")
    expected, mimetype = device_download(named.kind)
    if suffix != expected:
        raise Problem(
            404,
            "not_found",
            f"this {named.kind} is /portal/entries/{index}/devices/{submod}/endorsements/"
            f"{sha256}.{expected}",
        )
    assert named.data is not None  # noqa: S101 - holds: the bytes are there
    return _download(
        named.data, mimetype, f"entry-{index}-{submod}-{named.kind}-{sha256[:16]}.{suffix}"
    )


@bp.get(f"/entries/{_INDEX}/entry.json")
def entry_bytes(index: int) -> Response:
    """The canonical entry bytes, exactly as hashed into the leaf."""
    return _download(get_entry(db(), index).data, "application/json", f"entry-{index}.json")


def _proof_size(index: int) -> tuple[int, SignedCheckpoint]:
    session = db()
    text = request.args.get("tree_size")
    if text:
        if not _whole(text):
            raise Problem(400, "malformed_request", "tree_size must be a whole number")
        checkpoint = checkpoint_at(session, int(text))
        if checkpoint is None:
            raise Problem(404, "not_found", f"no signed checkpoint has tree size {text}")
    else:
        checkpoint = latest_checkpoint(session)
        if checkpoint is None:
            raise Problem(404, "not_yet_checkpointed", "no checkpoint has been published yet")
    if checkpoint.tree_size <= index:
        raise Problem(
            404,
            "not_yet_checkpointed",
            f"entry {index} is not covered by the checkpoint of size {checkpoint.tree_size} yet",
        )
    return checkpoint.tree_size, checkpoint


@bp.get(f"/entries/{_INDEX}/proof.json")
def entry_proof_json(index: int) -> Response:
    size, checkpoint = _proof_size(index)
    entry = get_entry(db(), index)
    body = {
        "index": index,
        "tree_size": size,
        "leaf_hash": entry.leaf_hash.hex(),
        "hashes": [h.hex() for h in inclusion_proof(db(), index, size)],
        "checkpoint": checkpoint.note,
        "log_key": str(_runtime().log_key),
    }
    return _download(
        json.dumps(body, indent=2) + "\n", "application/json", f"entry-{index}-proof.json"
    )


@bp.get(f"/entries/{_INDEX}/proof.tlog")
def entry_proof_tlog(index: int) -> Response:
    size, checkpoint = _proof_size(index)
    text = tlog_proof(index, inclusion_proof(db(), index, size), checkpoint.note)
    return _download(text, "text/plain", f"entry-{index}.tlog-proof")


@bp.get("/export")
def export() -> Response:
    """The proof bundle of the entries a filtered view shows (every page of it)."""
    try:
        selection = EntryQuery.from_params(request.args)
    except SearchError as exc:
        raise Problem(400, "invalid_parameter", f"{exc.parameter}: {exc.message}") from None
    return bundle_response(
        _runtime(), BundleSelection(selection), None, reader=f"portal:{g.user.name}"
    )


# --- revocation impact (issue #12) ------------------------------------------------------------

_FMSPC = re.compile(r"[0-9a-fA-F]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMPACT_PAGE = 50


@bp.get("/impact")
def impact() -> Response:
    """The TDX and SGX entries a TCB info kept later marks OutOfDate or Revoked
    (:func:`attest_ledger.impact.revocation_impact`), newest first, 50 to a page."""
    args = request.args
    error: str | None = None
    fmspc = args.get("fmspc", "").strip() or None
    since = None
    after = None
    if fmspc is not None and not _FMSPC.fullmatch(fmspc):
        error = "FMSPC: 12 hex digits (6 bytes), such as B0C06F000000"
    if error is None and args.get("since"):
        try:
            since = parse_time("since", args["since"])
        except SearchError as exc:
            error = f"since: {exc.message}"
    if error is None and args.get("after"):
        if not _whole(args["after"]):
            error = "after: an entry index, as the page's link gave it"
        else:
            after = int(args["after"])
    page = None
    if error is None:
        page = revocation_impact(
            db(), service_dcap_verifier(), fmspc=fmspc, since=since, after=after,
            limit=_IMPACT_PAGE,
        )  # fmt: skip
    base = {k: v for k, v in args.items() if v and k in ("fmspc", "since")}
    older = None
    if page is not None and page.after is not None:
        older = _impact_url({**base, "after": page.after})
    return make_response(
        render_template(
            "portal/impact.html",
            args=args,
            rows=page.entries if page is not None else (),
            error=error,
            older=older,
            first=_impact_url(base) if after is not None else None,
        ),
        400 if error else 200,
    )


def _impact_url(params: dict[str, str]) -> str:
    query = urlencode(params)
    return url_for("portal.impact") + (f"?{query}" if query else "")


@bp.get("/collateral/<sha256>.<suffix>")
def collateral_document(sha256: str, suffix: str) -> Response:
    """A collateral document the service keeps, byte for byte, by its SHA-256 (the impact
    page links each marking TCB info here): JSON for TCB info and QE identity, DER else."""
    if not _SHA256.fullmatch(sha256):
        raise Problem(404, "not_found", "a collateral document is named by 64 lowercase hex")
    document = db().get(CollateralDocument, bytes.fromhex(sha256))
    if document is None:
        raise Problem(404, "not_found", "no collateral document kept has that SHA-256")
    if suffix_of(document.kind) != suffix:
        raise Problem(
            404,
            "not_found",
            f"this {document.kind} is /portal/collateral/{sha256}.{suffix_of(document.kind)}",
        )
    return _download(
        bytes(document.data), mimetype_of(document.kind), f"{document.kind}-{sha256[:16]}.{suffix}"
    )


# --- checkpoints -------------------------------------------------------------------------------


@bp.get("/checkpoints")
def checkpoints() -> str:
    before_text = request.args.get("before")
    before = None
    if before_text:
        if not _whole(before_text):
            raise Problem(400, "malformed_request", "before must be a whole number")
        before = int(before_text)
    session = db()
    listed = list_checkpoints(session, before=before, limit=51)
    more = len(listed) > 50
    now = session.execute(text("SELECT now()")).scalar_one()
    rows = [_checkpoint_status(c, now) for c in listed[:50]]
    return render_template(
        "portal/checkpoints.html",
        rows=rows,
        older=url_for("portal.checkpoints", before=listed[49].tree_size) if more else None,
        first=request.args.get("first", ""),
        second=request.args.get("second", ""),
        log_key=str(_runtime().log_key),
    )


@bp.get(f"/checkpoints/<int(max={MAX_INDEX}):size>.txt")  # larger: no route (404), not a 500
def checkpoint_note(size: int) -> Response:
    checkpoint = checkpoint_at(db(), size)
    if checkpoint is None:
        raise Problem(404, "not_found", f"no signed checkpoint has tree size {size}")
    return _download(checkpoint.note, "text/plain", f"checkpoint-{size}.txt")


@bp.get("/log-key.txt")
def log_key() -> Response:
    return _download(str(_runtime().log_key) + "\n", "text/plain", "log-key.txt")


@bp.get("/consistency")
def consistency() -> Response:
    session = db()
    values = []
    for name in ("first", "second"):
        text = request.args.get(name, "")
        if not _whole(text):
            raise Problem(400, "malformed_request", f"{name} must be the size of a checkpoint")
        values.append(int(text))
    first, second = values
    if not 0 < first <= second:
        raise Problem(400, "malformed_request", "need 0 < first <= second")
    old, new = checkpoint_at(session, first), checkpoint_at(session, second)
    if old is None or new is None:
        missing = first if old is None else second
        raise Problem(404, "not_found", f"no signed checkpoint has tree size {missing}")
    try:
        hashes = consistency_proof(session, first, second)
    except TreeSizeUnavailable as exc:
        raise Problem(400, "malformed_request", exc.message) from None
    try:
        verify_consistency(first, second, hashes, old.body.root_hash, new.body.root_hash)
        verified = True
    except LedgerError:
        verified = False
    body = {
        "first": first,
        "second": second,
        "hashes": [h.hex() for h in hashes],
        "first_checkpoint": old.note,
        "second_checkpoint": new.note,
        "log_key": str(_runtime().log_key),
    }
    if request.args.get("format") == "json":
        return _download(
            json.dumps(body, indent=2) + "\n",
            "application/json",
            f"consistency-{first}-{second}.json",
        )
    return make_response(
        render_template("portal/consistency.html", body=body, old=old, new=new, verified=verified)
    )


# --- accounts (administrators) ----------------------------------------------------------------


def _require_admin() -> None:
    if g.user.role != "admin":
        raise Problem(403, "forbidden", "Only administrators manage accounts.")


@bp.get("/accounts")
def accounts() -> str:
    _require_admin()
    return render_template(
        "portal/accounts.html",
        accounts=list_accounts(db(), now=_now()),
        done=request.args.get("done"),
    )


@bp.post("/accounts/<name>/<action>")
def account_action(name: str, action: str) -> ResponseReturnValue:
    _require_admin()
    if action not in ("disable", "enable", "sign-out"):
        raise Problem(404, "not_found", f"no account action {action!r}")
    if name == g.user.name and action == "disable":
        raise Problem(409, "account_unchanged", "You cannot disable your own account here.")
    try:
        with session_scope(_runtime().sessions) as session:
            if action == "sign-out":
                ended = end_sessions(session, name, by=g.user.name)
                done = f"{name} is signed out everywhere ({ended} session{'s' * (ended != 1)})"
            else:
                set_disabled(session, name, disabled=action == "disable", by=g.user.name)
                done = f"{name} is {action}d"
    except UserError as exc:
        raise Problem(409, "account_unchanged", f"{exc}.") from None
    return redirect(url_for("portal.accounts", done=done), 303)


# --- errors, filters ---------------------------------------------------------------------------


def _error_page(problem: Problem) -> Response:
    return make_response(
        render_template("portal/error.html", problem=problem, user=g.get("user")), problem.status
    )


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return f"{seconds} second{'s' if seconds != 1 else ''} ago"


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shown(value: Any) -> Any:
    """Jinja's finalize: every text a template shows goes through display.visible, so no
    evidence field can hide a character or reorder the page (markup we built is left as is)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def init_portal(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.finalize = _shown
    app.extensions["attest_ledger.html_errors"] = _error_page
    app.jinja_env.filters["age"] = _age
    app.jinja_env.filters["utc"] = _utc
    app.jinja_env.filters["utc_short"] = lambda m: _utc(m).removesuffix(" UTC")
    app.jinja_env.filters["endorsement_suffix"] = suffix_of
    app.jinja_env.filters["collateral_url"] = lambda sha256: url_for(
        "portal.collateral_document", sha256=sha256, suffix="json"
    )
    app.jinja_env.filters["device_suffix"] = lambda kind: device_download(kind)[0]
    app.jinja_env.filters["hexbytes"] = lambda b: b.hex() if b is not None else "-"

    @app.get("/")
    def _root() -> ResponseReturnValue:
        return redirect(url_for("portal.overview"))
