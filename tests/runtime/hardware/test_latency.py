"""Tests of the latency table (`nasc profile`), the latency term of the DARTS family, the latency
predictor, and the PC-DARTS search options."""

from __future__ import annotations

import copy
import functools
import io
import json
import random

import pytest
import torch

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import NascUsageError, load_space
from nasc.runtime.cli import main
from nasc.runtime.hardware.latency import (
    LatencyTerm,
    check_table,
    features,
    fit_predictor,
    profile,
    relative_error,
    sample_genotype,
    train_predictor,
)
from nasc.runtime.search.config import make_config, validate
from nasc.runtime.strategies.darts import derive_darts

TINY = {"C": 4, "N": 1, "size": 8}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def nb201():
    return load_space("nb201", catalog=catalog(), overrides=TINY)


@functools.cache
def table():
    return profile(nb201(), TINY, torch.device("cpu"), min_run_time=0.001, repeats=1)


def supernet(**options):
    net = compile_space(nb201(), TINY, CompileOptions(**options), seed=0)
    net.arch.set_mixing("softmax")
    return net


def test_profile_times_every_candidate_of_every_instance():
    """Every candidate of every cell instance has a latency: 0 for `none` (never computed),
    positive for the rest; a cell type's entry is the sum of its instances'."""
    found = table()
    assert found["space"] == "nb201" and found["params"]["C"] == 4
    net = supernet()
    stages = [i for i, m in enumerate(net.stages) if hasattr(m, "cell_type")]
    assert [entry["stage"] for entry in found["instances"]] == stages
    for entry in found["instances"]:
        for edge, ops in entry["ops"].items():
            assert set(ops) == set(net.arch.choices["nb201_cell"].candidates[0])
            assert ops["none"] == 0.0
            assert all(ms > 0 for op, ms in ops.items() if op != "none"), (edge, ops)
    for edge, ops in found["cells"]["nb201_cell"].items():
        for op, ms in ops.items():
            total = sum(entry["ops"][edge][op] for entry in found["instances"])
            assert ms == pytest.approx(total)
    # A 3x3 convolution costs more than a skip (an identity) on every edge.
    for ops in found["cells"]["nb201_cell"].values():
        assert ops["nor_conv_3x3"] > ops["skip_connect"]


def test_profile_prints_progress_lines_where_no_bar_shows():
    """Written to a log (no terminal), the profile says how far it got instead of a live bar."""
    from rich.console import Console

    log = io.StringIO()
    console = Console(file=log, force_terminal=False)
    profile(nb201(), TINY, torch.device("cpu"), min_run_time=0.0, repeats=1, console=console)
    lines = log.getvalue().splitlines()
    assert lines and lines[-1].startswith("profiling candidates: ")
    done, total = lines[-1].split(": ")[1].split(" ")[0].split("/")
    assert done == total and int(total) > 0


def test_a_table_of_another_space_or_size_is_refused():
    """A table for another space, other parameter values or missing a candidate is refused,
    naming the file and the entry."""
    net = supernet()
    other = copy.deepcopy(table())
    other["space"] = "darts"
    with pytest.raises(NascUsageError, match=r"lat\.json: the table is for the space `darts`"):
        check_table(other, net, "lat.json")
    wider = copy.deepcopy(table())
    wider["params"]["C"] = 16
    with pytest.raises(NascUsageError, match=r"params\.C is 16, but the search runs with C=4"):
        check_table(wider, net, "lat.json")
    holes = copy.deepcopy(table())
    del holes["cells"]["nb201_cell"]["n1->n3"]["nor_conv_3x3"]
    with pytest.raises(NascUsageError, match=r"cells\.nb201_cell\.n1->n3\.nor_conv_3x3"):
        check_table(holes, net, "lat.json")
    check_table(table(), net, "lat.json")


def test_expected_latency_is_the_softmax_weighted_sum():
    """The latency term is sum over edges and ops of softmax(alpha) * latency, and a step on it
    alone moves weight towards the cheaper candidates."""
    net = supernet()
    term = LatencyTerm(table(), net, "lat.json")
    weights = net.arch.op_weights("nb201_cell").detach()
    choices = net.arch.choices["nb201_cell"]
    want = sum(
        float(weights[row, column]) * table()["cells"]["nb201_cell"][edge][op]
        for row, (edge, ops) in enumerate(zip(choices.edges, choices.candidates))
        for column, op in enumerate(ops)
    )
    assert term(net).item() == pytest.approx(want, rel=1e-5)
    optimizer = torch.optim.SGD(net.arch.parameters(), lr=1.0)
    before = term(net).item()
    for _ in range(5):
        optimizer.zero_grad()
        term(net).backward()
        optimizer.step()
    assert term(net).item() < before
    column = choices.candidates[0].index("nor_conv_3x3")
    assert net.arch.op_weights("nb201_cell")[0, column].item() < weights[0, column].item()


@pytest.mark.slow
def test_search_with_latency_and_partial_channels_runs(tmp_path, capsys):
    """`nasc profile` writes a table that `nasc search --latency-weight` accepts, with
    --partial-channels and --edge-normalisation; a table of another width is refused before
    training."""
    out = tmp_path / "lat.json"
    args = ["-D", "C=4", "-D", "N=1", "--data", "digits"]
    assert (
        main(
            ["profile", "nb201", *args, "--min-run-time", "0.001", "--repeats", "1", "-o", str(out)]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    search = [
        "search", "nb201", "--strategy", "darts-1st", *args, "--subset", "32", "--epochs", "1",
        "--batch-size", "16", "--quiet", "--runs-dir", str(tmp_path / "runs"),
        "--partial-channels", "2", "--edge-normalisation", "--latency-weight", "0.1",
        "--latency-table", str(out),
    ]  # fmt: skip
    assert main(search) == 0
    run = next((tmp_path / "runs").iterdir())
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["partial_channels"] == 2 and config["latency_weight"] == 0.1
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    latency = [line for line in lines if line["event"] == "latency"]
    assert len(latency) == 1 and latency[0]["expected_ms"] > 0
    capsys.readouterr()
    wrong = [*search[:5], "C=8", *search[6:]]
    assert main(wrong) == 2
    assert "params.C is 4, but the search runs with C=8" in capsys.readouterr().err
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the refused search left no run


@pytest.mark.parametrize(
    "strategy, values, message",
    [
        ("isdarts", {"partial_channels": 4}, "--partial-channels is a DARTS-family option"),
        ("isdarts", {"edge_normalisation": True}, "--edge-normalisation is a DARTS-family"),
        ("darts-1st", {"latency_weight": 0.1}, "--latency-weight needs --latency-table"),
        ("darts-1st", {"latency_weight": -1.0}, "--latency-weight must be zero or positive"),
        ("darts-1st", {"partial_channels": 0}, "--partial-channels must be at least 1"),
    ],
)
def test_bad_pc_darts_and_latency_settings_are_refused(strategy, values, message):
    """IS-DARTS refuses the DARTS-family options; bad values are refused by flag."""
    with pytest.raises(NascUsageError, match=message):
        validate(make_config("nb201", strategy, values))


def test_derivation_uses_the_edge_weights():
    """With edge normalisation the DARTS space's `keep 2 per node` ranks edges by op weight
    times edge weight, as PC-DARTS derives: a strong op on an edge of tiny weight loses."""
    space = load_space("darts", catalog=catalog(), overrides={"C": 4, "layers": 3, "size": 8})
    net = compile_space(space, {"C": 4, "layers": 3, "size": 8}, CompileOptions(), seed=0)
    normed = compile_space(
        space, {"C": 4, "layers": 3, "size": 8}, CompileOptions(edge_normalisation=True), seed=0
    )
    for model in (net, normed):
        model.arch.set_mixing("softmax")
    choices = net.arch.choices["normal"]
    into = [row for row, edge in enumerate(choices.edges) if edge.endswith("->n2")]
    column = choices.candidates[into[0]].index("sep_conv_3x3")
    with torch.no_grad():
        for model in (net, normed):
            model.arch.alphas["normal"][into[0], column] = 5.0  # the strongest op of node n2
        normed.arch.betas["normal"][into[0]] = -10.0  # on an edge that weighs almost nothing
    plain_pick = derive_darts(net).cells["normal"][choices.edges[into[0]]]
    normed_pick = derive_darts(normed).cells["normal"][choices.edges[into[0]]]
    assert plain_pick == ("sep_conv_3x3",)
    assert normed_pick == ()


@pytest.mark.slow
def test_the_predictor_fits_an_additive_latency():
    """The MLP learns latencies that add up over the chosen candidates to under 10% relative
    error on held-out architectures (a table's sum plus noise, as measured ones behave)."""
    net = supernet()
    rng = random.Random(0)
    cost = torch.rand(
        len(features(net, sample_genotype(net, rng))), generator=torch.Generator().manual_seed(0)
    )
    rows = torch.stack([features(net, sample_genotype(net, rng)) for _ in range(160)])
    noise = 1 + 0.02 * torch.randn(len(rows), generator=torch.Generator().manual_seed(1))
    latency = (0.5 + rows @ cost) * noise
    predictor = fit_predictor(rows[:120], latency[:120], steps=800)
    with torch.no_grad():
        error = relative_error(predictor(rows[120:]), latency[120:])
    assert error < 0.10
    assert relative_error(torch.full((40,), float(latency[:120].mean())), latency[120:]) > 2 * error


@pytest.mark.slow
def test_predictor_reports_held_out_error():
    """`--predictor N` measures N distinct sampled networks and reports a held-out error."""
    found = train_predictor(nb201(), TINY, torch.device("cpu"), 6, min_run_time=0.001, repeats=1)
    assert found["samples"] == 6 and found["held_out"] == 1
    assert 0 <= found["relative_error"] < float("inf")
    assert found["latency_ms"]["min"] > 0
    with pytest.raises(NascUsageError, match="--predictor 2: too few"):
        train_predictor(nb201(), TINY, torch.device("cpu"), 2)


@pytest.mark.slow
def test_a_pc_darts_latency_search_resumes_to_the_same_result(tmp_path):
    """darts-1st with partial channels, edge normalisation and a latency term, stopped after one
    epoch and resumed, ends with the same alphas, betas, genotype and metrics as a whole run."""
    from nasc.runtime.data.images import load_digits
    from nasc.runtime.runs.rundir import RunDir
    from nasc.runtime.search.loop import Searcher
    from nasc.runtime.tasks import bind_data

    data = load_digits().subset(64, seed=0)
    space = load_space("nb201", catalog=catalog())
    defines = bind_data(space, {"C": 4, "N": 1}, data)
    path = tmp_path / "lat.json"
    found = profile(space, defines, torch.device("cpu"), min_run_time=0.001, repeats=1)
    path.write_text(json.dumps(found))
    values = dict(
        epochs=2, batch_size=16, device="cpu", seed=0, partial_channels=2,
        edge_normalisation=True, latency_weight=0.1, latency_table=str(path),
    )  # fmt: skip
    config = make_config("nb201", "darts-1st", values)

    def searcher(run):
        return Searcher(space, defines, config, data, torch.device("cpu"), run=run, fingerprint="t")

    whole_run = RunDir.create(tmp_path / "a", "nb201", "darts-1st")
    whole_run.write_json("config.json", {})
    whole = searcher(whole_run)
    whole.run_epochs()
    whole_run.close()
    part_run = RunDir.create(tmp_path / "b", "nb201", "darts-1st")
    part_run.write_json("config.json", {})
    first = searcher(part_run)
    first.run_one_epoch()
    part_run.close()
    resumed_run = RunDir.open(part_run.path)
    second = searcher(resumed_run)
    assert second.restore() and second.epoch == 1
    second.run_epochs()
    resumed_run.close()

    assert whole.strategy.derive(whole.net) == second.strategy.derive(second.net)
    for name, parameter in whole.net.arch.named_parameters():
        assert torch.equal(parameter, dict(second.net.arch.named_parameters())[name]), name
    timing = ("seconds", "images_per_s")
    lines = [
        [{k: v for k, v in line.items() if k not in timing} for line in run.metrics_lines()]
        for run in (whole_run, resumed_run)
    ]
    assert lines[0] == lines[1]
    assert any(line["event"] == "latency" for line in lines[0])


def test_the_memory_estimate_knows_partial_channels():
    """The pre-flight memory estimate of a search falls with --partial-channels, as the
    benchmark measures (about a third at K=4 on NB201)."""
    from nasc.runtime.hardware.memory import estimate_training_bytes

    space = load_space("nb201", catalog=catalog())
    full, part = (
        estimate_training_bytes(space, {}, 64, CompileOptions(partial_channels=k)) for k in (1, 4)
    )
    assert 0.2 * full < part < 0.6 * full


@pytest.mark.parametrize("strategy", ["gdas", "drnas", "ms-darts"])
def test_sampling_strategies_take_the_latency_term(strategy, tmp_path):
    """GDAS, DrNAS and MS-DARTS add lambda * the drawn architecture's latency to their
    architecture loss: the same draws move the alphas elsewhere than without the term, towards a
    lower expected latency, and each epoch records it."""
    import types

    from nasc.runtime.strategies import make_strategy

    path = tmp_path / "lat.json"
    path.write_text(json.dumps(table()))
    batch = (torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(4))

    def arch_steps(weight):
        torch.manual_seed(0)  # the same draws with and without the term
        values = {"latency_weight": weight, "latency_table": str(path), "arch_lr": 0.05}
        strategy_ = make_strategy(strategy, make_config("nb201", strategy, values))
        net = compile_space(nb201(), TINY, seed=0)
        strategy_.setup(net)
        searcher = types.SimpleNamespace(
            net=net, epoch=0, dist=None, criterion=torch.nn.CrossEntropyLoss(),
            logits=lambda images: net(images),
        )  # fmt: skip
        for _ in range(5):
            strategy_.arch_step(searcher, batch, batch)
        records = strategy_.end_of_epoch(searcher, 1)  # clears the draw: softmax weights again
        return net, records

    plain, none = arch_steps(0.0)
    weighted, [record] = arch_steps(1e4)
    assert none == [] and record["event"] == "latency"
    term = LatencyTerm(table(), plain, str(path))
    with torch.no_grad():
        assert record["expected_ms"] == pytest.approx(term(weighted).item())
        assert term(weighted).item() < term(plain).item()


def test_a_partial_channel_count_that_no_edge_takes_is_refused_before_the_data(
    tmp_path, monkeypatch, capsys
):
    """`--partial-channels 3` on 4-channel edges is refused from the plan, before any data is
    read (a CIFAR-10 download would come first otherwise) and before a run directory exists."""
    import nasc.runtime.tasks.classification as classification

    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the check")

    monkeypatch.setattr(classification, "load_data", no_data)
    argv = ["search", "nb201", "-D", "C=4", "-D", "N=1", "--strategy", "darts-1st",
            "--partial-channels", "3", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 2
    assert "which 3 does not divide" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
