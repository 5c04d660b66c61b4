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


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


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


@pytest.mark.parametrize("path", modules("verifier"), ids=relative)
def test_verifier_imports_nothing_impure(path: Path) -> None:
    bad = {name for name in imported(path) if top(name) in FORBIDDEN_IN_VERIFIER}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", modules("verifier"), ids=relative)
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
    # Sub-packages too (verifier.nitro, verifier.snp, ...): an unlisted one would be left out
    # of a wheel, and with it a scheme and its pinned roots.
    found = sorted(
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    )
    assert sorted(listed) == found


def test_the_verifier_tree_says_which_file_holds_which_schemes_rules() -> None:
    """Shared pieces at the top, one sub-package per scheme, and no scheme importing
    another: a reader finds a scheme's rules in its own folder. One exception: the TPM
    scheme verifies a NitroTPM document (the aws-nitrotpm AK path) with the Nitro scheme's
    own envelope, chain and root, rather than a second copy of them."""
    schemes = sorted(p.parent.name for p in (ROOT / "verifier").glob("*/__init__.py"))
    assert {"nitro", "snp"} <= set(schemes)
    for scheme in schemes:
        for path in modules(f"verifier/{scheme}"):
            others = {
                name
                for name in imported(path)
                if name.startswith("verifier.")
                and name.split(".")[1] in schemes
                and name.split(".")[1] != scheme
                and not (scheme == "tpm" and name.split(".")[1] == "nitro")
            }
            assert not others, f"{relative(path)} imports another scheme: {others}"
    for path in (ROOT / "verifier").glob("*.py"):
        if path.name in {"__init__.py", "registry.py"}:
            continue  # the public API and the registry name every scheme on purpose
        runtime = {
            name
            for name in imported(path)
            if name.startswith("verifier.") and name.split(".")[1] in schemes
        }
        assert not runtime or _only_for_typing(path, runtime), (
            f"{relative(path)} is shared but imports a scheme: {runtime}"
        )


def _only_for_typing(path: Path, names: set[str]) -> bool:
    """True if every import of ``names`` in ``path`` sits under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    typing_only.add(inner.module)
    return names <= typing_only
