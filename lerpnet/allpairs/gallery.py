"""A page to browse an all-pairs run: one self-contained `index.html` beside the program's outputs.

Opening PNG strips one by one is no way to look at thousands of paths. The page needs no server
and no network (inline CSS and script, pictures and meshes linked by paths relative to the
workdir), and is built only from files the program already wrote there: summary.json (required),
the per-pair table (pairs.npz, else pairs.csv), topk.json and topk/, exports/<a>__<b>/ and the
figures. Optional parts that are missing are left out of the page.
"""

from __future__ import annotations

import csv
import html
import pathlib
import re
from urllib.parse import quote

import numpy as np

from lerpnet import files

MAX_ROWS = 2000  # table rows: the most novel paths, plus every exported and top-k one
_COLUMNS = (  # key, heading, sort type
    ("pair", "#", "number"), ("id_i", "shape i", "text"), ("id_j", "shape j", "text"), ("splits", "splits", "text"),
    ("iou_start", "IoU start", "number"), ("iou_end", "IoU end", "number"), ("smoothness", "smoothness", "number"),
    ("monotonicity", "monotonicity", "number"), ("novelty_iou", "novelty IoU", "number"),
    ("nearest", "nearest training shape", "text"), ("occupancy_mid", "midpoint occupancy", "number"),
    ("plausible", "plausible", "text"),
)
_MESHES = (".obj", ".ply", ".off", ".glb", ".stl", ".binvox")
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1500px;padding:1em 2em}
body{color:#222}
h1{font-size:1.5em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}table{border-collapse:collapse}
td,th{padding:2px 8px;white-space:nowrap;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;background:#f4f6fa;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.marked{background:#fff8e1}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.card img{max-width:100%;vertical-align:top;margin:4px 8px 4px 0}.note{color:#666}
figure{display:inline-block;margin:0 1em 1em 0}
dl.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:2px 1.5em}
dl.kv div{display:flex;gap:.6em}dt{color:#555;min-width:12em}dd{margin:0;overflow-wrap:anywhere}
.scroll{max-height:80vh;overflow:auto;border:1px solid #eee}
"""
_SCRIPT = """
for (const table of document.querySelectorAll("table.sortable")) {
  const heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach((th, col) => th.addEventListener("click", () => {
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    heads.forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const numeric = th.dataset.type === "number";
    const key = (row) => {
      const text = row.cells[col].textContent;
      const value = parseFloat(text);
      return numeric ? (isNaN(value) ? Infinity : value) : text;
    };
    const rows = Array.from(table.tBodies[0].rows, (row) => [key(row), row]);
    rows.sort((a, b) => (ascending ? 1 : -1) * (numeric ? a[0] - b[0] : a[0].localeCompare(b[0])));
    table.tBodies[0].append(...rows.map((pair) => pair[1]));
  }));
}
"""


def _read_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path) as d:
        if not {"i", "j", "ids"} <= set(d.files):
            raise ValueError(f"{path}: a pair table needs arrays i, j and ids, has {sorted(d.files)}")
        ids, i, j = d["ids"].astype(str), d["i"], d["j"]
        table = {"pair": np.arange(len(i)), "id_i": ids[i], "id_j": ids[j]}
        if "splits" in d.files:
            names, code = np.unique(d["splits"].astype(str), return_inverse=True)
            label = np.array([["-".join(sorted((a, b))) for b in names] for a in names])
            table["splits"] = label[code[i], code[j]]
        for key in ("iou_start", "iou_end", "smoothness", "monotonicity", "novelty_iou"):
            if key in d.files:
                table[key] = d[key]
        if "nearest_reference" in d.files:
            refs = d["reference_ids"].astype(str) if "reference_ids" in d.files else None
            table["nearest"] = refs[d["nearest_reference"]] if refs is not None else d["nearest_reference"]
        if "occupancy" in d.files:
            table["occupancy_mid"] = d["occupancy"][:, d["occupancy"].shape[1] // 2]
        if "plausible" in d.files:
            table["plausible"] = np.where(d["plausible"], "yes", "no")
    return table


def _read_csv(path: pathlib.Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"id_i", "id_j"} <= set(rows[0]):
        raise ValueError(f"{path}: a pair table needs columns id_i and id_j")
    column = {key: np.array([r[key] for r in rows]) for key in rows[0]}
    table = {"pair": np.arange(len(rows)), "id_i": column["id_i"], "id_j": column["id_j"]}
    if "split_i" in column and "split_j" in column:
        table["splits"] = np.array(["-".join(sorted(s)) for s in zip(column["split_i"], column["split_j"])])
    for key in ("iou_start", "iou_end", "smoothness", "monotonicity", "novelty_iou", "occupancy_mid"):
        if key in column:
            table[key] = column[key].astype(float)
    if "nearest_train_id" in column:
        table["nearest"] = column["nearest_train_id"]
    if "plausible" in column:
        table["plausible"] = np.where(column["plausible"].astype(float) > 0, "yes", "no")
    return table


def _pair_table(workdir: pathlib.Path) -> dict[str, np.ndarray] | None:
    if (workdir / "pairs.npz").is_file():
        return _read_npz(workdir / "pairs.npz")
    if (workdir / "pairs.csv").is_file():
        return _read_csv(workdir / "pairs.csv")
    return None


def _href(workdir: pathlib.Path, path: pathlib.Path) -> str:
    return "/".join(quote(part) for part in path.relative_to(workdir).parts)


def _cell(key: str, value) -> str:
    if isinstance(value, (float, np.floating)):
        return f'<td class="n">{value:.4f}</td>'
    if isinstance(value, (int, np.integer)):
        return f'<td class="n">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _inside(workdir: pathlib.Path, path: str) -> pathlib.Path | None:
    """`path` (as the program named it, maybe from another folder) inside `workdir`, if it is there."""
    for candidate in (pathlib.Path(path), workdir / pathlib.Path(path).name):
        try:
            inside = workdir / candidate.resolve().relative_to(workdir.resolve())
        except ValueError:
            continue
        if inside.exists():
            return inside
    return None


def _outputs_section(workdir: pathlib.Path, outputs: dict) -> str:
    links = []
    for what, path in outputs.items():
        inside = _inside(workdir, str(path))
        if inside is not None and inside.is_file():  # folders are shown by the sections below
            links.append(f'<a href="{_href(workdir, inside)}">{html.escape(what)}</a>')
    return f'<p class="note">Files: {" · ".join(links)}</p>' if links else ""


def _summary_section(summary: dict) -> str:
    items = []
    for key, value in summary.items():
        if key == "outputs":
            continue
        flat = isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values())
        if flat and key != "by_split":
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        if isinstance(value, (str, int, float, bool)) or value is None:
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            items.append(f"<div><dt>{html.escape(key.replace('_', ' '))}</dt><dd>{html.escape(shown)}</dd></div>")
    out = [f'<h2>Summary</h2><dl class="kv">{"".join(items)}</dl>']
    by_split = summary.get("by_split") or {}
    if by_split:
        keys = list(dict.fromkeys(k for v in by_split.values() for k in v))
        head = '<th data-type="text">splits</th>' + "".join(
            f'<th data-type="number">{html.escape(k.replace("_", " "))}</th>' for k in keys)
        body = "".join(f"<tr><td>{html.escape(split)}</td>{''.join(_cell(k, v.get(k, '')) for k in keys)}</tr>"
                       for split, v in by_split.items())
        out.append(f'<h3>By split</h3><div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
                   f"<tbody>{body}</tbody></table></div>")
    return "".join(out)


def _files_block(workdir: pathlib.Path, paths: list[pathlib.Path]) -> str:
    """Pictures shown, meshes and grids linked by step."""
    pictures = [p for p in paths if p.suffix in (".png", ".gif")]
    parts = [f'<img src="{_href(workdir, p)}" alt="{html.escape(p.name)}">' for p in pictures]
    by_step: dict[str, list[pathlib.Path]] = {}
    for p in (p for p in paths if p.suffix in _MESHES):
        step = re.search(r"_(step\d+|mid)\.", p.name)
        by_step.setdefault(step.group(1) if step else p.stem, []).append(p)
    if by_step:
        links = [f"{html.escape(step)}: " + " ".join(f'<a href="{_href(workdir, p)}">{p.suffix[1:]}</a>' for p in group)
                 for step, group in sorted(by_step.items())]
        parts.append(f'<p class="meshes">{" · ".join(links)}</p>')
    return "".join(parts)


def _scores(table, row: int | None) -> str:
    if table is None or row is None:
        return ""
    keys = [k for k in ("splits", "novelty_iou", "nearest", "smoothness", "iou_start", "iou_end") if k in table]
    return '<p class="note">' + ", ".join(
        f"{k} {table[k][row]:.3f}" if table[k].dtype.kind == "f" else f"{k} {html.escape(str(table[k][row]))}"
        for k in keys) + "</p>"


def _row_of(table, id_i: str, id_j: str) -> int | None:
    if table is None:
        return None
    hit = np.flatnonzero((table["id_i"] == id_i) & (table["id_j"] == id_j))
    return int(hit[0]) if hit.size else None


def _export_cards(workdir: pathlib.Path, summary: dict, table, anchors: dict[int, list[str]]) -> str:
    """One card per exports/ folder (its strip, GIF and meshes); notes each card's table row."""
    exported = {f"{a}__{b}": (a, b) for a, b in summary.get("exported_pairs", [])}
    cards = []
    for k, folder in enumerate(sorted(p for p in (workdir / "exports").glob("*") if p.is_dir()), start=1):
        a, b = exported.get(folder.name, (None, None))
        row = _row_of(table, a, b) if a is not None else None
        if row is not None:
            anchors.setdefault(row, []).append(f"export-{k}")
        title = html.escape(f"{a} → {b}" if a is not None else folder.name)
        cards.append(f'<div class="card" id="export-{k}"><h3>{title}</h3>{_scores(table, row)}'
                     f"{_files_block(workdir, sorted(folder.rglob('*')))}</div>")
    return "<h2>Exported paths</h2>" + "".join(cards) if cards else ""


def _top_cards(workdir: pathlib.Path, table, topk: list[dict], anchors: dict[int, list[str]]) -> str:
    """One card per top-k entry (its scores and its files in topk/), linked to its export if any."""
    cards = []
    for rank, entry in enumerate(topk, start=1):
        pair = entry.get("pair", -1)
        row = pair if table is not None and 0 <= pair < len(table["pair"]) else _row_of(table, entry.get("id_i"),
                                                                                          entry.get("id_j"))
        exports = "".join(f'<p><a href="#{a}">strip, GIF and meshes ({a.replace("-", " ")})</a></p>'
                          for a in anchors.get(row, ()) if a.startswith("export"))
        if row is not None:
            anchors.setdefault(row, []).append(f"top-{rank}")
        mine = sorted(p for p in (workdir / "topk").glob(f"{rank - 1:02d}_*/**/*") if p.is_file()) + \
            sorted(p for p in (workdir / "topk").glob(f"{rank - 1:02d}_*") if p.is_file())
        facts = ", ".join(f"{k} {entry[k]:.3f}" if isinstance(entry[k], float) else f"{k} {html.escape(str(entry[k]))}"
                          for k in ("novelty_iou", "nearest_reference_id", "smoothness", "largest_part",
                                    "midpoint_occupancy") if k in entry)
        title = html.escape(f"#{rank}: {entry.get('id_i', entry.get('i'))} → {entry.get('id_j', entry.get('j'))}")
        cards.append(f'<div class="card" id="top-{rank}"><h3>{title}</h3><p class="note">{facts}</p>'
                     f"{_files_block(workdir, mine)}{exports}</div>")
    return "<h2>Most novel plausible midpoints (top-k)</h2>" + "".join(cards) if cards else ""


def _table_section(table, anchors: dict[int, list[str]], max_rows: int) -> str:
    if table is None:
        return '<h2>Paths</h2><p class="note">No per-pair table (pairs.npz or pairs.csv) in this run.</p>'
    count = len(table["pair"])
    order = np.argsort(table["novelty_iou"], kind="stable") if "novelty_iou" in table else np.arange(count)
    shown = set(order[:max_rows].tolist()) | set(anchors)
    rows = [r for r in order.tolist() if r in shown]
    columns = [c for c in _COLUMNS if c[0] in table]
    head = "".join(f'<th data-type="{kind}">{html.escape(title)}</th>' for _, title, kind in columns) + \
        '<th data-type="text">pictures</th>'
    body = []
    for r in rows:
        link = " ".join(f'<a href="#{a}">{a.replace("-", " ")}</a>' for a in anchors.get(r, ()))
        cells = "".join(_cell(key, table[key][r]) for key, _, _ in columns)
        body.append(f'<tr{" class=marked" if r in anchors else ""}>{cells}<td>{link}</td></tr>')
    note = (f"All {count:,} paths." if len(rows) == count else
            f"{len(rows):,} of {count:,} paths: the {min(max_rows, count):,} most novel (lowest novelty IoU) and "
            f"every exported and top-k one; the run's pair table has them all.")
    return (f'<h2>Paths</h2><p class="note">{note} Click a heading to sort.</p><div class="scroll"><table '
            f'class="sortable" id="pairs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def write_gallery(workdir: str | pathlib.Path, max_rows: int = MAX_ROWS) -> pathlib.Path:
    """Write `<workdir>/index.html` from an all-pairs run's outputs; returns its path."""
    workdir = pathlib.Path(workdir)
    if not (workdir / "summary.json").is_file():
        raise FileNotFoundError(f"{workdir / 'summary.json'} not found: the gallery shows a finished all-pairs run")
    summary = files.read_json(workdir / "summary.json")
    table = _pair_table(workdir)
    topk = files.read_json(workdir / "topk.json") if (workdir / "topk.json").is_file() else []
    anchors: dict[int, list[str]] = {}  # table row -> the cards showing it
    exports = _export_cards(workdir, summary, table, anchors)
    cards = _top_cards(workdir, table, topk, anchors) + exports
    figures = "".join(f'<figure><img src="{_href(workdir, p)}" alt="{html.escape(p.name)}">'
                      f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in sorted(workdir.glob("*.png")))
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(workdir.name)} · '
            f'lerpnet paths</title><link rel="icon" href="data:,"><style>{_STYLE}</style></head><body>'
            f"<h1>Interpolation paths: {html.escape(workdir.name)}</h1>{_summary_section(summary)}"
            f"{_outputs_section(workdir, summary.get('outputs') or {})}"
            f'{"<h2>Figures</h2>" + figures if figures else ""}{_table_section(table, anchors, max_rows)}{cards}'
            f"<script>{_SCRIPT}</script></body></html>\n")
    return files.write_text(workdir / "index.html", page)
