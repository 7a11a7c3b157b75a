"""The layers hold: import-linter contracts cover every core package, and the public exports of
each package do not drift."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import alloy

ROOT = Path(__file__).resolve().parent.parent


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]  # type: ignore[no-any-return]


def test_every_alloy_core_module_is_under_the_core_contract() -> None:
    """A new module in alloy/ (other than the shells: the CLI and the web interface) must be
    listed in the forbidden contract, or the core could import click or git unnoticed."""
    contract = next(c for c in _contracts() if str(c["name"]).startswith("The Alloy core"))
    listed = set(contract["source_modules"])  # type: ignore[arg-type]
    top = {
        f"alloy.{m.name}"
        for m in pkgutil.iter_modules(alloy.__path__)
        if m.name not in ("cli", "web", "__main__")
    }
    missing = sorted(top - listed)
    assert not missing, f"add to the core contract in pyproject.toml: {missing}"


def test_every_foundry_core_module_is_under_the_core_contract() -> None:
    import foundry

    contract = next(c for c in _contracts() if str(c["name"]).startswith("The Foundry core"))
    listed = set(contract["source_modules"])  # type: ignore[arg-type]
    top = {
        f"foundry.{m.name}"
        for m in pkgutil.iter_modules(foundry.__path__)
        if m.name not in ("cli", "__main__")
    }
    missing = sorted(top - listed)
    assert not missing, f"add to the Foundry core contract in pyproject.toml: {missing}"


def test_import_contracts_hold() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_public_exports_resolve() -> None:
    """Every name in a package's __all__ exists, and nothing private is exported."""
    for name in ("alloy", "alloy.model", "alloy.load", "alloy.compile", "foundry"):
        module = importlib.import_module(name)
        exported = module.__all__
        for item in exported:
            assert hasattr(module, item), f"{name}.__all__ names missing {item}"
            assert not item.startswith("_") or item == "__version__"


def test_the_alloy_core_does_not_load_cli_or_git_libraries() -> None:
    """Importing the core (as Foundry's peers and the daemon would) pulls in no click or git."""
    code = (
        "import sys, alloy, alloy.workspace, alloy.explain, alloy.schema; "
        "bad = [m for m in ('click', 'git', 'github3', 'watchdog', 'foundry', 'controllers') "
        "if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_contracts_catch_network_process_and_file_system_imports(tmp_path: Path) -> None:
    """The contracts are not decoration: a copy of the code with an Alloy core module that
    imports `subprocess` and a pure layer that imports `pathlib` breaks exactly those two."""
    import os
    import shutil

    for package in ("alloy", "foundry", "controllers"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "alloy" / "status.py").open("a") as fh:
        fh.write("\nimport subprocess  # a process from the core\n")
    with (tmp_path / "alloy" / "review" / "_lines.py").open("a") as fh:
        fh.write("\nimport pathlib  # the file system from a pure layer\n")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    broken = [line for line in proc.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert len(broken) == 2, proc.stdout
    assert any(line.startswith("The Alloy core") for line in broken)
    assert any(line.startswith("The pure Alloy layers") for line in broken)
    assert "alloy.status -> subprocess" in proc.stdout
    assert "alloy.review._lines -> pathlib" in proc.stdout
