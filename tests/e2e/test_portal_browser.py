"""The auditor portal in real headless Chromium (Debian's package, driven by Playwright) against
the real service under gunicorn on loopback: sign in, filter, open an entry, download its
proof and check it offline, watch the in-browser check pass, and fail for a tampered proof;
the same for an SEV-SNP entry from a simulated SNP guest, with its report and endorsements,
and for an Intel TDX entry with its collateral, and the revocation impact page; and a
composite entry (issue #14: a simulated SNP guest with two simulated GPUs) and its devices.

Screenshots of every page go to ``test-artifacts/portal/`` (or $ATTEST_LEDGER_ARTIFACTS); CI
keeps them, and a person should look at them when the pages change."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from attest_ledger.policy_store import PolicyStore
from enclave_worker import (
    SimulatedAmdWarning,
    SimulatedIntelWarning,
    SimulatedTdxPlatform,
    TcbStanding,
    simulated_snp_measurement,
    simulated_tdx_measurement,
)
from enclave_worker.binding import ResultDigest, gpu_nonce
from enclave_worker.simulated_intel import SimulatedIntelPki
from enclave_worker.simulated_nvidia import (
    SimulatedGpu,
    SimulatedNvidiaPki,
    SimulatedNvidiaWarning,
)
from enclave_worker.simulated_rim import SimulatedRim
from enclave_worker.tpm import job_events
from ledger.checkpoint import CheckpointBody, parse_tlog_proof
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.keys import load_signing_key
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.note import NoteSigner, open_note
from tests.e2e.conftest import CLI, ROOT
from tests.enclave_worker.snp_support import amd_pki, snp_platform
from verifier import ResultHash

pytestmark = [pytest.mark.db, pytest.mark.e2e]

PASSWORD = "correct horse battery staple, audited"  # noqa: S105 - a test account
CHROMIUM = os.environ.get("ATTEST_LEDGER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("ATTEST_LEDGER_ARTIFACTS", ROOT / "test-artifacts")) / "portal"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package; "
            "elsewhere install it, or name one with ATTEST_LEDGER_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            headless=True,
            args=["--no-sandbox"],  # CI runs as root, where Chromium's sandbox cannot start
        )
        yield chromium
        chromium.close()


@pytest.fixture
def live_env(tmp_path) -> dict[str, str]:
    """The live service also trusts a simulated AMD root, for the SEV-SNP entries (the PKI
    of the test session, whose RSA-4096 keys are made once), and a simulated Intel root made
    now, for the TDX entries (the worker's collateral is issued at the wall clock's time)."""
    amd_pki().save(tmp_path / "simulated-amd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        SimulatedIntelPki.load_or_create(tmp_path / "simulated-intel", at=datetime.now(UTC))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        nvidia = SimulatedNvidiaPki.load_or_create(
            tmp_path / "simulated-nvidia", at=datetime.now(UTC)
        )
    (tmp_path / "nvidia-root.pem").write_bytes(nvidia.root_pem())
    (tmp_path / "nvidia-rim-root.pem").write_bytes(nvidia.rim_root_pem())
    return {
        "ATTEST_LEDGER_SNP_TRUST_ROOT": str(tmp_path / "simulated-amd" / "ark.pem"),
        "ATTEST_LEDGER_INTEL_TRUST_ROOT": str(tmp_path / "simulated-intel" / "root.pem"),
        "ATTEST_LEDGER_NVIDIA_TRUST_ROOT": str(tmp_path / "nvidia-root.pem"),
        "ATTEST_LEDGER_NVIDIA_RIM_ROOT": str(tmp_path / "nvidia-rim-root.pem"),
    }


def covered(base: str) -> int:
    """Wait until a signed checkpoint covers every entry; the tree size."""
    size = httpx.get(f"{base}/api/v1/tree").json()["tree_size"]
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/api/v1/checkpoint").text.split("\n")[1] != str(size):
        assert time.monotonic() < deadline, "no checkpoint covered the entries"
        time.sleep(0.3)
    return int(size)


@pytest.fixture
def portal(live, browser):
    """The live service with an auditor account, a dozen submissions (every fourth bad) covered
    by a signed checkpoint, and a fresh browser context that records console errors."""
    added = subprocess.run(
        [*CLI, "users", "add", "ada", "--role", "auditor", "--password-stdin"],
        cwd=ROOT, env=live["env"], input=PASSWORD + "\n", capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    worker = subprocess.run(
        [
            *CLI, "worker", "run", "--server", live["base"], "--count", "12", "--mix",
            "--image", "e2e-image", "--name", "browser-worker",
            "--simulated-pki", str(live["data"] / "simulated-pki"),
        ],
        cwd=ROOT, env={**live["env"], "ATTEST_LEDGER_WORKER_TOKEN": live["tokens"]["alpha"]},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    size = covered(live["base"])
    context = browser.new_context(base_url=live["base"], accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield {**live, "page": page, "context": context, "problems": problems, "size": size}
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def check_reads(page, text: str) -> None:
    """Wait for the in-browser check to finish with ``text``; say what it showed if not."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.locator("#check-status").filter(has_text=text).wait_for(timeout=20_000)
    except PlaywrightTimeout:
        shot(page, "failed-check")
        pytest.fail(f"the check never read {text!r}: {page.inner_text('#browser-check')}")


def sign_in(page) -> None:
    page.goto("/")
    assert "/portal/login" in page.url  # the portal sends strangers to sign in
    shot(page, "01-sign-in")
    page.fill("#name", "ada")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "Unknown name or wrong password." in page.inner_text("main")
    page.fill("#name", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/portal/$"))


def test_an_auditor_signs_in_filters_opens_an_entry_and_checks_its_proof(portal) -> None:
    page, context = portal["page"], portal["context"]
    sign_in(page)
    portal["problems"].clear()  # the wrong password's 401 above is expected
    cookie = next(c for c in context.cookies() if "al_session" in c["name"])
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"

    # overview: the size, a checkpoint whose signature verifies, the chart
    main = page.inner_text("main")
    assert f"{portal['size']:,}" in main
    assert "signature verifies" in main
    assert page.locator("figure.chart rect.bar").count() >= 1
    shot(page, "02-overview")

    # entries: filter to rejections with the form, then follow the permalink
    page.click("nav >> text=Entries")
    page.select_option("select[name=verdict]", "contraindicated")
    page.click("text=Apply filters")
    assert "verdict=contraindicated" in page.url
    rows = page.locator("table.entries tbody tr")
    assert rows.count() == 3  # every fourth of twelve
    for row in range(rows.count()):
        assert "contraindicated" in rows.nth(row).inner_text()
    shot(page, "03-entries-filtered")
    permalink = page.get_attribute("a.permalink", "href")
    page.goto(permalink)
    assert page.locator("table.entries tbody tr").count() == 3

    # an entry: decoded document, PCRs, certificate chain; the in-browser check passes
    # (the wrong-image one: re-verifying it judges everything again, freshness aside)
    page.locator("table.entries tbody tr", has_text="pcr_mismatch").locator("td.num a").click()
    index = int(re.search(r"/portal/entries/(\d+)$", page.url).group(1))
    check_reads(page, "Verified in your browser")
    assert page.locator("#check-steps li.fail").count() == 0
    assert page.locator("#check-steps li.pass").count() >= 4
    main = page.inner_text("main")
    for expected in ("PCRs", "Certificate chain", "Reasons", "Result hash"):
        assert expected in main
    shot(page, "04-entry")

    # re-verify as of the document's own time: the verdicts agree
    page.click("text=Re-verify now")
    assert "The verdicts agree." in page.inner_text("#reverification")
    shot(page, "05-reverified")
    page.go_back()

    # download the proof and the entry bytes as the browser saves them; check them offline
    # against the key file the ledger signs with (never asked of the server)
    with page.expect_download() as download:
        page.click("ul.downloads a:has-text('inclusion proof') >> nth=0")
    proof = parse_tlog_proof(Path(download.value.path()).read_bytes())
    with page.expect_download() as download:
        page.click("ul.downloads a:has-text('entry bytes')")
    entry = Path(download.value.path()).read_bytes()
    key = load_signing_key(portal["data"] / "ledger.key").verifier()
    body = CheckpointBody.parse(open_note(proof.note, [key]).text)
    assert proof.index == index
    verify_inclusion(leaf_hash(entry), index, body.tree_size, proof.hashes, body.root_hash)
    assert json.loads(entry)["verdict"] == "contraindicated"

    # checkpoints and a consistency proof between two of them
    page.click("nav >> text=Checkpoints")
    shot(page, "06-checkpoints")
    sizes = [int(t.replace(",", "")) for t in page.locator("tbody td.num").all_inner_texts()]
    assert sizes[0] == portal["size"]
    assert len(sizes) >= 2
    page.fill("input[name=first]", str(sizes[-1]))
    page.fill("input[name=second]", str(sizes[0]))
    page.click("text=Show proof")
    assert "the proof verifies" in page.inner_text("main")
    shot(page, "07-consistency")
    with page.expect_download() as download:
        page.click("text=Download the proof")
    saved = json.loads(Path(download.value.path()).read_text())
    older = CheckpointBody.parse(open_note(saved["first_checkpoint"], [key]).text)
    newer = CheckpointBody.parse(open_note(saved["second_checkpoint"], [key]).text)
    hashes = [bytes.fromhex(h) for h in saved["hashes"]]
    verify_consistency(older.tree_size, newer.tree_size, hashes, older.root_hash, newer.root_hash)
    page.goto("/portal/checkpoints")
    page.fill("input[name=first]", "0")
    page.fill("input[name=second]", "x")
    page.click("text=Show proof")
    assert "first must be" in page.inner_text("main") or "second must be" in page.inner_text("main")
    assert "Traceback" not in page.content()
    page.goto("/portal/entries/987654321")
    assert "Not found" in page.inner_text("main")
    shot(page, "10-unknown-entry")
    portal["problems"][:] = [
        p for p in portal["problems"] if "status of 400" not in p and "status of 404" not in p
    ]
    assert portal["problems"] == []  # no CSP violation, no script error on any page


def test_the_in_browser_check_fails_for_a_tampered_proof_or_a_foreign_key(portal) -> None:
    page = portal["page"]
    sign_in(page)
    index = portal["size"] - 1

    def tamper(route) -> None:
        response = route.fetch()
        proof = response.json()
        first = proof["hashes"][0]
        proof["hashes"][0] = ("0" if first[0] != "0" else "1") + first[1:]
        route.fulfill(response=response, json=proof)

    page.route(re.compile(r".*/proof\.json.*"), tamper)
    page.goto(f"/portal/entries/{index}")
    check_reads(page, "FAILED")
    failed = page.inner_text("#check-steps li.fail")
    assert "has exactly that root" in failed
    shot(page, "08-entry-tampered-proof")
    page.unroute(re.compile(r".*/proof\.json.*"))

    # a key pinned in this browser that is not the ledger's: the signature check fails
    page.goto(f"/portal/entries/{index}")
    check_reads(page, "Verified in your browser")
    other = NoteSigner.generate("example.com/e2e").verifier()  # same name, another key
    page.fill("#check-key", "not a key")
    page.click("#check-pin")
    assert "Not pinned" in page.inner_text("#check-status")
    page.fill("#check-key", str(other))
    page.click("#check-pin")
    check_reads(page, "FAILED")
    failed = page.inner_text("#check-steps")
    assert "✗ This page shows the key you pinned" in failed
    assert "✗ The checkpoint's Ed25519 signature verifies" in failed
    shot(page, "09-entry-foreign-key")
    page.click("#check-forget")
    check_reads(page, "Verified in your browser")


def test_an_auditor_opens_an_snp_entry_checks_it_and_reverifies(portal, tmp_path) -> None:
    """A simulated SEV-SNP guest submits four reports (the fourth of another image); the
    auditor finds them by evidence kind, opens the rejected one and the affirmed one, watches
    the in-browser check pass on each, re-verifies, and checks the report and the VCEK it
    downloads against the digests the entry names."""
    env = portal["env"]
    measurement = simulated_snp_measurement("e2e-snp").hex()
    for command in (
        [
            "policy",
            "image",
            "add",
            "e2e-snp",
            "--type",
            "amd-sev-snp",
            "--measurement",
            measurement,
        ],
        ["policy", "allow", "alpha", "e2e-snp"],
    ):
        done = subprocess.run(
            [*CLI, *command], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
    worker = subprocess.run(
        [
            *CLI, "worker", "run", "--server", portal["base"], "--count", "4", "--mix",
            "--tee", "amd-sev-snp", "--image", "e2e-snp", "--name", "snp-worker",
            "--simulated-amd", str(tmp_path / "simulated-amd"),
        ],
        cwd=ROOT, env={**env, "ATTEST_LEDGER_WORKER_TOKEN": portal["tokens"]["alpha"]},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    receipts = [json.loads(line) for line in worker.stdout.splitlines()]
    assert [r["verdict"] for r in receipts] == ["affirming"] * 3 + ["contraindicated"]
    assert receipts[3]["reasons"] == ["measurement_mismatch"]
    covered(portal["base"])

    page = portal["page"]
    sign_in(page)
    portal["problems"].clear()  # the wrong password's 401 is expected
    assert "amd-sev-snp" in page.inner_text("table.kinds")
    shot(page, "11-overview-by-kind")
    page.click("nav >> text=Entries")
    page.select_option("select[name=evidence_kind]", "amd-sev-snp")
    page.click("text=Apply filters")
    assert "evidence_kind=amd-sev-snp" in page.url
    rows = page.locator("table.entries tbody tr")
    assert rows.count() == 4
    for row in range(rows.count()):
        assert "amd-sev-snp" in rows.nth(row).inner_text()
    shot(page, "12-entries-snp")

    # the rejected report: its measurement in red beside the image's, the check passes
    page.locator("table.entries tbody tr", has_text="measurement_mismatch").locator(
        "td.num a"
    ).click()
    check_reads(page, "Verified in your browser")
    assert page.locator("#check-steps li.fail").count() == 0
    main = page.inner_text("main")
    for expected in ("SEV-SNP attestation report", "Guest policy", "report_data", "TCB"):
        assert expected in main
    mismatch = page.locator("#snp-report tr.pcr-mismatch")
    assert mismatch.count() == 1
    assert "e2e-snp expects" in mismatch.inner_text()
    assert measurement in mismatch.inner_text()
    shot(page, "13-snp-entry-mismatch")
    page.click("text=Re-verify now")
    assert "The verdicts agree." in page.inner_text("#reverification")
    assert "measurement_mismatch" in page.inner_text("#reverification")
    shot(page, "14-snp-reverified")

    # an affirmed report: the whole chain valid at verified_at; its downloads are as named
    page.goto(f"/portal/entries/{receipts[0]['index']}")
    check_reads(page, "Verified in your browser")
    chain = page.locator("#snp-report table.chain")
    assert chain.locator("span.badge.ok", has_text="valid").count() == 3
    assert page.locator("#snp-report tr.pcr-mismatch").count() == 0
    shot(page, "15-snp-entry")
    with page.expect_download() as download:
        page.click("ul.downloads a:has-text('raw evidence')")
    report = Path(download.value.path()).read_bytes()
    with page.expect_download() as download:
        page.click("ul.downloads a:has-text('entry bytes')")
    record = json.loads(Path(download.value.path()).read_bytes())
    assert len(report) == 1184
    assert hashlib.sha256(report).hexdigest() == record["evidence_sha256"]
    named = {e["kind"]: e["sha256"] for e in record["endorsements"]}
    with page.expect_download() as download:
        page.click("ul.downloads a:text-is('vcek')")
    assert hashlib.sha256(Path(download.value.path()).read_bytes()).hexdigest() == named["vcek"]
    page.click("text=Re-verify now")
    assert "The verdicts agree." in page.inner_text("#reverification")
    assert portal["problems"] == []  # no CSP violation, no script error on any page


def test_an_auditor_opens_a_tdx_entry_and_the_revocation_impact(portal, tmp_path) -> None:
    """A simulated TD submits four quotes (the fourth of another image); the auditor opens an
    affirmed one (its TD report, TCB status and collateral, a TCB info downloaded as JSON with
    the digest the entry names), re-verifies it, and, once a later TCB info that marks the
    platform OutOfDate is imported, finds it on the revocation impact page."""
    env = portal["env"]
    intel = tmp_path / "simulated-intel"
    for command in (
        ["policy", "image", "add", "e2e-td", "--type", "intel-tdx",
         "--mr-td", simulated_tdx_measurement("e2e-td").hex()],
        ["policy", "allow", "alpha", "e2e-td"],
    ):  # fmt: skip
        done = subprocess.run(
            [*CLI, *command], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
    worker = subprocess.run(
        [
            *CLI, "worker", "run", "--server", portal["base"], "--count", "4", "--mix",
            "--tee", "intel-tdx", "--image", "e2e-td", "--name", "td-worker",
            "--simulated-intel", str(intel),
        ],
        cwd=ROOT, env={**env, "ATTEST_LEDGER_WORKER_TOKEN": portal["tokens"]["alpha"]},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    receipts = [json.loads(line) for line in worker.stdout.splitlines()]
    assert [r["verdict"] for r in receipts] == ["affirming"] * 3 + ["contraindicated"], receipts
    covered(portal["base"])

    page = portal["page"]
    sign_in(page)
    portal["problems"].clear()  # the wrong password's 401 is expected
    page.goto(f"/portal/entries/{receipts[0]['index']}")
    check_reads(page, "Verified in your browser")
    quote = page.locator("#dcap-quote")
    text = quote.inner_text()
    for expected in ("TDX quote", "MRTD", "RTMR3", "MRSEAM", "TD attributes", "UpToDate",
                     "tcbEvaluationDataNumber", "TD_QE", "Collateral that judged it"):  # fmt: skip
        assert expected in text, expected
    assert quote.locator("tr.pcr-match").count() == 1  # MRTD, against e2e-td
    assert quote.locator("table.chain span.badge.ok", has_text="valid").count() == 3
    shot(page, "16-tdx-entry")
    with page.expect_download() as download:
        page.click("ul.downloads a:has-text('entry bytes')")
    record = json.loads(Path(download.value.path()).read_bytes())
    named = {e["kind"]: e["sha256"] for e in record["endorsements"]}
    with page.expect_download() as download:
        page.click("ul.downloads a:text-is('tcb-info')")
    tcb_info = Path(download.value.path()).read_bytes()
    assert hashlib.sha256(tcb_info).hexdigest() == named["tcb-info"]
    assert json.loads(tcb_info)["tcbInfo"]["id"] == "TDX"
    page.click("text=Re-verify now")
    assert "The verdicts agree." in page.inner_text("#reverification")
    shot(page, "17-tdx-reverified")

    # a later TCB info marks the platform OutOfDate: the entries appear on the impact page
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        pki = SimulatedIntelPki.load_or_create(intel, at=datetime.now(UTC))
        platform = SimulatedTdxPlatform(pki, image="e2e-td", at=datetime.now(UTC))
        (later,) = [
            e.data
            for e in platform.collateral(
                at=datetime.now(UTC) + timedelta(minutes=1),
                standing=TcbStanding("OutOfDate", ("INTEL-SA-00837",)),
            )
            if e.kind == "tcb-info"
        ]
    (tmp_path / "later-tcb-info.json").write_bytes(later)
    done = subprocess.run(
        [*CLI, "collateral", "import", str(tmp_path / "later-tcb-info.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page.goto("/portal/")
    page.click("text=Revocation impact")
    assert "/portal/impact" in page.url
    table = page.locator("table.impact")
    for receipt in receipts[:3]:
        row = table.locator("tr", has=page.locator(f"a:text-is('#{receipt['index']}')"))
        assert row.count() == 1, receipt
        assert "OutOfDate" in row.inner_text()
        assert "INTEL-SA-00837" in row.inner_text()
    shot(page, "18-revocation-impact")
    with page.expect_download() as download:
        table.locator("a:text-is('TCB info')").first.click()
    assert Path(download.value.path()).read_bytes() == later
    table.locator(f"a:text-is('#{receipts[0]['index']}')").click()
    assert f"/portal/entries/{receipts[0]['index']}" in page.url
    assert portal["problems"] == []  # no CSP violation, no script error on any page


def test_an_auditor_opens_a_tpm_quote_from_swtpm_and_its_enrolment(portal, tmp_path) -> None:
    """A TPM worker quoting from a real swtpm (issue #13): its AK is written out by `worker
    tpm-ak` and enrolled by `tpm enroll` (EK certificate against swtpm's local CA), a TPM
    image expects its model event; the auditor opens an affirmed quote (AK path, PCRs, the
    event log with the expected event found), watches the in-browser check pass, re-verifies,
    follows the link to the enrolment entry, and finds the quote of another model refused."""
    env = portal["env"]
    model = hashlib.sha256(job_events("e2e-tpm", ResultDigest.of(b""))[0]).hexdigest()
    state, enrol = tmp_path / "tpm", tmp_path / "enrol"
    done = subprocess.run(
        [*CLI, "worker", "tpm-ak", "--tpm-state", str(state), "--out", str(enrol)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout)
    for command in (
        ["tpm", "enroll", "e2e-machine", "--ak", written["ak"], "--ek-cert",
         written["ek_certificate"], *[a for ca in written["ek_ca"] for a in ("--ek-ca", ca)]],
        ["policy", "image", "add", "e2e-tpm", "--type", "tpm2-quote",
         "--event", f"23:sha256={model}:model"],
        ["policy", "allow", "alpha", "e2e-tpm"],
    ):  # fmt: skip
        done = subprocess.run(
            [*CLI, *command], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
    worker = subprocess.run(
        [
            *CLI, "worker", "run", "--server", portal["base"], "--count", "4", "--mix",
            "--tee", "tpm2-quote", "--image", "e2e-tpm", "--name", "tpm-worker",
            "--tpm-state", str(state),
        ],
        cwd=ROOT, env={**env, "ATTEST_LEDGER_WORKER_TOKEN": portal["tokens"]["alpha"]},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    receipts = [json.loads(line) for line in worker.stdout.splitlines()]
    assert [r["verdict"] for r in receipts] == ["affirming"] * 3 + ["contraindicated"], receipts
    assert receipts[3]["reasons"] == ["event_missing"]
    covered(portal["base"])

    page = portal["page"]
    sign_in(page)
    portal["problems"].clear()  # the wrong password's 401 is expected
    page.goto(f"/portal/entries/{receipts[0]['index']}")
    check_reads(page, "Verified in your browser")
    quote = page.locator("#tpm-quote")
    text = quote.inner_text()
    for expected in ("enrolled", "e2e-machine", "extraData", "the result binding", "Event log"):
        assert expected in text, expected
    assert quote.locator("table.tpm-pcrs").count() >= 1
    events = quote.locator("table.events tbody tr")
    assert events.count() >= 3  # the Spec ID header, the model, the result
    assert "attestation-ledger:model:e2e-tpm" in quote.locator("table.events").inner_text()
    expected_events = quote.locator("table.expected-events")
    assert expected_events.locator("span.badge.ok", has_text="found").count() == 1
    shot(page, "19-tpm-entry")
    page.click("text=Re-verify now")
    assert "The verdicts agree." in page.inner_text("#reverification")
    quote.locator("a", has_text="entry #").first.click()  # the enrolment entry
    assert "e2e-machine" in page.inner_text("main")
    assert "tpm_enrolment" in page.inner_text("main") or "enrol" in page.inner_text("main")
    shot(page, "20-tpm-enrolment")
    page.goto(f"/portal/entries/{receipts[3]['index']}")
    check_reads(page, "Verified in your browser")
    missing = page.locator("#tpm-quote table.expected-events span.badge.bad", has_text="missing")
    assert missing.count() == 1
    assert portal["problems"] == []  # no CSP violation, no script error on any page


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _encoded(evidence, extra=()) -> dict:
    return {
        "kind": evidence.kind,
        "data": _b64(evidence.data),
        "endorsements": [
            {"kind": e.kind, "data": _b64(e.data)} for e in (*evidence.endorsements, *extra)
        ],
    }


def test_an_auditor_opens_a_composite_entry_and_its_devices(portal, tmp_path) -> None:
    """A simulated SEV-SNP guest with two simulated GPUs (issue #14) submits two composites
    straight to the API (the worker's side of composites is another change): one affirmed,
    one whose second GPU reports another value in measurement block 7. The auditor opens the
    rejected one: the composite panel names the device and its reason, the EAR lists every
    submod; the device's page marks block 7 (RIM index 6) mismatched against the VBIOS RIM,
    shows its chain and its nonce bound; its report downloads byte for byte; the affirmed
    one's devices are all matched."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        pki = SimulatedNvidiaPki.load_or_create(tmp_path / "simulated-nvidia", at=datetime.now(UTC))
        gpus = [SimulatedGpu(pki), SimulatedGpu(pki)]
        bad = gpus[1].variant(blocks={7: b"\x5a" * 48})
    platform = snp_platform(image="e2e-composite")
    engine = make_engine(portal["env"]["DATABASE_URL"])
    with session_scope(make_session_factory(engine)) as session:
        store = PolicyStore()
        store.add_reference(
            session, "e2e-composite", "amd-sev-snp", {"measurement": platform.measurement.hex()}
        )
        store.add_reference(
            session, "e2e-h100", "nvidia-gpu",
            {"arch": "HOPPER", "driver_versions": [gpus[0].driver],
             "vbios_versions": [gpus[0].vbios]},
        )  # fmt: skip
        store.allow(session, "alpha", "e2e-composite")
        store.allow(session, "alpha", "e2e-h100")
    engine.dispose()
    headers = {"Authorization": f"Bearer {portal['tokens']['alpha']}"}
    result = b"the composite answer"
    indexes = []
    for devices in (gpus, [gpus[0], bad]):
        challenge = httpx.post(f"{portal['base']}/api/v1/challenges", headers=headers)
        nonce = bytes.fromhex(challenge.json()["challenges"][0]["nonce"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedAmdWarning)
            cpu = platform.attest(nonce=nonce, result=ResultDigest.of(result))
        body = {
            "evidence": _encoded(cpu),
            "devices": [
                _encoded(
                    gpu.evidence(gpu_nonce(nonce, ResultDigest.of(result), i)),
                    SimulatedRim(gpu).endorsements(),  # the RIMs of the firmware
                )
                for i, gpu in enumerate(devices)
            ],
            "result_hash": str(ResultHash.of(result)),
            "job": {"id": f"composite-{len(indexes)}"},
        }  # fmt: skip
        reply = httpx.post(f"{portal['base']}/api/v1/attestations", json=body, headers=headers)
        assert reply.status_code == 201, reply.text
        indexes.append(reply.json()["entry"]["index"])
        expected = "affirming" if devices is gpus else "contraindicated"
        assert reply.json()["verdict"]["status"] == expected, reply.json()["verdict"]
    covered(portal["base"])
    good, rejected = indexes

    page = portal["page"]
    sign_in(page)
    portal["problems"].clear()  # the wrong password's 401 is expected
    page.goto(f"/portal/entries/{rejected}")
    check_reads(page, "Verified in your browser")
    panel = page.locator("#composite")
    assert "Composite verdict" in panel.inner_text()
    row = panel.locator("table.devices tr[data-submod=gpu1]")
    assert "contraindicated" in row.inner_text()
    assert "measurement_mismatch" in row.inner_text()
    assert "affirming" in panel.locator("table.devices tr[data-submod=gpu0]").inner_text()
    submods = page.locator("#ear table.ear-submods tbody tr")
    assert submods.all_inner_texts()[0].split()[:2] == ["cpu0", "affirming"]
    assert [t.split()[0] for t in submods.all_inner_texts()] == ["cpu0", "gpu0", "gpu1"]
    shot(page, "21-composite-entry")

    row.locator("a", has_text="gpu1").click()
    assert f"/portal/entries/{rejected}/devices/gpu1" in page.url
    mismatched = page.locator("#device-report tr.m-mismatched")
    assert mismatched.count() == 1
    assert mismatched.get_attribute("data-block") == "7"
    assert mismatched.get_attribute("data-index") == "6"
    assert "vbios RIM" in mismatched.inner_text()
    assert "holds" in page.inner_text("#device-nonce")
    assert page.locator("#device-chain span.badge.ok", has_text="valid").count() == 5
    assert "matches the leaf" in page.inner_text("#device-report")
    shot(page, "22-composite-device-mismatch")
    with page.expect_download() as download:
        page.click("ul.downloads a:has-text('device report')")
    report = Path(download.value.path()).read_bytes()
    with page.expect_download() as download:
        page.click("ul.downloads a:has-text('entry bytes')")
    record = json.loads(Path(download.value.path()).read_bytes())
    assert hashlib.sha256(report).hexdigest() == record["devices"][1]["evidence_sha256"]

    page.goto(f"/portal/entries/{good}/devices/gpu0")
    assert page.locator("#device-report tr.m-mismatched").count() == 0
    assert page.locator("#device-report tr.m-matched").count() >= 30
    shot(page, "23-composite-device")
    page.click("text=the composite verdict of entry")
    assert f"/portal/entries/{good}" in page.url
    assert portal["problems"] == []  # no CSP violation, no script error on any page
