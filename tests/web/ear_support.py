"""Checks shared by the EAR tests of every scheme: each verdict the service recorded is a
signed EAR that the published JWKS verifies and that says what its entry says."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import text

from attest_ledger.ear import CPU, ear_disagreements, verify_ear


def every_verdict_is_a_signed_ear(service) -> Counter[str]:
    """Assert it of every attestation entry; return how many of each evidence kind."""
    keys = service.http.get("/api/v1/ear-keys").json["keys"]
    kinds: Counter[str] = Counter()
    with service.runtime.sessions() as session:
        rows = session.execute(text("SELECT data FROM ledger_entries ORDER BY idx")).all()
    for (data,) in rows:
        record = json.loads(bytes(data))
        if record.get("kind") != "attestation":
            assert "ear" not in record
            continue
        ear = verify_ear(record["ear"], keys)
        assert ear.kid == service.runtime.ear_signer.kid
        assert ear_disagreements(ear.claims, record) == []
        cpu = ear.claims["submods"][CPU]
        assert cpu["attestation-ledger.evidence-kind"] == record["evidence_kind"]
        assert cpu["attestation-ledger.reasons"] == [r["code"] for r in record["reasons"]]
        assert ear.claims["eat_profile"] == "tag:github.com,2023:veraison/ear"
        assert "index" not in json.dumps(ear.claims)
        kinds[f"{record['evidence_kind']} {record['verdict']}"] += 1
    return kinds
