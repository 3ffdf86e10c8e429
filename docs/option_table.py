"""Write the README's option table from the option table in the code.

    python docs/option_table.py          # rewrites the part of README.md between the markers

``napari_nst.core.options.TABLE`` describes every option once; ``tests/core/test_options.py``
fails when the README's copy differs, and this script brings it back in line.
"""

from __future__ import annotations

from pathlib import Path

from napari_nst.core.options import markdown

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- option table: made by docs/option_table.py -->", "<!-- end of option table -->"


def with_table(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{markdown()}\n{END}{tail}"


if __name__ == "__main__":
    README.write_text(with_table(README.read_text(encoding="utf-8")), encoding="utf-8")
