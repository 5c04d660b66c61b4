"""``attest-ledger worker run --tee tpm2-quote``: the TPM options, the refusals, and what a
run sends, against a stand-in for the service (test_worker_cli's), with a real swtpm: the one
the worker starts itself, or one given by ``--tpm-tcti``."""

from __future__ import annotations

import base64
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attest_ledger.cli import main
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.settings import Settings
from enclave_worker.binding import ResultDigest
from enclave_worker.swtpm import Swtpm
from tests.enclave_worker.test_simulated_nitrotpm import read_document, verify_cose
from tests.enclave_worker.test_tpm import binding, read_attest, replay_log, verify_quote
from tests.enclave_worker.test_worker_cli import Service


@pytest.fixture
def service() -> Iterator[Service]:
    running = Service()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()
    thread.join()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=None, ledger_key_path=tmp_path / "ledger.key")


def run(capsys, settings, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def containers(service: Service) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each submission's body and its decoded tpm2-quote container."""
    found = []
    for body in service.bodies:
        assert body["evidence"]["kind"] == "tpm2-quote"
        assert body["evidence"]["endorsements"] == []
        found.append((body, cbor2.loads(base64.b64decode(body["evidence"]["data"]))))
    return found


def ak_pem(container: dict[str, Any]) -> bytes:
    encoded = base64.encodebytes(container["ak"]).decode().replace("\n", "")
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return "\n".join(
        ["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----", ""]
    ).encode()


def processes_under(directory: Path) -> list[str]:
    """Command lines of live processes that name ``directory`` (a swtpm left running)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) in text and "swtpm" in text:
            found.append(text)
    return found


def test_a_tpm_worker_starts_its_swtpm_and_submits_quotes(capsys, settings, service) -> None:
    code, out, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "tpm2-quote", "--count", "8", "--mix", "--image", "tpm-image", "--name", "w",
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert "SWTPM, a software TPM (not hardware)" in err
    assert "8 affirming" in err
    lines = out.splitlines()
    assert len(lines) == 8
    # The mix skips what a TPM quote cannot have (stale, debug).
    assert [b'"bad": "wrong-image"' in line.encode() for line in lines] == [False] * 3 + [True] + [
        False
    ] * 4
    assert '"bad": "wrong-nonce"' in lines[7]
    sent = containers(service)
    keys = {container["ak"] for _, container in sent}
    assert len(keys) == 1  # one AK for every job, the other image's too
    for n, (body, container) in enumerate(sent):
        result = ResultDigest("sha256", bytes.fromhex(body["result_hash"].removeprefix("sha256:")))
        if n == 7:  # wrong-nonce: a nonce the service never issued
            attest = read_attest(container["attest"])
            assert attest.extra_data[:32] not in service.nonces
            continue
        verify_quote(container, ak_pem(container), binding(service.nonces[n], result))
        events, replayed = replay_log(container["event_log"])
        model = b"tpm-image-unapproved" if n == 3 else b"tpm-image"
        assert events[0][3] == b"attestation-ledger:model:" + model
        assert events[-1][3] == b"attestation-ledger:result:" + body["result_hash"].encode()
        assert replayed["sha256"][23] == container["pcrs"]["sha256"][23]
    assert (settings.data_dir / "tpm" / "swtpm" / "tpm2-00.permall").exists()
    assert (settings.data_dir / "tpm" / "attester" / "event_log.bin").exists()
    assert processes_under(settings.data_dir) == []  # the swtpm was stopped


def test_a_second_run_keeps_the_ak(capsys, settings, service) -> None:
    argv = ("worker", "run", "--server", service.url, "--token", "t", "--tee", "tpm2-quote",
            "--count", "1")  # fmt: skip
    assert run(capsys, settings, *argv)[0] == EXIT_OK
    assert run(capsys, settings, *argv)[0] == EXIT_OK
    first, second = (container["ak"] for _, container in containers(service))
    assert first == second


def test_a_given_tpm_with_rsa_sha384_and_pcr_16(capsys, settings, service, tmp_path) -> None:
    with Swtpm() as tpm:
        code, _, err = run(
            capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
            "--tee", "tpm2-quote", "--count", "2", "--tpm-tcti", tpm.tcti,
            "--tpm-state", str(tmp_path / "state"), "--tpm-ak-type", "rsa", "--tpm-sha384",
            "--tpm-pcr", "16",
        )  # fmt: skip
        assert code == EXIT_OK, err
        assert "SWTPM" not in err  # it started none
        assert tpm.running
    for n, (body, container) in enumerate(containers(service)):
        result = ResultDigest("sha256", bytes.fromhex(body["result_hash"].removeprefix("sha256:")))
        attest = verify_quote(container, ak_pem(container), binding(service.nonces[n], result))
        assert attest.selection == [("sha256", [0, 1, 2, 3, 4, 5, 6, 7, 16]),
                                    ("sha384", [0, 1, 2, 3, 4, 5, 6, 7, 16])]  # fmt: skip
        assert struct.unpack_from(">H", container["signature"]) == (0x0014,)  # RSASSA
        _, replayed = replay_log(container["event_log"])
        assert replayed["sha384"] == {16: container["pcrs"]["sha384"][16]}
        assert set(replayed) == {"sha1", "sha256", "sha384", "sha512"}  # all swtpm's banks
    assert (tmp_path / "state" / "attester").is_dir()
    assert not (tmp_path / "state" / "swtpm").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tee", "tpm2-quote", "--bad", "stale"], "no timestamp"),
        (["--tee", "tpm2-quote", "--bad", "debug"], "a TPM has no debug mode"),
        (["--tee", "tpm2-quote", "--tpm-pcr", "24"], "0..23, not 24"),
        (["--tee", "tpm2-quote", "--device"], "--tpm-tcti device:/dev/tpmrm0"),
        (["--tee", "tpm2-quote", "--simulated-amd", "x"], "takes no simulated root"),
        (["--tee", "amd-sev-snp", "--tpm-sha384"], "are for --tee tpm2-quote"),
        (["--tpm-tcti", "device:/dev/tpmrm0"], "are for --tee tpm2-quote"),
        (["--tpm-ak-type", "rsa"], "are for --tee tpm2-quote"),
        (["--tpm-nitro"], "are for --tee tpm2-quote"),
        (
            ["--tee", "tpm2-quote", "--tpm-nitro", "--tpm-ak-type", "rsa"],
            "an RSA AK cannot be bound",
        ),
        (
            ["--tee", "tpm2-quote", "--tpm-nitro", "--tpm-tcti", "device:/dev/tpmrm0"],
            "a real one comes from /dev/nsm",
        ),
        (["--tee", "tpm2-quote", "--simulated-pki", "x"], "but with --tpm-nitro the Nitro one"),
        (["--tee", "tpm2-quote", "--tpm-nitro", "--simulated-amd", "x"], "takes no simulated root"),
    ],
)
def test_tpm_options_that_do_not_fit_are_refused(capsys, settings, argv, message) -> None:
    code, out, err = run(capsys, settings, "worker", "run", "--token", "t", *argv)
    assert code == EXIT_USAGE
    assert message in err
    assert out == ""
    assert not (settings.data_dir / "tpm").exists()  # refused before any swtpm started
    assert not (settings.data_dir / "simulated-pki").exists()


def test_an_unreachable_tpm_is_a_clear_usage_error(capsys, settings, service) -> None:
    with Swtpm() as tpm:
        tcti = tpm.tcti
    code, out, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "tpm2-quote", "--tpm-tcti", tcti,
    )  # fmt: skip
    assert code == EXIT_USAGE
    assert "tpm2_getcap pcrs failed" in err
    assert tcti in err
    assert out == ""
    assert service.bodies == []


def test_a_simulated_nitrotpm_worker_sends_documents_that_vouch_for_its_ak(
    capsys, settings, service, tmp_path
) -> None:
    pki = tmp_path / "pki"
    code, out, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "tpm2-quote", "--tpm-nitro", "--simulated-pki", str(pki), "--count", "4",
        "--bad", "wrong-image", "--image", "nitro-image",
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert "SIMULATED NitroTPM (not AWS hardware)" in err
    assert f"no simulated root at {pki / 'root.pem'}: creating a NEW one" in err
    assert "SWTPM" not in err
    root = x509.load_pem_x509_certificate((pki / "root.pem").read_bytes())
    assert len(out.splitlines()) == 4
    for n, (body, container) in enumerate(containers(service)):
        result = ResultDigest("sha256", bytes.fromhex(body["result_hash"].removeprefix("sha256:")))
        attest = verify_quote(container, ak_pem(container), binding(service.nonces[n], result))
        assert [bank for bank, _ in attest.selection] == ["sha256", "sha384"]
        events, _ = replay_log(container["event_log"])
        assert events[0][3] == b"attestation-ledger:model:nitro-image-unapproved"  # wrong-image
        envelope, fields = read_document(container["nitro_document"])
        assert fields["nonce"] == service.nonces[n]
        key = serialization.load_der_public_key(container["ak"])
        assert fields["public_key"] == key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        for index, value in container["pcrs"]["sha384"].items():
            assert fields["nitrotpm_pcrs"][index] == value
        assert fields["cabundle"][0] == root.public_bytes(serialization.Encoding.DER)
        verify_cose(envelope, fields["certificate"])
    assert processes_under(settings.data_dir) == []  # the swtpm was stopped
