"""The compliance API's TPM filters (issue #13): ``ak_path`` and ``ak`` select tpm2-quote
entries by who vouches for their attestation key and by the key itself, read from the entry
bytes; ``evidence_kind=tpm2-quote`` selects them all. On a real PostgreSQL, with records
appended as the service writes them (tests/web/tpm_records.py)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from tests.web.conftest import build_service
from tests.web.test_compliance import get, indices, refused
from tests.web.tpm_records import (
    ak_sha256,
    append_record,
    claims,
    container,
    enrolment_record,
    quote_record,
    real_log,
)

pytestmark = pytest.mark.db

NITRO = {"module_id": "i-0123456789abcdef0-tpm", "timestamp": "2026-02-03T10:12:02.437Z",
         "sha256": "11" * 32}  # fmt: skip
GCP = {"zone": "us-central1-a", "project_number": "1", "project_id": "lockboot",
       "instance_id": "3414240648225485836", "instance_name": "tpm-vm"}  # fmt: skip


@pytest.fixture(scope="module")
def tpm(databases, tmp_path_factory, sim_pki, sim_nsm):
    """Quotes of every AK path, two by the same enrolled key, an enrolment entry, a quote
    whose claims could not be read, a Nitro entry, and an SEV-SNP-kind record whose claims
    happen to carry an ``ak`` (which the filters must not pick up)."""
    with databases.fresh() as url:
        service = build_service(url, tmp_path_factory.mktemp("compliance-tpm"), sim_pki, sim_nsm)
        named: dict[str, int] = {}
        log, key = real_log(), ak_sha256(3)
        seeds = {
            "nitro-tpm": claims(path="aws-nitrotpm", ak=ak_sha256(1), nitro_document=NITRO),
            "gcp": claims(path="gcp", ak=ak_sha256(2), gcp=GCP, certificate_subject="CN=ak"),
            "enrolled-a": claims(path="enrolled", ak=key, enrolment="rack-7", event_log=log),
            "enrolled-b": claims(path="enrolled", ak=key, enrolment="rack-7"),
            "unendorsed": claims(path="unendorsed", ak=ak_sha256(4)),
        }  # fmt: skip
        named["enrolment"] = append_record(service, enrolment_record("rack-7", ak_sha256(3)))
        for name, made in seeds.items():
            verdict = "contraindicated" if name == "unendorsed" else "affirming"
            evidence = container(name, event_log=log if name == "enrolled-a" else None)
            named[name] = append_record(
                service,
                quote_record(
                    claims_=made, verdict=verdict, job={"id": name, "note": "a\u0000b\ud800"}
                ),
                evidence,
            )
        named["unreadable"] = append_record(
            service,
            quote_record(claims_=None, verdict="contraindicated", error="malformed"),
            b"not a container",
        )
        odd = quote_record(claims_={"ak": {"path": "gcp", "sha256": ak_sha256(2)}})
        named["snp"] = append_record(service, {**odd, "evidence_kind": "amd-sev-snp"}, b"x")
        reply = service.fresh()
        assert reply.status_code == 201, reply.json
        named["nitro"] = reply.json["entry"]["index"]
        service.named = named
        yield service
        service.runtime.close()


def matched(service, **params) -> set[int]:
    body = get(service, "/api/v1/entries", limit=1000, **params).json
    return set(indices(body))


def of(service, *names: str) -> set[int]:
    return {service.named[name] for name in names}


def test_ak_path_selects_exactly_the_quotes_so_vouched_for(tpm) -> None:
    assert matched(tpm, ak_path="aws-nitrotpm") == of(tpm, "nitro-tpm")
    assert matched(tpm, ak_path="gcp") == of(tpm, "gcp")  # not the SEV-SNP record's "gcp"
    assert matched(tpm, ak_path="enrolled") == of(tpm, "enrolled-a", "enrolled-b")
    assert matched(tpm, ak_path="unendorsed") == of(tpm, "unendorsed")


def test_ak_selects_the_quotes_of_one_key_in_either_case(tpm) -> None:
    assert matched(tpm, ak=ak_sha256(3)) == of(tpm, "enrolled-a", "enrolled-b")
    assert matched(tpm, ak=ak_sha256(3).upper()) == of(tpm, "enrolled-a", "enrolled-b")
    assert matched(tpm, ak=ak_sha256(2)) == of(tpm, "gcp")
    assert matched(tpm, ak=ak_sha256(99)) == set()


def test_tpm_filters_combine_with_the_others(tpm) -> None:
    assert matched(tpm, ak_path="enrolled", ak=ak_sha256(3)) == of(tpm, "enrolled-a", "enrolled-b")
    assert matched(tpm, ak_path="gcp", ak=ak_sha256(3)) == set()
    assert matched(tpm, ak=ak_sha256(4), verdict="affirming") == set()
    assert matched(tpm, ak=ak_sha256(4), verdict="contraindicated") == of(tpm, "unendorsed")
    assert matched(tpm, ak_path="gcp", evidence_kind="amd-sev-snp") == set()
    every = {"nitro-tpm", "gcp", "enrolled-a", "enrolled-b", "unendorsed", "unreadable"}
    assert matched(tpm, evidence_kind="tpm2-quote") == of(tpm, *every)


def test_a_filtered_search_pages_and_counts_exactly(tpm) -> None:
    first = get(tpm, "/api/v1/entries", ak_path="enrolled", limit=1, count="exact").json
    assert first["count"] == 2
    assert indices(first) == [tpm.named["enrolled-b"]]
    assert "ak_path=enrolled" in first["links"]["next"]
    second = get(tpm, "/api/v1/entries", ak_path="enrolled", limit=1, after=first["next"]).json
    assert indices(second) == [tpm.named["enrolled-a"]]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"ak_path": "nitro"}, "ak_path"),
        ({"ak_path": "Enrolled"}, "ak_path"),
        ({"ak_path": " gcp"}, "ak_path"),  # the API takes values exactly as given
        ({"ak": "ab" * 31}, "ak"),
        ({"ak": "zz" * 32}, "ak"),
        ({"ak": "sha256:" + "ab" * 32}, "ak"),
        ({"ak": "ab" * 32 + "\x00"}, "ak"),
    ],
)
def test_bad_tpm_filters_are_refused_and_named(tpm, params, parameter) -> None:
    refused(get(tpm, "/api/v1/entries", **params), 400, "invalid_parameter", parameter)


def test_an_export_takes_the_tpm_filters(tpm) -> None:
    response = get(tpm, "/api/v1/export", ak=ak_sha256(3))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    with tarfile.open(fileobj=io.BytesIO(response.data)) as bundle:
        names = bundle.getnames()
        manifest = json.load(
            bundle.extractfile(next(n for n in names if n.endswith("manifest.json")))
        )
    assert manifest["selection"] == {"ak": ak_sha256(3)}
    assert manifest["entries"]["count"] == 2
