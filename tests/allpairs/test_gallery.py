"""The gallery page: built from a run's files, every picture and link resolving, the table sorting
in a real headless browser (skipped, with the reason, where none is installed)."""

import html.parser
import json
import pathlib
import shutil
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import numpy as np
import pytest

from lerpnet.allpairs.gallery import write_gallery
from lerpnet.data import procedural_chairs, save_binvox
from lerpnet.export import export_steps, figure_rows

IDS = ["chair_a", "chair_b", "chair c", "chair_d", "chair_e", "chair_f", "chair_g", "chair_h"]
SPLITS = ["val", "val", "train", "train", "train", "train", "train", "train"]
STEPS = 5
EXPORTED = [("chair_a", "chair c"), ("chair_d", "chair_e")]  # one id with a space: links must be quoted


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> pathlib.Path:
    """A small all-pairs workdir laid out as the program writes it."""
    workdir = tmp_path_factory.mktemp("interp")
    rng = np.random.default_rng(0)
    i, j = np.triu_indices(len(IDS), k=1)
    count = len(i)
    chairs = procedural_chairs(len(IDS), seed=3)
    np.savez(workdir / "pairs.npz", i=i.astype(np.int32), j=j.astype(np.int32), iou_start=rng.random(count),
             iou_end=rng.random(count), smoothness=rng.random(count), monotonicity=rng.random(count),
             novelty_iou=rng.random(count), nearest_reference=rng.integers(0, 3, count).astype(np.int32),
             plausible=rng.random(count) > 0.5, occupancy=rng.random((count, STEPS)).astype(np.float32),
             ids=np.array(IDS), splits=np.array(SPLITS), reference_ids=np.array(["ref_0", "ref_1", "ref_2"]))
    rows = []
    for a, b in EXPORTED:
        path = np.stack([chairs[IDS.index(a)]] * 2 + [chairs[IDS.index(b)]] * (STEPS - 2))
        export_steps(workdir / "exports" / f"{a}__{b}", path, f"{a}__{b}", ("obj", "glb"), image_size=48)
        rows.append((chairs[IDS.index(a)], path, chairs[IDS.index(b)]))
    figure_rows(workdir / "figure6.png", rows, EXPORTED, image_size=32)
    exported = [int(np.flatnonzero((i == IDS.index(a)) & (j == IDS.index(b)))[0]) for a, b in EXPORTED]
    novel = [int(p) for p in np.argsort(np.load(workdir / "pairs.npz")["novelty_iou"])]
    top = [p for p in novel if p not in exported][:2] + [exported[0]]  # the first exported path is also third
    topk = [{"pair": p, "i": int(i[p]), "j": int(j[p]), "novelty_iou": 0.1 + k, "nearest_reference": 0,
             "smoothness": 0.9, "largest_part": 1.0, "midpoint_occupancy": 0.05, "id_i": IDS[i[p]],
             "id_j": IDS[j[p]], "nearest_reference_id": "ref_0"} for k, p in enumerate(top)]
    (workdir / "topk.json").write_text(json.dumps(topk))
    for k, t in enumerate(topk):
        save_binvox(_mkdir(workdir / "topk") / f"{k:02d}_{t['id_i']}__{t['id_j']}_mid.binvox", chairs[t["i"]])
    summary = {"num_shapes": len(IDS), "shapes_by_split": {"val": 2, "train": 6}, "num_pairs": count,
               "steps": STEPS, "median_novelty_iou": 0.42, "device": {"device": "cpu", "jax": "0.11.2"},
               "by_split": {"train-train": {"paths": 15, "median_smoothness": 0.8},
                            "train-val": {"paths": 12, "median_smoothness": 0.7}},
               "top_k": topk, "exported_pairs": [list(p) for p in EXPORTED],
               "outputs": {"pairs": "elsewhere/interp/pairs.npz", "figure": str(workdir / "figure6.png"),
                           "exports": str(workdir / "exports"), "gone": str(workdir / "pairs.csv")}}
    (workdir / "summary.json").write_text(json.dumps(summary))
    return workdir


def _mkdir(path: pathlib.Path) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Page(html.parser.HTMLParser):
    """Every src/href and the rows of the paths table."""

    def __init__(self):
        super().__init__()
        self.targets, self.ids, self.rows, self._in_pairs = [], set(), [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.add(attrs.get("id"))
        self.targets += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "table":
            self._in_pairs = attrs.get("id") == "pairs"
        if tag == "tr" and self._in_pairs:
            self.rows.append(attrs.get("class"))


def _parse(page: pathlib.Path) -> _Page:
    parsed = _Page()
    parsed.feed(page.read_text())
    return parsed


def test_the_page_shows_the_run_and_every_link_resolves(run_dir):
    page = write_gallery(run_dir)
    assert page == run_dir / "index.html"
    text = page.read_text()
    parsed = _parse(page)
    local = [t for t in parsed.targets if not t.startswith(("#", "data:"))]
    assert local and all((run_dir / unquote(t)).is_file() for t in local), local
    assert all(t[1:] in parsed.ids for t in parsed.targets if t.startswith("#"))
    assert not [t for t in parsed.targets if t.startswith(("http:", "https:", "//"))]  # nothing from the network
    assert len(parsed.rows) - 1 == 28 and parsed.rows.count("marked") == 4  # header + 28; 2 exported, 3 top-k, 1 both
    assert text.count('href="#top-3"') == 1 and text.count('href="#export-1"') == 2  # from the table and top-k #3
    for suffix in ("_strip.png", ".gif", "_step00.obj", "_step04.glb"):
        assert any(t.endswith(suffix) and t.startswith("exports/chair_a__chair%20c/") for t in local), suffix
    assert "topk/00_" in text and "figure6.png" in text and "median novelty iou" in text and "ref_" in text
    assert '<a href="pairs.npz">pairs</a>' in text and '<a href="figure6.png">figure</a>' in text
    assert ">gone<" not in text
    # 2 val and 6 train shapes: 1 val-val and 12 train-val paths (and a train-val row in the by-split table)
    assert text.count("<td>val-val</td>") == 1 and text.count("<td>train-val</td>") == 12 + 1


def test_big_runs_cap_the_table_and_say_so(run_dir):
    parsed = _parse(write_gallery(run_dir, max_rows=5))
    assert len(parsed.rows) - 1 <= 5 + 4 and parsed.rows.count("marked") == 4
    assert "of 28 paths: the 5 most novel" in (run_dir / "index.html").read_text()


def test_missing_parts_are_left_out_but_the_summary_is_required(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        write_gallery(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "outputs"}))
    scores = np.load(run_dir / "pairs.npz")
    with (tmp_path / "pairs.csv").open("w") as f:
        f.write("i,j,id_i,id_j,split_i,split_j,novelty_iou,nearest_train_id,plausible\n")
        for p in range(len(scores["i"])):
            f.write(f"{scores['i'][p]},{scores['j'][p]},{IDS[scores['i'][p]]},{IDS[scores['j'][p]]},val,train,"
                    f"{scores['novelty_iou'][p]:.5g},ref_1,1\n")
    parsed = _parse(write_gallery(tmp_path))  # no pairs.npz, topk.json, topk/ or exports/
    assert len(parsed.rows) - 1 == 28 and parsed.rows.count("marked") == 0
    assert not [t for t in parsed.targets if not t.startswith(("#", "data:"))]


def _chromium():
    binary, driver = shutil.which("chromium") or shutil.which("google-chrome"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium missing: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def test_in_a_headless_browser_the_page_loads_clean_and_sorts(run_dir):
    page = write_gallery(run_dir)
    browser = _chromium()
    try:
        browser.get(page.as_uri())
        assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
        images = browser.execute_script(
            "return Array.from(document.images, i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
        assert len(images) >= 5 and all(ok for _, ok in images), images
        for href in browser.execute_script("return Array.from(document.links, a => a.href)"):
            url = urlparse(href)
            assert url.scheme == "file" and pathlib.Path(url2pathname(url.path)).is_file(), href
            assert not url.fragment or browser.execute_script("return !!document.getElementById(arguments[0])",
                                                              url.fragment), href

        def column(heading: str) -> list[str]:
            heads = browser.execute_script(
                "return Array.from(document.querySelectorAll('#pairs th'), h => h.textContent)")
            index = [h.strip() for h in heads].index(heading)
            return browser.execute_script("return Array.from(document.querySelectorAll('#pairs tbody tr'),"
                                          " r => r.cells[arguments[0]].textContent)", index)

        def click(heading: str) -> str:
            th = browser.execute_script("return Array.from(document.querySelectorAll('#pairs th'))"
                                        ".find(h => h.textContent.trim() === arguments[0])", heading)
            th.click()
            return th.get_attribute("aria-sort")

        before = [float(v) for v in column("smoothness")]
        assert before != sorted(before)  # rows start in novelty order
        assert click("smoothness") == "ascending"
        assert [float(v) for v in column("smoothness")] == sorted(before)
        assert click("smoothness") == "descending"
        assert [float(v) for v in column("smoothness")] == sorted(before, reverse=True)
        click("shape i")
        shapes = column("shape i")
        runs = [s for k, s in enumerate(shapes) if k == 0 or s != shapes[k - 1]]
        assert len(shapes) == 28 and len(runs) == len(set(shapes))  # each shape's rows are together
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        browser.quit()
