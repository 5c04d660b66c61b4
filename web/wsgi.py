"""The WSGI entry point: ``web.wsgi:create()``, which gunicorn calls in each worker process.

Settings are read from the environment (prepared by ``attest-ledger serve``), once per
process; the runtime is closed when the worker exits, draining the batcher so that nothing
acknowledged is left uncommitted.
"""

from __future__ import annotations

import atexit

from flask import Flask

from attest_ledger.runtime import Runtime
from attest_ledger.settings import Settings
from web import create_app

__all__ = ["create"]


def create() -> Flask:
    runtime = Runtime.build(Settings.from_env())
    atexit.register(runtime.close)
    return create_app(runtime)
