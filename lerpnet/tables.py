"""One table, three files: `<stem>.json` (rows and meta), `<stem>.csv` and a Markdown `<stem>.md`.

The JSON is for programs, the CSV for spreadsheets, the Markdown for reading on GitHub; all three are
written through lerpnet.files, so an interrupted run never leaves a torn table.
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from lerpnet import files


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def write_table(path_stem: str | pathlib.Path, rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> pathlib.Path:
    """Writes `rows` (columns: every key in order of first appearance) and `meta`; returns the .md path."""
    stem = pathlib.Path(path_stem)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    files.write_json(stem.with_suffix(".json"), {"meta": meta, "rows": list(rows)})
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(stem.with_suffix(".csv"), buffer.getvalue())
    lines = [f"- {key}: {_fmt(value)}" for key, value in meta.items()]
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return files.write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")
