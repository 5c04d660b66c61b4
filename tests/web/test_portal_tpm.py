"""The auditor portal's TPM 2.0 pages (issue #13), through Flask's test client on a real
database: a tpm2-quote entry shows who vouches for its AK (each path), the quote's fields,
its PCRs bank by bank against the reference values of the policy revision it names, and its
event log event by event with the images' expected events marked; an AK enrolment entry
shows as one, on its page and in the list. Records are appended as the service writes them
(tests/web/tpm_records.py), with a real firmware event log and its published PCRs."""

from __future__ import annotations

import hashlib
import re

import pytest
from markupsafe import escape

from ledger.db import session_scope
from tests.web.conftest import csrf_of, page, publish
from tests.web.tpm_records import (
    ak_sha256,
    append_policy,
    append_record,
    claims,
    container,
    enrolment_record,
    quote_record,
    real_log,
    real_pcrs,
)
from verifier.tpm.eventlog import parse_event_log

pytestmark = pytest.mark.db

NITRO = {"module_id": "i-0123456789abcdef0-tpm", "timestamp": "2026-02-03T10:12:02.437Z",
         "sha256": "11" * 32}  # fmt: skip
GCP = {"zone": "us-central1-a", "project_number": "31", "project_id": "lockboot",
       "instance_id": "3414240648225485836", "instance_name": "tpm-vm-7"}  # fmt: skip
HOSTILE = "rack\u202e7<script>alert(1)</script>"


def row_of(body: str, table_class: str, first_cells: str) -> str:
    """The row of the table of class ``table_class`` whose cells start as given."""
    table = re.search(rf'<table class="[^"]*{table_class}[^"]*".*?</table>', body, re.S)
    assert table, f"no table {table_class}"
    for row in re.findall(r"<tr[^>]*>.*?</tr>", table.group(0), re.S):
        cells = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        if cells.startswith(first_cells):
            return row
    raise AssertionError(f"no row {first_cells!r} in {table_class}")


def bank_table(body: str, bank: str) -> str:
    found = re.search(rf'<table class="pcrs tpm-pcrs" data-bank="{bank}">.*?</table>', body, re.S)
    assert found, f"no {bank} table"
    return found.group(0)


def pcr_row(body: str, bank: str, index: int) -> str:
    table = bank_table(body, bank)
    found = re.search(
        rf'<tr class="(pcr-[a-z]+)">\s*<td class="num">{index}</td>.*?</tr>', table, re.S
    )
    assert found, f"no {bank} PCR {index}"
    return found.group(0)


@pytest.fixture
def seeded(portal):
    """An enrolment of key 3, a policy revision with one TPM image for worker-1 (PCR 0 as
    quoted, PCR 7 another value, one event of the log and one it lacks), and a quote of key 3
    judged under it, with the real event log."""
    log = real_log()
    events = parse_event_log(log).events
    kernel = next(
        e for e in events if e.pcr == 4 and e.type_name == "EV_EFI_BOOT_SERVICES_APPLICATION"
    )
    portal.kernel = kernel
    portal.enrolment = append_record(portal, enrolment_record(HOSTILE, ak_sha256(3)))
    pcrs = real_pcrs()["sha256"]
    portal.revision = append_policy(
        portal,
        {
            "tpm-image": {
                "pcrs": {"sha256": {"0": pcrs["0"], "7": "00" * 32}},
                "events": [
                    {
                        "pcr": 4,
                        "digest": {"sha256": kernel.digests["sha256"].hex()},
                        "label": "shim",
                    },
                    {"pcr": 9, "digest": {"sha256": "ee" * 32}, "label": "kernel"},
                ],
            }
        },
        "worker-1",
    )
    made = claims(path="enrolled", ak=ak_sha256(3), enrolment=HOSTILE, event_log=log)
    portal.quote = append_record(
        portal,
        quote_record(claims_=made, image=None, policy_revision=portal.revision,
                     verdict="contraindicated", reasons=[{"code": "pcr_mismatch",
                     "message": "no image matched: sha256 PCR 7"}]),
        container("enrolled", event_log=log),
    )  # fmt: skip
    return portal


def test_a_quote_shows_its_ak_path_fields_and_pcrs_against_the_reference(seeded) -> None:
    body = page(seeded, f"/portal/entries/{seeded.quote}")
    assert "TPM 2.0 quote" in body
    assert "unsupported" not in body
    assert '<span class="badge ok">enrolled</span>' in body
    assert ak_sha256(3) in body
    assert f'href="/portal/entries/{seeded.enrolment}">entry #{seeded.enrolment}</a>' in body
    assert "ecdsa-sha256" in body
    assert "2019102300163636" in body
    assert "123456789 ms" in body
    assert "64 bytes: the challenge nonce, then the result binding" in body
    pcrs = real_pcrs()
    assert 'class="pcr-match"' in pcr_row(body, "sha256", 0)
    assert "tpm-image" in pcr_row(body, "sha256", 0)
    mismatch = pcr_row(body, "sha256", 7)
    assert 'class="pcr-mismatch"' in mismatch
    assert pcrs["sha256"]["7"] in mismatch
    assert "00" * 32 in mismatch
    assert "not in reference" in pcr_row(body, "sha256", 14)
    assert "not in reference" in pcr_row(body, "sha1", 0)  # the image lists no SHA-1 PCR
    assert pcrs["sha1"]["0"] in pcr_row(body, "sha1", 0)
    assert "revision #" + str(seeded.revision) in body
    assert re.search(r'<span class="badge ok">holds</span> the quote\'s extraData', body)


def test_the_event_log_lists_every_event_with_each_banks_digest(seeded) -> None:
    body = page(seeded, f"/portal/entries/{seeded.quote}")
    events = parse_event_log(real_log()).events
    table = re.search(r'<table class="compact events".*?</table>', body, re.S).group(0)
    assert len(re.findall(r"<tr", table)) == len(events) + 1  # and the head
    first = events[0]
    row = row_of(body, "events", f"0 {first.pcr} {first.type_name}")
    for digest in first.digests.values():
        assert digest.hex() in row
    number = events.index(seeded.kernel)
    marked = row_of(body, "events", f"{number} 4 EV_EFI_BOOT_SERVICES_APPLICATION")
    assert '<span class="badge ok">expected</span> tpm-image: shim' in marked
    assert "sha384" in marked  # the log's three banks
    described = next(e for e in events if e.description())
    assert str(escape(described.description())) in body
    assert 'class="badge ok">found</span>' in row_of(body, "expected-events", "tpm-image 4")
    assert 'class="badge bad">missing</span>' in row_of(body, "expected-events", "tpm-image 9")
    assert f"{len(events)} events" in body


@pytest.mark.parametrize("path", ["aws-nitrotpm", "gcp", "unendorsed"])
def test_each_ak_path_without_an_event_log(portal, path) -> None:
    made = claims(
        path=path,
        ak=ak_sha256(5),
        nitro_document=NITRO if path == "aws-nitrotpm" else None,
        gcp=GCP if path == "gcp" else None,
        certificate_subject="CN=" + HOSTILE if path == "gcp" else None,
        result=None,
    )
    index = append_record(portal, quote_record(claims_=made), container(path))
    body = page(portal, f"/portal/entries/{index}")
    assert "No event log came with the quote" in body
    assert '<table class="compact events"' not in body
    assert "32 bytes: the challenge nonce alone" in body
    assert "the quote's extraData is the nonce alone" in body
    assert "not in reference" in pcr_row(body, "sha256", 0)  # no policy revision named
    if path == "aws-nitrotpm":
        assert '<span class="badge ok">aws-nitrotpm</span>' in body
        assert "i-0123456789abcdef0-tpm" in body
        assert "2026-02-03T10:12:02.437Z" in body
    elif path == "gcp":
        assert '<span class="badge ok">gcp</span>' in body
        assert "tpm-vm-7" in body
        assert "3414240648225485836" in body
        assert "lockboot" in body
        assert "CN=rack\u27e8U+202E\u27e97&lt;script&gt;" in body
    else:
        assert '<span class="badge bad">unendorsed</span>' in body
    assert "<script>alert" not in body
    assert "\u202e" not in body


def test_hostile_text_is_neutralised_on_the_quote_and_enrolment_pages(seeded) -> None:
    for index in (seeded.quote, seeded.enrolment):
        body = page(seeded, f"/portal/entries/{index}")
        assert "rack\u27e8U+202E\u27e97&lt;script&gt;alert(1)&lt;/script&gt;" in body
        assert "\u202e" not in body
        assert "<script>alert" not in body


def test_an_unreadable_quote_says_so(portal) -> None:
    index = append_record(
        portal, quote_record(claims_=None, verdict="contraindicated", error="malformed"), b"\x00"
    )
    body = page(portal, f"/portal/entries/{index}")
    assert "The quote could not be read: <code>malformed</code>" in body


def test_a_revoked_enrolment_before_the_quote_is_shown(portal) -> None:
    key = ak_sha256(6)
    enrolled = append_record(portal, enrolment_record("rack-9", key))
    revoked = append_record(portal, enrolment_record("rack-9", key, action="revoked"))
    made = claims(path="enrolled", ak=key, enrolment="rack-9")
    index = append_record(portal, quote_record(claims_=made, verdict="contraindicated"),
                          container("revoked"))  # fmt: skip
    body = page(portal, f"/portal/entries/{index}")
    assert f"entry #{enrolled}</a>" in body
    assert f'revoked by <a href="/portal/entries/{revoked}">entry #{revoked}</a>' in body
    page_of_revocation = page(portal, f"/portal/entries/{revoked}")
    assert '<span class="badge bad">revoked</span>' in page_of_revocation


def test_an_enrolment_entry_shows_as_such_on_its_page_and_in_the_list(seeded) -> None:
    body = page(seeded, f"/portal/entries/{seeded.enrolment}")
    assert "TPM attestation key enrolment" in body
    assert '<span class="badge ok">enrolled</span>' in body
    assert ak_sha256(3) in body
    record = enrolment_record(HOSTILE, ak_sha256(3))
    assert record["ek_certificate_sha256"] in body
    assert "EK chain: verified" in body
    assert f'href="/portal/entries?ak={ak_sha256(3)}"' in body
    listing = page(seeded, "/portal/entries")
    row = re.search(rf'<a href="/portal/entries/{seeded.enrolment}">.*?</tr>', listing, re.S).group(
        0
    )
    assert "tpm_enrolment" in row
    assert "enrolled" in row
    assert ak_sha256(3)[:16] in row
    quote = re.search(rf'<a href="/portal/entries/{seeded.quote}">.*?</tr>', listing, re.S).group(0)
    assert "AK enrolled" in quote
    assert ak_sha256(3)[:16] in quote


def test_the_list_filters_by_ak_path_and_ak(seeded) -> None:
    def listed(query: str) -> set[int]:
        body = page(seeded, f"/portal/entries?{query}")
        return {
            int(i) for i in re.findall(r'<td class="num"><a href="/portal/entries/(\d+)">', body)
        }

    assert listed("ak_path=enrolled") == {seeded.quote}
    assert listed(f"ak={ak_sha256(3)}") == {seeded.quote}
    assert listed("ak_path=gcp") == set()
    refused = seeded.browser.get("/portal/entries?ak=nothex")
    assert refused.status_code == 400
    assert "The filter <strong>ak</strong> cannot be used" in refused.get_data(as_text=True)


# --- a real quote through the real intake ----------------------------------------------------

from tests.web.test_tpm_submissions import (  # noqa: E402 - the swtpm fixtures and helpers
    IMAGE,
    MODEL,
    attester,
    enrol,
    model_event_digest,
    quote,
    submit,
    swtpm,
)

__all__ = ["attester", "swtpm"]  # fixtures, used by name


@pytest.fixture
def real(portal, attester):
    reference = {"events": [{"pcr": 23, "digest": {"sha256": model_event_digest(MODEL)},
                             "label": "model"}]}  # fmt: skip
    with session_scope(portal.runtime.sessions) as session:
        portal.runtime.policies.add_reference(session, IMAGE, "tpm2-quote", reference)
        portal.runtime.policies.allow(session, "worker-1", IMAGE)
    portal.attester = attester
    return portal


def test_a_swtpm_quote_judged_by_the_service_shows_on_its_page(real) -> None:
    """A software TPM's quote, its AK enrolled by the service's own enrolment, judged by the
    real intake: the page shows the enrolment, the quoted PCR 23 and the logged model event
    as the image's expected event; re-verify agrees."""
    enrolment = enrol(real, real.attester, name="rack1-node3")
    reply = submit(real, quote(real))
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    index = reply.json["entry"]["index"]
    publish(real)
    body = page(real, f"/portal/entries/{index}")
    assert '<span class="badge ok">enrolled</span>' in body
    assert f'enrolled by <a href="/portal/entries/{enrolment}">entry #{enrolment}</a>' in body
    assert "rack1-node3" in body
    assert "23" in pcr_row(body, "sha256", 23)
    marked = row_of(body, "expected-events", f"{IMAGE} 23")
    assert 'class="badge ok">found</span>' in marked
    assert f'<span class="badge ok">expected</span> {IMAGE}: model' in body
    assert re.search(r'<span class="badge ok">holds</span> the quote\'s extraData', body)
    enrolment_page = page(real, f"/portal/entries/{enrolment}")
    assert "TPM attestation key enrolment" in enrolment_page
    again = real.browser.post(
        f"/portal/entries/{index}/reverify", data={"csrf": csrf_of(body)}
    ).get_data(as_text=True)
    assert "The verdicts agree." in again


def test_an_enrolment_page_offers_the_ek_certificate_it_names(seeded) -> None:
    """The EK certificate an enrolment entry names is downloadable from its page, by the
    digest the entry commits to (before, only attestation entries listed their endorsements)."""
    record = enrolment_record(HOSTILE, ak_sha256(3))
    digest = record["ek_certificate_sha256"]
    body = page(seeded, f"/portal/entries/{seeded.enrolment}")
    link = f"/portal/entries/{seeded.enrolment}/endorsements/{digest}.der"
    assert f'href="{link}"' in body
    reply = seeded.browser.get(link)
    assert reply.status_code == 200
    assert hashlib.sha256(reply.data).hexdigest() == digest
