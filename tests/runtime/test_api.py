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


def test_export_refuses_an_unknown_format_listing_the_known_ones():
    """`nasc.export(..., "onnx")` is refused, naming the known formats, before anything is read."""
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    with pytest.raises(nasc.NascUsageError, match="unknown export format `onnx`") as info:
        nasc.export("nb201", "onnx", arch=arch)
    assert "nas, genotype, nb201, darts, torchscript, qasm, module" in info.value.hint


@pytest.mark.parametrize("path", ["", "   "])
def test_load_space_says_an_empty_path_is_empty(path):
    """An empty path is named as such, not as the current folder or a missing file."""
    with pytest.raises(nasc.NascUsageError, match="the space's path is empty"):
        nasc.load_space(path)


TWO_CELLS = """
ops o = {none, skip_connect, nor_conv_1x1}
cell a(x) { n1 = x:o  n2 = x:o + n1:o  keep 1 per edge  out n2 }
cell b(x) { n1 = x:o  n2 = x:o + n1:o  keep 2 per node  out n2 }
network two(C = 4) { input(1, 8) stem conv3x3_bn(C) a @ C b @ C head pool_linear(10) }
"""


def test_genotypes_enumerate_every_architecture_lazily():
    """`Space.genotypes()` yields each architecture once, each one `with_arch` accepts; it is
    lazy, so the first of DARTS' ~10^18 comes at once."""
    space = nasc.load_space(TWO_CELLS)
    every = space.genotypes()
    assert iter(every) is every  # an iterator, not a list
    found = list(every)
    # `a`: 3 ops on each of 3 edges; `b`: 2 of the 3 into n1, and 2 of the 6 into n2.
    assert len(found) == space.architectures() == 27 * 3 * 15
    assert len({json.dumps(g.to_json(), sort_keys=True) for g in found}) == len(found)
    for genotype in found[:: len(found) // 5]:
        assert space.with_arch(genotype).is_fixed
    first = next(nasc.load_space("darts").genotypes())
    assert nasc.load_space("darts").with_arch(first).is_fixed


def test_sample_draws_seeded_architectures_of_the_space():
    """`Space.sample(n, seed=...)` draws n architectures: the same seed draws the same, another
    seed others, and every one is an architecture of the space."""
    space = nasc.load_space("nb201")
    drawn = space.sample(5, seed=1)
    assert len(drawn) == 5 and drawn == space.sample(5, seed=1)
    assert drawn != space.sample(5, seed=2)
    for genotype in drawn:
        assert space.with_arch(genotype).is_fixed
    with pytest.raises(nasc.NascUsageError, match="count"):
        space.sample(-1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: nasc.search("nb201", epochs=2.5), "epochs=2.5: must be an int"),
        (lambda: nasc.search("nb201", epochs="2"), "epochs='2': must be an int, not a str"),
        (
            lambda: nasc.search("nb201", strategy=["isdarts"]),
            "strategy=['isdarts']: must be a str, not a list",
        ),
        (lambda: nasc.search("nb201", subset="64"), "subset='64': must be an int"),
        (lambda: nasc.search("nb201", lr=float("nan")), "lr=nan: must be a finite number"),
        (lambda: nasc.search("nb201", arch_lr=float("inf")), "arch_lr=inf: must be a finite"),
        (lambda: nasc.search("nb201", tensorboard="yes"), "tensorboard='yes': must be a bool"),
        (lambda: nasc.search("nb201", ops="my_ops"), "ops='my_ops': must be a list of"),
        (lambda: nasc.search("nb201", defines={"C": 4.5}), "defines={'C': 4.5}: must be"),
        (lambda: nasc.train("nb201", keep_macro=1), "keep_macro=1: must be a bool, not an int"),
        (lambda: nasc.train("nb201", drop_path=float("nan")), "drop_path=nan: must be a finite"),
        (lambda: nasc.evaluate("runs/x", batch_size=2.5), "batch_size=2.5: must be an int"),
    ],
)
def test_keywords_of_the_wrong_type_are_refused_naming_them(call, message, tmp_path, monkeypatch):
    """Every keyword of `nasc.search`, `nasc.train` and `nasc.evaluate` is checked against the
    type of its request or config field, before anything runs: the message names the keyword,
    the value and the type it takes."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(nasc.NascUsageError) as info:
        call()
    assert message in str(info.value)
    assert not list(tmp_path.iterdir())


def test_a_whole_float_is_taken_for_an_int_field():
    """`epochs=3.0` means 3 (an int), as a config needs it; numbers are not rounded otherwise.
    A request's own fields are converted when it is made, its config overrides when the search
    reads them (`search_overrides`, before anything runs)."""
    from nasc.runtime.search.run import search_overrides

    request = nasc.SearchRequest(space="nb201", overrides={"epochs": 3.0, "lr": 1}, subset=64.0)
    overrides = search_overrides(request.overrides)
    assert overrides["epochs"] == 3 and isinstance(overrides["epochs"], int)
    assert request.subset == 64 and isinstance(request.subset, int)
    assert overrides["lr"] == 1


def test_the_architectures_snippet_of_docs_python_md_runs(capsys):
    """The blocks of docs/python.md up to the architectures' run as written, fast (no search):
    enumerating, sampling and fixing an architecture print what their comments say."""
    blocks = _docs_blocks()
    last = next(n for n, block in blocks if "space.genotypes()" in block)
    names: dict = {}
    for number, block in blocks[:last]:
        exec(compile(block, f"docs/python.md, python block {number}", "exec"), names)
    out = capsys.readouterr().out
    assert "3 True\nTrue 1\n2\n" in out
    assert names["fixed"].is_fixed and not names["space"].is_fixed


def test_well_typed_requests_are_made_as_given():
    """Requests of the right types are made unchanged: an eval request (which has no preset
    fields), and search and train requests whose unset preset fields are None."""
    evaluation = nasc.EvalRequest(checkpoint="runs/x", batch_size=64, image_size=None)
    assert (evaluation.checkpoint, evaluation.batch_size) == ("runs/x", 64)
    search = nasc.SearchRequest(space="nb201", overrides={"epochs": 3, "lr": None}, plugins=["m"])
    assert search.overrides == {"epochs": 3, "lr": None} and search.plugins == ["m"]
    train = nasc.TrainRequest(arch_file="a.nas", overrides={"cutout": 0}, keep_macro=True)
    assert train.overrides == {"cutout": 0} and train.keep_macro
