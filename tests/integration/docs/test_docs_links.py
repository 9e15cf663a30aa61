"""The README is a front door that leads somewhere: short, the two commands shown as written, and every link
into the repository (docs/ pages and their sections) reaches a file and a heading that exist. The pages of
docs/ are checked by the strict site build (`make docs`, part of `make test`), which the README is not part of.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def slug(heading: str) -> str:
    """A heading's anchor as MkDocs (and GitHub, for these headings) writes it."""
    text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown: str) -> set[str]:
    outside_code = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", outside_code, flags=re.M)}


def links(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", markdown)


def test_the_readme_is_a_short_front_door() -> None:
    assert len(README.splitlines()) <= 300
    assert "make run" in README and "make test" in README
    assert "(docs/index.md)" in README


def test_every_relative_link_of_the_readme_reaches_a_file_and_a_heading() -> None:
    local = [link for link in links(README) if not re.match(r"[a-z]+:", link)]
    assert len(local) >= 10
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.is_file(), f"README links {link!r}: no such file"
        if anchor:
            assert anchor in anchors(target.read_text(encoding="utf-8")), f"README links {link!r}: no such heading"


def test_every_page_of_docs_is_in_the_site() -> None:
    site = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f": {page.name}\n" in site, f"docs/{page.name} is not in mkdocs.yml's nav"


def test_every_repository_file_a_page_names_exists() -> None:
    """Pages name source and test files (`tests/...py`, `simulator/...py`) as where to read more; after the
    layout moves five still named tests/test_*.py files that had moved into tests/integration/ or tests/unit/."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for page in pages:
        for name in re.findall(r"`((?:tests|simulator|scripts|deploy|bench)/[\w./-]+)`", page.read_text("utf-8")):
            if "NAME" in name or name == "tests/test_wallet.py":  # a placeholder; the reader's own file (ci.md)
                continue
            if not (ROOT / name).exists():
                missing.append(f"{page.name}: {name}")
    assert not missing, missing


def test_every_simulator_import_in_a_page_imports() -> None:
    """A code example that imports a moved module fails at its first line (hardening.md imported
    simulator.client after it moved to simulator.dialects.client)."""
    import importlib

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for module, names in re.findall(r"^\s*from (simulator[\w.]*) import ([\w, ]+)$", page.read_text("utf-8"), re.M):
            try:
                imported = importlib.import_module(module)
                for name in names.split(","):
                    getattr(imported, name.strip())
            except (ImportError, AttributeError) as exc:
                broken.append(f"{page.name}: from {module} import {names}: {exc}")
    assert not broken, broken
