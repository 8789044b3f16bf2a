"""`flowlink connector new`: the scaffolded package installs, passes its own tests, is listed by
the CLI and passes the contract kit, all in a throwaway venv (the project's .venv is untouched)."""
from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.sdk.scaffold import ScaffoldError, package_dir_name, scaffold

ROOT = Path(__file__).resolve().parent.parent


def test_names_and_existing_directories_are_refused(tmp_path: Path) -> None:
    for bad in ("Acme", "1acme", "acme-crm", ""):
        with pytest.raises(ScaffoldError, match="is not a connector name") as refused:
            scaffold(bad, tmp_path)
        assert refused.value.usage
    package = scaffold("acme", tmp_path)
    assert package == tmp_path / "flowlink-connector-acme"
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()) == [
        "README.md", "pyproject.toml", "src/flowlink_connector_acme/__init__.py",
        "src/flowlink_connector_acme/platform.py", "src/flowlink_connector_acme/py.typed", "tests/test_acme.py",
    ]
    with pytest.raises(ScaffoldError, match="exists already"):
        scaffold("acme", tmp_path)
    assert package_dir_name("acme_crm") == "flowlink-connector-acme-crm"


def test_cli_new_reports_what_it_created(tmp_path: Path) -> None:
    env = {**os.environ, "FLOWLINK_HOME": str(tmp_path)}
    made = subprocess.run([sys.executable, "-m", "engine.cli", "connector", "new", "acme", "--dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[0] == f"created {tmp_path / 'flowlink-connector-acme'}"
    assert "  flowlink connector test acme" in made.stdout.splitlines()
    again = subprocess.run([sys.executable, "-m", "engine.cli", "connector", "new", "acme", "--dir", str(tmp_path)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "connector", "new", "Acme"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "'Acme' is not a connector name" in bad.stderr


def test_scaffold_installs_passes_its_tests_and_is_listed(tmp_path: Path) -> None:
    package = scaffold("acme_crm", tmp_path / "src")
    env_dir = tmp_path / "venv"
    # --system-site-packages from the project's python; a .pth makes the project venv's packages
    # (Flowlink, its dependencies, pytest) visible, since a venv made from a venv only sees the base
    # interpreter's site-packages.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    project_site = site.getsitepackages()[0]
    Path(purelib, "flowlink-project.pth").write_text(f"import site; site.addsitedir({project_site!r})\n")
    env = {**os.environ, "FLOWLINK_HOME": str(tmp_path / "home"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("FLOWLINK_DATABASE_URL", None)

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

    installed = run("-m", "pip", "install", "--quiet", str(package), cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=package)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "6 passed" in tests.stdout

    listed = run("-m", "engine.cli", "connectors", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next((line for line in listed.stdout.splitlines() if line.startswith("acme_crm ")), None)
    assert line is not None, listed.stdout
    assert "0.1.0" in line and "create_item" in line and "item_created" in line
    assert listed.stderr == ""  # no manifest warnings

    contract = run("-m", "engine.cli", "connector", "test", "acme_crm", cwd=tmp_path)
    assert contract.returncode == 0, contract.stdout + contract.stderr
    assert contract.stdout.splitlines()[-1] == "7 passed, 0 failed: ok"

    # the project's own venv did not get the package
    assert subprocess.run([sys.executable, "-c", "import flowlink_connector_acme_crm"], capture_output=True).returncode != 0
