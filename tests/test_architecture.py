"""The direction of imports and the purity of the verifier, checked on the source itself.

verifier/ is pure: no database, web framework, network, clock or environment. enclave_worker/
builds its documents without the verifier's code. Nothing imports web/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["verifier", "ledger", "migrations", "web", "enclave_worker", "attest_ledger"]


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


FORBIDDEN_IN_VERIFIER = {
    "sqlalchemy", "psycopg", "flask", "werkzeug", "requests", "httpx", "urllib", "socket",
    "http", "os", "subprocess", "time", "random", "secrets", "ledger", "web", "enclave_worker",
    "attest_ledger",
}  # fmt: skip


@pytest.mark.parametrize("path", modules("verifier"), ids=lambda p: p.name)
def test_verifier_imports_nothing_impure(path: Path) -> None:
    bad = {name for name in imported(path) if top(name) in FORBIDDEN_IN_VERIFIER}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", modules("verifier"), ids=lambda p: p.name)
def test_verifier_never_reads_the_clock_or_environment(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {
            "now",
            "utcnow",
            "today",
            "environ",
            "getenv",
        }:
            pytest.fail(f"{path.name}:{node.lineno} uses .{node.attr}")


@pytest.mark.parametrize("path", modules("enclave_worker"), ids=lambda p: p.name)
def test_enclave_worker_does_not_use_the_verifier_or_the_service(path: Path) -> None:
    bad = {
        name
        for name in imported(path)
        if top(name) in {"verifier", "ledger", "web", "attest_ledger"}
    }
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("package", PACKAGES)
def test_nothing_imports_web(package: str) -> None:
    if package == "web":
        return
    for path in modules(package):
        assert "web" not in {top(n) for n in imported(path)}, path


@pytest.mark.parametrize("path", modules("ledger"), ids=lambda p: p.name)
def test_ledger_knows_nothing_of_flask_or_the_verifier(path: Path) -> None:
    bad = {
        n
        for n in imported(path)
        if top(n) in {"flask", "werkzeug", "verifier", "web", "attest_ledger", "enclave_worker"}
    }
    assert not bad, f"{path.name} imports {bad}"


def test_merkle_module_is_pure() -> None:
    names = {top(n) for n in imported(ROOT / "ledger" / "merkle.py")}
    assert names <= {"__future__", "hashlib", "hmac", "collections", "dataclasses", "ledger"}


def test_every_package_is_listed_in_pyproject() -> None:
    import tomllib

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(p for p in listed if "." not in p) == sorted(PACKAGES)
