"""The scenario library at the top (scenarios/), one copy, shipped in the wheel; every package listed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from simulator.scenarios import loader

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_the_library_is_the_builtin_scenarios() -> None:
    assert LIBRARY, "scenarios/ is empty"
    assert loader.builtin_names() == [p.stem for p in LIBRARY]
    assert not (ROOT / "simulator" / "scenarios" / "builtin").exists(), "one copy: scenarios/ at the top"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_every_scenario_in_the_library_validates(path: Path) -> None:
    scenario = loader.read(str(path))
    assert scenario.name and loader.read_source(f"builtin:{path.stem}") == path.read_text(encoding="utf-8")


def test_every_package_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "simulator").rglob("__init__.py")}
    assert found | {"simulator.scenarios.builtin"} == listed


@pytest.mark.slow
def test_the_wheel_ships_the_library_and_builtin_reads_it(tmp_path: Path) -> None:
    """Build the wheel, unpack it, and load ``builtin:NAME`` from the unpacked copy alone."""
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True, timeout=300
    )
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {f"simulator/scenarios/builtin/{p.name}" for p in LIBRARY} <= names
    assert "simulator/py.typed" in names and "simulator/scenarios/schema.json" in names
    code = (
        "import simulator, sys; from simulator.scenarios import loader; "
        "assert simulator.__file__.startswith(sys.argv[1]), simulator.__file__; "
        "print(len(loader.builtin_names()), loader.read('builtin:happy_path').name)"
    )
    site = str(tmp_path / "site")
    shown = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",  # no site: the editable install's .pth is not read, only the unpacked wheel and the deps
            "-c",
            f"import sys; sys.path.insert(0, {site!r}); sys.path.append({_deps()!r}); {code}",
            site,
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.split()
    assert shown == [str(len(LIBRARY)), "happy-path"]


def _deps() -> str:
    """The site-packages holding the dependencies (aiohttp, PyYAML, ...), after the unpacked wheel."""
    import yaml

    return str(Path(yaml.__file__).resolve().parent.parent)
