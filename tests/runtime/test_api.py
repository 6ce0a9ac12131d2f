"""The Python API (`import nasc`): the snippets of docs/python.md run as written; the command line
and the API reach the same code; `import nasc` stays cheap; search.py and train.py take config
objects and import nothing from the command line."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_search import TINY_SEARCH

import nasc
from nasc.runtime.cli import main

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, re.S | re.M)


def _docs_blocks() -> list[tuple[int, str]]:
    """The numbered `python` blocks of docs/python.md."""
    return list(enumerate(python_blocks((ROOT / "docs" / "python.md").read_text()), start=1))


def _needs_sweep_extra(block: str) -> bool:
    return "nasc.sweep(" in block


@pytest.mark.slow
def test_the_snippets_of_docs_python_md_run(tmp_path, monkeypatch, capsys):
    """Every `python` block of docs/python.md but the sweep's (it needs the optional sweep extra;
    the next test runs it), in order in one namespace: a search, a train and an export on the
    embedded digits; then what they wrote is checked."""
    blocks = _docs_blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    for number, block in blocks:
        if not _needs_sweep_extra(block):
            exec(compile(block, f"docs/python.md, python block {number}", "exec"), names)
    out = capsys.readouterr().out
    assert "nb201 15625" in out and "unknown parameter `depth`" in out
    found, trained = names["found"], names["trained"]
    assert isinstance(found, nasc.SearchResult) and re.fullmatch(
        r"(\|[a-z_0-9~|+]+\|)", found.nb201
    )
    assert found.nb201 == json.loads((found.run_dir / "result.json").read_text())["nb201"]
    assert [line["epoch"] for line in found.epochs] == [1, 2, 3]
    assert trained.model_path.is_file() and trained.result["epochs"] == 1
    assert "'images': 360" in out  # nasc.evaluate on the whole digits test split
    assert nasc.load_space("found.nas").is_fixed
    network = names["network"]
    assert sum(p.numel() for p in network.parameters()) == trained.parameters


@pytest.mark.slow
def test_the_sweep_snippet_of_docs_python_md_runs(tmp_path, monkeypatch):
    """The sweep block of docs/python.md, where the optional sweep extra (submitit) is
    installed (the test extra installs it)."""
    pytest.importorskip("submitit")
    [(number, block)] = [(n, b) for n, b in _docs_blocks() if _needs_sweep_extra(b)]
    monkeypatch.chdir(tmp_path)
    names: dict = {"nasc": nasc}
    exec(compile(block, f"docs/python.md, python block {number}", "exec"), names)
    assert [group["done"] for group in names["table"]["groups"]] == [1, 1]


def test_import_nasc_and_load_space_do_not_import_torch():
    """`import nasc`, loading a space (by name or as text) and reading its size stay torch-free,
    as `nasc check` does."""
    text = (ROOT / "spaces" / "nb201.nas").read_text()
    script = (
        "import sys, nasc\n"
        "assert nasc.load_space('darts').architectures() > 1\n"
        f"assert nasc.load_space({text!r}, C=4).defines == {{'C': 4}}\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_search_and_train_import_nothing_from_the_command_line():
    """Arrows run one way: only the command line's own modules import `cli`."""
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                assert not module.endswith("cli"), f"{path} imports {module}"


def test_unknown_settings_are_refused_before_anything_runs(tmp_path):
    space = nasc.load_space("nb201", C=4, N=1)
    with pytest.raises(nasc.NascUsageError, match="unknown search setting `epoch`"):
        nasc.search(space, data="digits", runs_dir=tmp_path, epoch=3)
    with pytest.raises(nasc.NascUsageError, match="unknown training setting `epoch`"):
        nasc.train(space.with_arch("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), epoch=1)
    with pytest.raises(nasc.NascUsageError, match="parameter `C` must be an integer"):
        nasc.load_space("nb201", C="4")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_api_and_the_command_line_find_the_same(tmp_path):
    """`nasc search` and `nasc.search` with the same settings end with the same genotype and
    the same metrics: the command line is a layer over the same function. `on_record` sees every
    metrics record as it is logged."""
    assert main(["search", "nb201", *TINY_SEARCH, "--seed", "2", "--runs-dir", str(tmp_path)]) == 0
    [cli_run] = tmp_path.iterdir()
    records: list[dict] = []
    found = nasc.search(
        nasc.load_space("nb201", C=4, N=1),
        data="digits",
        subset=64,
        runs_dir=tmp_path / "api",
        epochs=3,
        shrink_steps=2,
        shrink_interval=1,
        batch_size=16,
        measure_samples=16,
        seed=2,
        on_record=records.append,
    )
    timing = ("seconds", "images_per_s", "measure_seconds")

    def losses(run: Path):
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in line.items() if k not in timing} for line in lines]

    assert (cli_run / "genotype.json").read_text() == (found.run_dir / "genotype.json").read_text()
    assert losses(cli_run) == losses(found.run_dir)
    # The callback saw each record as it was logged: per-epoch metrics for a tuner.
    epochs = [record for record in records if record["event"] == "epoch"]
    assert [(r["epoch"], r["test_acc"]) for r in epochs] == [
        (line["epoch"], line["test_acc"]) for line in found.epochs
    ]
    assert [r["event"] for r in records].count("shrink") == 2
    assert (
        json.loads((cli_run / "config.json").read_text())["config"]
        == json.loads((found.run_dir / "config.json").read_text())["config"]
    )


@pytest.mark.slow
def test_a_search_returns_its_result_from_memory_and_writes_only_when_asked(
    tmp_path, monkeypatch
):
    """`nasc.search` returns what its run directory holds, built in memory; with runs_dir=None
    it writes nothing, and the found architecture still trains; progress goes to callbacks."""
    from nasc.runtime.runs.events import RunEvents

    class Seen(RunEvents):
        def __init__(self):
            self.messages, self.epochs, self.found = [], [], None

        def message(self, text):
            self.messages.append(text)

        def start_epoch(self, epoch, epochs, steps, done=0):
            self.epochs.append(epoch)

        def finished(self, result):
            self.found = result

    monkeypatch.chdir(tmp_path)
    space = nasc.load_space("nb201", C=4, N=1)
    settings = dict(data="digits", subset=32, epochs=2, shrink_steps=1, shrink_interval=1,
                    batch_size=16, measure_samples=16, seed=3)  # fmt: skip
    seen = Seen()
    found = nasc.search(space, runs_dir=tmp_path / "runs", events=seen, **settings)
    read = nasc.SearchResult.from_run(found.run_dir)
    assert found.result == read.result and found.metrics == read.metrics
    assert found.genotype == read.genotype and found.arch == read.arch
    assert seen.epochs == [1, 2] and seen.found is found
    assert seen.messages[0] == f"run directory: {found.run_dir}"
    alone = nasc.search(space, runs_dir=None, **settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert alone.run_dir is None and alone.result["run"] is None
    assert alone.genotype == found.genotype and alone.nb201 == found.nb201
    with pytest.raises(nasc.NascUsageError, match="wrote no run directory"):
        alone.export("nb201")
    trained = nasc.train(alone, data="digits", subset=32, defines={"C": 4, "N": 1},
                         runs_dir=None, epochs=1, batch_size=16)  # fmt: skip
    assert trained.run_dir is None and trained.result["epochs"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
