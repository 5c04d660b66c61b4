"""Signed notes and checkpoints: byte-exact agreement with Go's note package and C2SP."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ledger.checkpoint import CheckpointBody
from ledger.errors import InvalidNote
from ledger.note import NoteSigner, NoteVerifier, key_id, open_note, sign_note

VECTORS = json.loads(
    (
        Path(__file__).resolve().parent.parent
        / "fixtures"
        / "vectors"
        / "signed_note_checkpoint_vectors.json"
    ).read_text()
)
SIGNABLE = [v for v in VECTORS if "skey_TEST_ONLY" in v]
CHECKPOINTS = [v for v in VECTORS if v["name"].startswith("checkpoint-")]
TEST_SKEY = CHECKPOINTS[0]["skey_TEST_ONLY"]


@pytest.mark.parametrize("vector", SIGNABLE, ids=lambda v: v["name"])
def test_signing_is_byte_exact(vector) -> None:
    signer = NoteSigner.parse(vector["skey_TEST_ONLY"])
    assert sign_note(vector["note_text"], [signer]) == vector["signed_note"]
    assert str(signer.verifier()) == vector["vkey"]
    assert signer.to_skey() == vector["skey_TEST_ONLY"]


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v["name"] != "cosignature-v1-ed25519-over-size-1100"],
    ids=lambda v: v["name"],
)
def test_every_vector_opens(vector) -> None:
    verifier = NoteVerifier.parse(vector["vkey"])
    opened = open_note(vector["signed_note"], [verifier])
    assert opened.text == vector["note_text"]
    assert opened.verified_by == (verifier.name,)


def test_key_id_rule() -> None:
    vector = CHECKPOINTS[0]
    public = bytes.fromhex(vector["ed25519_public_key_hex"])
    assert key_id("example.com/attestation-ledger-test", public).hex() == vector["key_id_hex"]


def test_signatures_by_unknown_keys_are_ignored() -> None:
    """The size-1100 checkpoint with a witness cosignature (type 0x04) still opens with the
    log's key alone; the witness line is ignored."""
    cosigned = next(v for v in VECTORS if v["name"] == "cosignature-v1-ed25519-over-size-1100")
    log_key = NoteVerifier.parse(CHECKPOINTS[0]["vkey"])
    note = cosigned["signed_note"]
    assert note.count("\u2014") == 2
    opened = open_note(note, [log_key])
    assert opened.verified_by == (log_key.name,)


def test_a_known_key_with_a_bad_signature_rejects_the_note() -> None:
    signer = NoteSigner.parse(TEST_SKEY)
    note = sign_note(
        "example.com/attestation-ledger-test\n5\n" + base64.b64encode(bytes(32)).decode() + "\n",
        [signer],
    )
    tampered = note.replace("\n5\n", "\n6\n")
    with pytest.raises(InvalidNote, match="does not verify"):
        open_note(tampered, [signer.verifier()])


def test_a_note_signed_only_by_another_key_is_rejected() -> None:
    signer = NoteSigner.parse(TEST_SKEY)
    other = NoteSigner.generate("example.com/attestation-ledger-test")
    note = sign_note("hello\n", [other])
    with pytest.raises(InvalidNote, match="no signature by a known key"):
        open_note(note, [signer.verifier()])


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("hello\n", "no blank line"),
        ("hello\n\n", "1..100 signature lines"),
        ("hello\n\n- name AAAA\n", "malformed signature line"),
        ("hello\n\n\u2014 name !!!\n", "not base64"),
        ("hello\n\n\u2014 name AAAA\n", "too short"),
        ("hel\x01lo\n\n\u2014 name AAAAAAAA\n", "control characters"),
        (b"\xff\xfe\n\n", "UTF-8"),
    ],
)
def test_malformed_notes(note, message) -> None:
    with pytest.raises(InvalidNote, match=message):
        open_note(note, [NoteSigner.parse(TEST_SKEY).verifier()])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "end with a newline"),
        ("two\n\nparagraphs\n", "blank line"),
    ],
)
def test_unsignable_texts(text, message) -> None:
    with pytest.raises(InvalidNote, match=message):
        sign_note(text, [NoteSigner.parse(TEST_SKEY)])


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("nokey", "expected <name>"),
        ("name+zz+AAAA", "not valid hex"),
        ("name+00000000+" + base64.b64encode(b"\x02" + bytes(32)).decode(), "only Ed25519"),
        ("name+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(), "does not match"),
        ("bad name+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(), "without spaces"),
    ],
)
def test_bad_verifier_keys(vkey, message) -> None:
    with pytest.raises(InvalidNote, match=message):
        NoteVerifier.parse(vkey)


def test_bad_signing_keys() -> None:
    with pytest.raises(InvalidNote, match="PRIVATE"):
        NoteSigner.parse("name+00+AA")
    with pytest.raises(InvalidNote, match="does not match"):
        NoteSigner.parse(TEST_SKEY.replace("+b9bbeace+", "+00000000+"))


class TestCheckpointBody:
    @pytest.mark.parametrize("vector", CHECKPOINTS, ids=lambda v: v["name"])
    def test_vectors_parse_and_round_trip(self, vector) -> None:
        body = CheckpointBody.parse(vector["note_text"])
        assert body.origin == "example.com/attestation-ledger-test"
        assert body.chain_head is None
        assert body.to_text() == vector["note_text"]

    def test_chain_extension(self) -> None:
        body = CheckpointBody("example.com/log", 7, b"\x01" * 32, chain_head=b"\x02" * 32)
        text = body.to_text()
        assert text.splitlines()[3] == "chain-head " + base64.b64encode(b"\x02" * 32).decode()
        assert CheckpointBody.parse(text) == body
        assert CheckpointBody.parse(text + "other-extension whatever\n") == body

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("origin\n1\n", "expected origin, tree size and root"),
            ("origin\n01\n" + "A" * 43 + "=\n", "canonical decimal"),
            ("origin\n-1\n" + "A" * 43 + "=\n", "canonical decimal"),
            ("origin\n1\nAAAA\n", "must be 32 bytes"),
            ("origin\n1\n!!!\n", "not base64"),
            ("bad origin\n1\n" + "A" * 43 + "=\n", "origin line"),
            ("origin\n1\n" + "A" * 43 + "=", "end with a newline"),
            ("origin\n1\n" + "A" * 43 + "=\nchain-head AAAA\n", "chain head must be 32 bytes"),
        ],
    )
    def test_malformed_bodies(self, text, message) -> None:
        with pytest.raises(InvalidNote, match=message):
            CheckpointBody.parse(text)


def _proof_text(extra: str | None = None) -> str:
    signer = NoteSigner.generate("example.com/log")
    body = CheckpointBody("example.com/log", 3, bytes(32)).to_text()
    lines = ["c2sp.org/tlog-proof@v1", *([f"extra {extra}"] if extra else []), "index 2"]
    lines += [base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2)]
    return "\n".join(lines) + "\n\n" + sign_note(body, [signer])


def test_tlog_proof_round_trip() -> None:
    from ledger.checkpoint import parse_tlog_proof, tlog_proof

    proof = parse_tlog_proof(_proof_text())
    assert proof.index == 2
    assert proof.hashes == [bytes([1]) * 32, bytes([2]) * 32]
    assert proof.extra is None
    assert tlog_proof(proof.index, proof.hashes, proof.note) == _proof_text().split("\n\n")[0] + (
        "\n\n" + proof.note
    )
    assert parse_tlog_proof(_proof_text("aGk=").encode()).extra == b"hi"
    assert parse_tlog_proof(tlog_proof(0, [], proof.note)).hashes == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"), "first line"),
        (lambda t: t.replace("index 2", "index 02"), "not a decimal"),
        (lambda t: t.replace("index 2", "index -1"), "not a decimal"),
        (lambda t: t.replace("index 2\n", ""), "index line is missing"),
        (lambda t: t.replace("\n\n", "\n", 1), "proof hash is not base64"),  # runs into the note
        (lambda t: t.split("\n\n")[0] + "\n\n", "no blank line"),
        (lambda t: t.replace("AQEB", "!QEB", 1), "proof hash is not base64"),
        (lambda t: t.replace("index 2\n", "index 2\nAAAA\n"), "proof hash must be 32 bytes"),
        (lambda t: t.replace("index 2", "extra %%%\nindex 2"), "extra data is not base64"),
        (lambda t: t.encode("utf-16"), "not UTF-8"),
    ],
)
def test_malformed_tlog_proofs(mutate, message) -> None:
    from ledger.checkpoint import parse_tlog_proof

    with pytest.raises(InvalidNote, match=message):
        parse_tlog_proof(mutate(_proof_text()))
