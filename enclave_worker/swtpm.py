"""swtpm, a software TPM 2.0 (libtpms), run as a TCP server for tests and demos.

``Swtpm`` starts ``swtpm socket --tpm2 --server type=tcp,port=P --ctrl type=tcp,port=P+1
--flags not-need-init,startup-clear`` on free ports over a state directory (a temporary one
unless given), waits until it accepts connections, and gives the TCTI that tpm2-tools take
(``swtpm:host=127.0.0.1,port=P``). On exit it is terminated and waited on, whatever happened
inside the ``with``.

With ``manufacture=True`` a new state directory is first set up by ``swtpm_setup --tpm2
--create-ek-cert --create-platform-cert`` with swtpm's own local CA (``swtpm_localca``),
configured to keep its keys in ``<state>/localca`` rather than ``/var/lib/swtpm-localca``:
the TPM then holds an RSA-2048 EK at 0x81010001 (and an ECC one) with its certificate in NV
index 0x01c00002, issued by that CA, whose root and issuer certificates
:attr:`Swtpm.ca_certificates` returns. swtpm is a simulator: nothing it signs is hardware
evidence, and its CA is ours.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = ["Swtpm", "SwtpmError"]

_HOST: Final = "127.0.0.1"
#: How long swtpm may take to listen, and swtpm_setup to manufacture (seconds).
_START_TIMEOUT: Final = 10.0
_SETUP_TIMEOUT: Final = 60.0
_STOP_TIMEOUT: Final = 10.0
_ATTEMPTS: Final = 3
_STATE_FILE: Final = "tpm2-00.permall"


class SwtpmError(RuntimeError):
    """swtpm or swtpm_setup could not be run, or did not start."""


def _free_ports() -> tuple[int, int]:
    """Two consecutive free ports: the swtpm TCTI finds the control port at the server's + 1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind((_HOST, 0))
            port: int = server.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as control:
                try:
                    control.bind((_HOST, port + 1))
                except OSError:
                    continue
            return port, port + 1
    raise SwtpmError("found no two consecutive free TCP ports for swtpm")


class Swtpm:
    """A running swtpm (a context manager): ``with Swtpm() as tpm: ... tpm.tcti ...``."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        manufacture: bool = False,
        pcr_banks: tuple[str, ...] = ("sha256", "sha384"),
    ) -> None:
        """``state_dir``: kept across runs when given (else a temporary directory, removed on
        exit); ``manufacture``: make EK certificates with swtpm's local CA on first use;
        ``pcr_banks``: the banks ``swtpm_setup`` activates (only when manufacturing; an
        unmanufactured swtpm has sha1, sha256, sha384 and sha512)."""
        self._given = state_dir
        self.manufacture = manufacture
        self.pcr_banks = pcr_banks
        self.state_dir: Path | None = None
        self.port: int | None = None
        self.ctrl_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._temporary: tempfile.TemporaryDirectory[str] | None = None

    @property
    def tcti(self) -> str:
        """The TCTI of tpm2-tools (``TPM2TOOLS_TCTI``, ``-T``) for this swtpm."""
        if self.port is None or not self.running:
            raise SwtpmError("swtpm is not running")
        return f"swtpm:host={_HOST},port={self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def ca_certificates(self) -> tuple[bytes, ...]:
        """The local CA's root and issuer certificates (DER), when manufactured."""
        if self.state_dir is None:
            raise SwtpmError("swtpm is not running")
        ca = self.state_dir / "localca"
        found = []
        for name in ("swtpm-localca-rootca-cert.pem", "issuercert.pem"):
            if (ca / name).exists():
                found.append(ssl.PEM_cert_to_DER_cert((ca / name).read_text()))
        return tuple(found)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._process is not None:
            raise SwtpmError("swtpm is already running")
        if shutil.which("swtpm") is None:
            raise SwtpmError("swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)")
        if self._given is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="swtpm-")
            self.state_dir = Path(self._temporary.name)
        else:
            self.state_dir = self._given
            self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.manufacture and not (self.state_dir / _STATE_FILE).exists():
                self._setup(self.state_dir)
            for attempt in range(_ATTEMPTS):
                if self._launch(self.state_dir, last=attempt == _ATTEMPTS - 1):
                    return
        except BaseException:
            self.stop()
            raise

    def _launch(self, state: Path, *, last: bool) -> bool:
        """Start swtpm on two free ports; False if it lost a race for a port."""
        self.port, self.ctrl_port = _free_ports()
        log = state / "swtpm.log"
        command = [
            "swtpm", "socket", "--tpm2",
            "--tpmstate", f"dir={state}",
            "--server", f"type=tcp,port={self.port},bindaddr={_HOST}",
            "--ctrl", f"type=tcp,port={self.ctrl_port},bindaddr={_HOST}",
            "--flags", "not-need-init,startup-clear",
            "--log", f"file={log},level=1",
        ]  # fmt: skip
        self._process = subprocess.Popen(  # noqa: S603 - swtpm, arguments built here
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            status = self._process.poll()
            if status is not None:
                stderr = self._process.stderr.read() if self._process.stderr else b""
                self._process = None
                detail = stderr.decode(errors="replace").strip() or _tail(log)
                if not last and "in use" in detail:
                    return False
                raise SwtpmError(f"swtpm socket exited with status {status}: {detail}")
            with contextlib.suppress(OSError), socket.create_connection((_HOST, self.port), 0.2):
                return True
            time.sleep(0.02)
        self.stop()
        raise SwtpmError(f"swtpm did not listen on {_HOST}:{self.port} within {_START_TIMEOUT} s")

    def _setup(self, state: Path) -> None:
        if shutil.which("swtpm_setup") is None:
            raise SwtpmError("swtpm_setup is not installed (Debian: apt-get install swtpm-tools)")
        ca = state / "localca"
        ca.mkdir(parents=True, exist_ok=True)
        (state / "swtpm-localca.conf").write_text(
            f"statedir = {ca}\nsigningkey = {ca}/signkey.pem\n"
            f"issuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n"
        )
        (state / "swtpm-localca.options").write_text(
            "--platform-manufacturer attestation-ledger\n--platform-version 2.1\n"
            "--platform-model swtpm\n"
        )
        (state / "swtpm_setup.conf").write_text(
            f"create_certs_tool = {shutil.which('swtpm_localca') or 'swtpm_localca'}\n"
            f"create_certs_tool_config = {state}/swtpm-localca.conf\n"
            f"create_certs_tool_options = {state}/swtpm-localca.options\n"
            f"active_pcr_banks = {','.join(self.pcr_banks)}\n"
        )
        command = [
            "swtpm_setup", "--tpm2", "--tpmstate", str(state),
            "--create-ek-cert", "--create-platform-cert", "--not-overwrite",
            "--config", str(state / "swtpm_setup.conf"),
            "--logfile", str(state / "swtpm_setup.log"),
        ]  # fmt: skip
        try:
            done = subprocess.run(  # noqa: S603 - swtpm_setup, arguments built here
                command, capture_output=True, timeout=_SETUP_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise SwtpmError(f"swtpm_setup did not finish within {_SETUP_TIMEOUT} s") from exc
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()
            raise SwtpmError(
                f"swtpm_setup failed with status {done.returncode}: "
                f"{detail or _tail(state / 'swtpm_setup.log')}"
            )

    def stop(self) -> None:
        """Terminate swtpm and wait for it (killed if it does not stop); idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stderr is not None:
                process.stderr.close()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace").strip()[-2000:]
    except OSError:
        return ""
