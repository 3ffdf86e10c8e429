"""The package's layers, as pyproject.toml's import-linter contracts state them: the
engine (core) imports neither napari, Qt, magicgui nor the CLI or the widget; the dock's
parts do not import the dock; no import cycles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "5 kept" in done.stdout


def test_every_engine_module_is_explained_where_a_newcomer_starts_reading():
    import napari_nst.core

    modules = sorted(p.stem for p in (ROOT / "src/napari_nst/core").glob("*.py"))
    modules.remove("__init__")
    assert len(modules) <= 15  # issue 16: at most 15 modules (``__init__`` aside)
    guide = napari_nst.core.__doc__
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    built = readme[readme.index("## How it is built") :]
    for name in modules:
        assert f"``{name}``" in guide, f"core/__init__.py does not explain {name}"
        assert f"| `core/{name}.py` |" in built, f"the README does not explain core/{name}.py"
