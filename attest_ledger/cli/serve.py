"""``attest-ledger serve``: the service under gunicorn.

Defaults: bound to 127.0.0.1:8000, one worker process per CPU, each with 8 threads
(gthread, behind the buffering front of :mod:`attest_ledger.front`: threads get complete
requests only), 30 s timeouts, access log on stdout. The master process starts the embedded
PostgreSQL if DATABASE_URL is unset, refuses to start on an outdated schema or without a
signing key, and prepares the shared directory Prometheus needs for multi-process metrics.
Each worker loads ``web.wsgi:create()``, which builds its own runtime (pool, batcher,
publisher) after the fork.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
from typing import Any

from attest_ledger import database, watchdog
from attest_ledger.cli.db import head_revision, schema_is_current
from attest_ledger.ear import EarKeyError, EarSigner
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.front import FrontLimits
from attest_ledger.settings import Settings
from ledger.keys import KeyFileError, load_signing_key

__all__ = ["register", "serve"]

log = logging.getLogger("attest_ledger")


def register(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the service under gunicorn")
    parser.add_argument("--bind", help="host:port (default ATTEST_LEDGER_BIND or 127.0.0.1:8000)")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    parser.add_argument("--threads", type=int, help="threads per worker (default 8)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = dataclasses.replace(
        settings,
        bind=args.bind or settings.bind,
        workers=args.workers if args.workers is not None else settings.workers,
        threads=args.threads if args.threads is not None else settings.threads,
    )
    return serve(settings)


def serve(settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
    )
    try:
        load_signing_key(settings.ledger_key_path)
        # created here, once, if missing: not by each worker process at once
        _, created = EarSigner.load_or_create(settings.ear_key_path)
        if created:
            logging.getLogger(__name__).warning(
                "created the EAR-signing key %s", settings.ear_key_path
            )
    except (KeyFileError, EarKeyError) as exc:
        print(f"attest-ledger serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    url = database.database_url(settings)
    if not schema_is_current(url):
        print(
            f"attest-ledger serve: the database schema is not at {head_revision()}; "
            "run `attest-ledger db upgrade` first",
            file=sys.stderr,
        )
        return EXIT_USAGE
    metrics_dir = settings.data_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # The workers read their settings from the environment (web.wsgi): hand them the
    # resolved database, and the metrics directory before prometheus_client is imported.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ["DATABASE_URL"] = url
    watchdog.watch(settings)  # restarts the embedded server if it dies; reports an external one
    workers = settings.workers or os.cpu_count() or 1
    _Gunicorn(
        {
            "bind": settings.bind,
            "workers": workers,
            "worker_class": "attest_ledger.front.worker.FrontWorker",
            "threads": settings.threads,
            "timeout": 30,
            "graceful_timeout": 15,
            "keepalive": 5,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "attest-ledger",
            # gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn):
            # a second service, or a test's, would take it over; nothing here uses it
            "control_socket_disable": True,
            "child_exit": _child_exit,
        },
        FrontLimits(
            head_timeout=settings.head_timeout,
            body_timeout=settings.body_timeout,
            per_address=settings.connections_per_ip,
            max_body=settings.max_request_bytes,
        ),
    ).run()
    return EXIT_OK


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess  # noqa: PLC0415 - after the env is set

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _application_class() -> type:
    from gunicorn.app.base import BaseApplication  # noqa: PLC0415 - only when serving
    from gunicorn.util import import_app  # noqa: PLC0415

    class Application(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
        def __init__(self, options: dict[str, Any], front_limits: FrontLimits) -> None:
            self.options = options
            self.front_limits = front_limits  # read by each FrontWorker
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # In each worker, after the fork; by name, as any WSGI server would load it.
            return import_app("web.wsgi:create()")

    return Application


def _Gunicorn(options: dict[str, Any], front: FrontLimits) -> Any:  # noqa: N802 - a class, made lazily
    return _application_class()(options, front)
