"""The enclave's Nitro Secure Module, behind one small interface.

* :class:`DeviceNsm` talks to the real ``/dev/nsm`` through the aws-nsm-interface package.
  It exists only inside a Nitro enclave; elsewhere, opening it raises :class:`NsmUnavailable`.
* :class:`~enclave_worker.simulated_nsm.SimulatedNsm` signs with a simulated PKI, for tests
  and demos (and says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

__all__ = ["DEVICE", "DeviceNsm", "Nsm", "NsmUnavailable"]

DEVICE = Path("/dev/nsm")


class NsmUnavailable(RuntimeError):
    """There is no NSM device here (not inside a Nitro enclave)."""


class Nsm(Protocol):
    def attest(
        self,
        *,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
    ) -> bytes:
        """An attestation document (COSE_Sign1 bytes) carrying these fields."""
        ...


class DeviceNsm:
    """The real NSM. Opened on construction, closed by :meth:`close`."""

    def __init__(self, device: Path = DEVICE) -> None:
        if not device.exists():
            raise NsmUnavailable(f"{device} does not exist: this is not a Nitro enclave")
        import aws_nsm_interface  # noqa: PLC0415 - only inside an enclave

        self._nsm: Any = aws_nsm_interface
        self._handle = aws_nsm_interface.open_nsm_device()

    def attest(
        self,
        *,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
    ) -> bytes:
        response = self._nsm.get_attestation_doc(
            self._handle, user_data=user_data, nonce=nonce, public_key=public_key
        )
        document: bytes = response["document"]
        return document

    def close(self) -> None:
        self._nsm.close_nsm_device(self._handle)
