"""scripts/install.sh, how `make run` and `make test` install: uv when it can be had, else pip, for real in a
throw-away environment made as the Makefile makes it (`venv --without-pip`). The uv here is a stand-in
script in the environment's bin/ (the installer uses one already there), so the test needs no network."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 120


def a_wheel(folder: Path) -> Path:
    """A minimal wheel with no dependencies: pip installs it without an index."""
    wheel = folder / "demo_pkg-0.1-py3-none-any.whl"
    files = {
        "demo_pkg/__init__.py": "ANSWER = 42\n",
        "demo_pkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 0.1\n",
        "demo_pkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("demo_pkg-0.1.dist-info/RECORD", "".join(f"{n},,\n" for n in files) + "RECORD,,\n")
    return wheel


def environment(tmp_path: Path, uv_exit: int) -> Path:
    """An environment without pip, as the Makefile makes it, whose uv records its arguments and exits uv_exit."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    uv = env_dir / "bin" / "uv"
    uv.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/uv-calls"\nexit {uv_exit}\n')
    uv.chmod(0o755)
    return env_dir / "bin" / "python"


def install(python: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "scripts" / "install.sh"), str(python), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "PYTHON": sys.executable, **env},
    )


def test_uv_does_the_install_when_it_works(tmp_path: Path) -> None:
    python = environment(tmp_path, uv_exit=0)
    done = install(python, "-e", ".[dev]")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "uv-calls").read_text() == f"pip install --quiet --python {python} -e .[dev]\n"
    assert not (python.parent / "pip").exists()  # pip was never needed


def test_pip_does_the_same_install_when_uv_fails(tmp_path: Path) -> None:
    python = environment(tmp_path, uv_exit=1)
    done = install(python, str(a_wheel(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "uv could not install" in done.stderr and "trying pip" in done.stderr
    assert (tmp_path / "uv-calls").exists()
    answer = subprocess.run([str(python), "-c", "import demo_pkg; print(demo_pkg.ANSWER)"], capture_output=True)
    assert answer.stdout == b"42\n"


def test_wallet_sim_installer_pip_skips_uv(tmp_path: Path) -> None:
    python = environment(tmp_path, uv_exit=0)
    done = install(python, str(a_wheel(tmp_path)), WALLET_SIM_INSTALLER="pip")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "uv-calls").exists()
    assert subprocess.run([str(python), "-c", "import demo_pkg"]).returncode == 0
