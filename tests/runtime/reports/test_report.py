"""Tests of the pictures and the HTML report of a search run."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image
from tiny_search import TINY_SEARCH

from nasc.compiler import catalog
from nasc.dsl import load_space
from nasc.dsl.macro import instantiate
from nasc.runtime.cli import main
from nasc.runtime.reports.pages import draw_space

TABLE_HEADER = (
    "CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,"
    "ImageNetTestAccuracy200Epochs,ArchitectureString\n"
)


def assert_real_picture(path, min_width=400, min_height=200):
    """A valid PNG of a plausible size that is not one flat colour."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= min_width and height >= min_height
        pixels = torch.from_numpy(numpy.asarray(image.convert("L"), dtype="float32")).flatten()
    assert pixels.std() > 10, f"{path} is blank"
    dark = (pixels < 128).float().mean()
    assert 0.005 < dark < 0.5, f"{path} has too little or too much ink ({dark:.3f})"


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    """A tiny finished IS-DARTS search with an NB201 table holding its cell."""
    root = tmp_path_factory.mktemp("report")
    table = root / "table.csv"
    runs = root / "runs"
    args = [
        "search",
        "nb201",
        *TINY_SEARCH,
        "--runs-dir",
        str(runs),
    ]
    assert main(args) == 0
    [run] = runs.iterdir()
    found = (run / "nb201.txt").read_text().strip()
    # A table of three cells, one of them the found one, so the report can rank it.
    rows = [
        f"90.5,70.1,40.2,{found}",
        "54.3,15.6,16.3,|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|"
        "skip_connect~1|skip_connect~2|",
        "94.37,73.5,46.3,|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|"
        "nor_conv_3x3~1|nor_conv_3x3~2|",
    ]
    table.write_text(TABLE_HEADER + "\n".join(rows) + "\n")
    result = json.loads((run / "result.json").read_text())
    result["nb201_table"] = str(table)
    (run / "result.json").write_text(json.dumps(result))
    assert main(["report", str(run)]) == 0
    return run


def test_every_search_writes_a_report(search_run):
    """The search itself left report.html and its figures in the run directory."""
    html = (search_run / "report.html").read_text()
    for name in ("found.png", "importance.png", "curves.png", "space.png", "nb201.png"):
        assert f'src="figures/{name}"' in html
        assert_real_picture(search_run / "figures" / name)


def test_the_importance_figure_has_a_panel_per_subset(search_run):
    """One panel per comparison subset: the six edges of the NB201 cell."""
    from nasc.runtime.reports.pages import draw_importance

    history = json.loads((search_run / "importance.json").read_text())
    drawn = draw_importance(history, search_run / "figures" / "again.png")
    assert drawn["panels"] == 6
    assert_real_picture(drawn["path"])


@pytest.mark.parametrize(
    "name, panels", [("nb201", 1), ("darts", 2), ("tricell", 1), ("macro_choice", 0)]
)
def test_show_draws_cells_and_the_network(name, panels, tmp_path):
    """`nasc show --draw` writes a picture with one panel per cell type (PNG and SVG)."""
    space = load_space(name, catalog=catalog())
    drawn = draw_space(space, instantiate(space, {}, catalog()), tmp_path / "cells.png")
    assert drawn["panels"] == panels
    assert_real_picture(tmp_path / "cells.png")
    assert main(["show", name, "--draw", str(tmp_path / "cells.svg")]) == 0
    assert (tmp_path / "cells.svg").read_text().lstrip().startswith("<?xml")


def test_seeds_report_shows_the_found_cells_side_by_side(tmp_path):
    """`--seeds 2` with a table of all 15,625 cells writes one report: both genotypes, their
    accuracies and the mean +- std, and a figure with one column per seed."""
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    rows = []
    for picks in itertools.product(ops, repeat=6):
        p = [f"{op}~{j}" for op, j in zip(picks, [0, 0, 1, 0, 1, 2])]
        arch = f"|{p[0]}|+|{p[1]}|{p[2]}|+|{p[3]}|{p[4]}|{p[5]}|"
        score = sum(ops.index(op) for op in picks)  # a made-up accuracy that differs by cell
        rows.append(f"{50 + score},{20 + score},{10 + score},{arch}")
    table = tmp_path / "all.csv"
    table.write_text(TABLE_HEADER + "\n".join(rows) + "\n")
    runs = tmp_path / "runs"
    args = ["search", "nb201", *TINY_SEARCH, "--runs-dir", str(runs), "--seeds", "2"]
    assert main([*args, "--nb201-table", str(table)]) == 0
    [seeds] = runs.glob("seeds-*")
    summary = json.loads((seeds / "summary.json").read_text())
    cifar = [run["nb201_accuracy"]["cifar10"] for run in summary["runs"]]
    assert summary["nb201_accuracy"]["cifar10"]["mean"] == pytest.approx(sum(cifar) / 2)
    assert summary["nb201_accuracy"]["cifar10"]["std"] == pytest.approx(
        abs(cifar[0] - cifar[1]) / 2**0.5
    )
    page = (seeds / "report.html").read_text()
    assert 'data-seeds="2"' in page and "&plusmn;" in page
    for run in summary["runs"]:
        assert run["nb201"] in page
        assert os.path.relpath(Path(run["run"]) / "report.html", seeds) in page
    assert_real_picture(seeds / "figures" / "found.png", min_width=800)
    (seeds / "report.html").unlink()
    assert main(["report", str(seeds)]) == 0
    assert (seeds / "report.html").read_text() == page


def test_seeds_report_shows_both_supernet_accuracies_and_their_coverage(tmp_path):
    """Without a table, the `--seeds` report still gives each seed's supernet accuracy before
    and after discretisation and their mean and spread over the seeds, saying how many it
    covers, as the printed summary does."""
    import io

    from rich.console import Console

    from nasc.dsl import find_space, parse_arch, read_source
    from nasc.runtime.search.run import summarise_seeds

    space = load_space("nb201", catalog=catalog())
    cells = ["|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|"]
    cells.append("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|avg_pool_3x3~2|")
    results = []
    for seed, (cell, before) in enumerate(zip(cells, (90.0, 80.0))):
        run = tmp_path / f"run-{seed}"
        run.mkdir()
        (run / "space.nas").write_text(read_source(find_space("nb201")))
        (run / "config.json").write_text(json.dumps({"defines": {"C": 4, "N": 1}}))
        results.append(
            {
                "space": "nb201",
                "strategy": "isdarts",
                "seed": seed,
                "run": str(run),
                "genotype": parse_arch(space, cell).to_json()["cells"],
                "nb201": cell,
                "search_seconds": 10.0,
                "supernet_test_acc": {"before_discretisation": before, "discretised": 50.0},
            }
        )
    summarise_seeds(Console(file=io.StringIO()), tmp_path / "seeds", results)
    page = (tmp_path / "seeds" / "report.html").read_text()
    assert "supernet test (before discretisation)" in page
    assert "<td>90.00%</td>" in page and "<td>80.00%</td>" in page
    assert "85.00 &plusmn; 7.07% (2 of 2 seeds)" in page
    assert "50.00 &plusmn; 0.00% (2 of 2 seeds)" in page


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.mark.skipif(
    _chromium() is None,
    reason="headless Chromium is not installed (.ci/run installs Debian's "
    "chromium package; `apt-get install chromium` here)",
)
def test_the_report_renders_in_a_browser_without_broken_images(search_run, tmp_path):
    """Headless Chromium loads report.html: every image decodes, and the screenshot is not
    blank."""
    browser = _chromium()
    url = (search_run / "report.html").resolve().as_uri()
    profile = tmp_path / "profile"
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    environment = dict(os.environ, HOME=str(tmp_path))
    dom = subprocess.run(
        [*common, "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert 'data-broken-images="0"' in dom.stdout, dom.stderr[-2000:]
    assert 'data-images="5"' in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1280,2400", url],
        capture_output=True,
        timeout=120,
        env=environment,
    )
    assert_real_picture(shot, min_width=1000, min_height=1000)


def test_the_importance_figure_has_one_legend_by_op_and_edge(tmp_path, monkeypatch):
    """Panels comparing 8 ops on 4 edges share one figure legend (8 op colours, 4 edge
    styles), instead of a 32-entry legend over each panel."""
    from nasc.runtime.reports.pages import draw_importance

    ops = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"]
    ops += ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
    sources = ["c_k-2", "c_k-1", "n0", "n1"]
    history = [
        {
            "epoch": epoch,
            "subsets": [
                {
                    "cell": "normal",
                    "subset": node,
                    "k": 2,
                    "candidates": [
                        {"edge": f"{s}->{node}", "op": op, "F": 1.0 + i + j, "discarded": False}
                        for i, s in enumerate(sources[: 2 + n])
                        for j, op in enumerate(ops)
                    ],
                }
                for n, node in enumerate(["n0", "n1", "n2"])
            ],
        }
        for epoch in (4, 6)
    ]
    import matplotlib.pyplot as plt

    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    drawn = draw_importance(history, tmp_path / "importance.png")
    assert drawn["panels"] == 3
    # Shrink steps happen at epochs: the axis shows whole epochs, never 4.5.
    ticks = [t for ax in closed[0].axes if ax.get_title() for t in ax.get_xticks()]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert drawn["legend_entries"] == len(ops) + len(sources) + 1  # and "discarded"
    assert_real_picture(drawn["path"])


def test_product_nodes_are_drawn_with_their_combiner():
    """A product node's box says it multiplies (x); sum nodes stay plain."""
    from nasc.dsl import parse_space
    from nasc.runtime.reports.pages import _pyplot, draw_cell

    space = parse_space(
        """
        ops o = {skip_connect, nor_conv_1x1}
        cell c(x) { a = x:o  b = x:o * a:o  keep 1 per edge  out b }
        network n(C = 4) { input(1, 8) stem conv3x3_bn(C) c @ C head pool_linear(10) }
        """,
        catalog=catalog(),
    )
    plt = _pyplot()
    figure, ax = plt.subplots()
    draw_cell(ax, space.cell("c"))
    texts = [text.get_text() for text in ax.texts]
    plt.close(figure)
    assert "b \u00d7" in texts and "a" in texts


def test_the_run_records_its_measurement_protocol(search_run):
    """config.json, every shrink line, result.json and the report name the protocol and the
    measurement's time."""
    config = json.loads((search_run / "config.json").read_text())
    assert config["config"]["measure_on"] == "reference"
    lines = [json.loads(line) for line in (search_run / "metrics.jsonl").read_text().splitlines()]
    shrinks = [line for line in lines if line.get("event") == "shrink"]
    assert shrinks and all(line["measure_on"] == "reference" for line in shrinks)
    assert all(line["measure_seconds"] > 0 and line["samples"] > 0 for line in shrinks)
    result = json.loads((search_run / "result.json").read_text())
    assert result["measure_on"] == "reference"
    assert result["measure_seconds"] == pytest.approx(sum(s["measure_seconds"] for s in shrinks))
    assert (
        "information measured on</th><td>reference protocol"
        in (search_run / "report.html").read_text()
    )


def _copy(run, tmp_path):
    """A copy of a finished run, free to change."""
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    (copy / ".lock").unlink(missing_ok=True)
    return copy


def test_a_report_that_dies_while_drawn_keeps_the_previous_pictures_and_page(
    search_run, tmp_path, monkeypatch
):
    """`nasc report` failing while it saves its third figure (part of it written) leaves
    report.html as it was and every figure a whole picture, none torn or empty."""
    from matplotlib.figure import Figure

    run = _copy(search_run, tmp_path)
    page = (run / "report.html").read_bytes()
    saved, real = [], Figure.savefig

    def dies_on_the_third(self, target, **kwargs):
        saved.append(target)
        if len(saved) < 3:
            return real(self, target, **kwargs)
        handle = target if hasattr(target, "write") else open(target, "wb")
        handle.write(b"\x89PNG\r\n")
        raise RuntimeError("killed while drawing")

    monkeypatch.setattr(Figure, "savefig", dies_on_the_third)
    with pytest.raises(RuntimeError, match="killed while drawing"):
        main(["report", str(run)])
    monkeypatch.undo()
    assert (run / "report.html").read_bytes() == page
    for figure in (run / "figures").iterdir():
        assert_real_picture(figure)
    assert not list(run.rglob(".*.tmp-*"))


def test_a_search_whose_report_was_never_finished_draws_it_on_resume(search_run, tmp_path):
    """A search killed while drawing its first report (result.json written, report.html not)
    draws the report when resumed."""
    run = _copy(search_run, tmp_path)
    (run / "report.html").unlink()
    shutil.rmtree(run / "figures")
    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    assert 'src="figures/found.png"' in (run / "report.html").read_text()
    assert_real_picture(run / "figures" / "found.png")
