"""The language-modelling task: the embedded grammar corpus and its entropy floor, corpora from
files, batchified token streams, perplexity, states carried across batches, and tiny searches
of `spaces/darts_rnn.nas` that export and resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

import nasc
from nasc.compiler import CompileOptions, compile_space
from nasc.compiler.ops import catalog
from nasc.dsl import load_space
from nasc.runtime.data.text import (
    EOS,
    TokenBatches,
    entropy_rate,
    grammar_corpus,
    grammar_source,
    load_text,
)
from nasc.runtime.tasks import get_task
from nasc.runtime.tasks.language_model import carry_states

TINY = dict(
    data="grammar,bptt=4", task="language-model", subset=8, defines={"units": 4}, epochs=2,
    batch_size=4, shrink_steps=1, shrink_interval=1, measure_samples=4,
    measure_on="train-sample", seed=0,
)  # fmt: skip


def test_the_grammar_corpus_is_deterministic_and_its_entropy_is_the_floor():
    """The embedded corpus is drawn alike every time; the true model's mean NLL on it is close
    to the computed entropy rate, which lies below a uniform guess."""
    first, second = grammar_corpus(), grammar_corpus()
    assert torch.equal(first.train, second.train) and torch.equal(first.test, second.test)
    matrix, stationary = grammar_source()
    assert torch.allclose(stationary @ matrix, stationary, atol=1e-12)
    assert first.entropy == pytest.approx(entropy_rate(matrix, stationary))
    stream = first.train
    nll = -matrix[stream[:-1], stream[1:]].log().mean().item()
    assert nll == pytest.approx(first.entropy, abs=0.05)
    assert first.entropy < math.log(first.vocabulary)


def test_a_penn_treebank_folder_and_a_text_file_load(tmp_path):
    """A folder of train/valid/test.txt loads word by word with `<eos>` per line; a text file is
    split in order 80/10/10; `,bptt=N` sets the window."""
    corpus = tmp_path / "ptb"
    corpus.mkdir()
    lines = " ".join(f"w{i % 7}" for i in range(20))
    for split in ("train", "valid", "test"):
        (corpus / f"{split}.txt").write_text(f"{lines}\n\n{lines}\n")
    data = load_text(f"{corpus},bptt=5")
    assert data.bptt == 5 and data.vocabulary == 8 and EOS in data.words
    assert len(data.train) == 42 and data.windows("train") == 8
    single = tmp_path / "book.txt"
    single.write_text("\n".join(lines for _ in range(10)))
    data = load_text(f"{single},bptt=4")
    assert (len(data.train), len(data.valid), len(data.test)) == (168, 21, 21)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{tmp}/nowhere", "no such corpus"),
        ("{tmp}", "the folder has no train.txt, valid.txt, test.txt"),
        ("grammar,bptt=x", "`bptt=x` is no window length"),
        ("{tmp}/short.txt", "fewer than one window"),
    ],
)
def test_bad_corpora_are_refused_before_any_work(tmp_path, spec, message):
    """A missing path, a folder without the three files, a bad window, a corpus too short."""
    (tmp_path / "short.txt").write_text("a b c\n")
    with pytest.raises(nasc.NascUsageError, match=message) as info:
        get_task("language-model").load(spec.format(tmp=tmp_path))
    assert info.value.hint


def test_batches_lay_windows_out_as_parallel_streams():
    """Consecutive batches continue each row of the stream; the targets are the next tokens."""
    data = load_text("grammar,bptt=6")
    batches = TokenBatches(data, "train", 4, torch.device("cpu"))
    seen = list(batches.epoch())
    assert len(seen) == len(batches) == data.windows("train") // 4
    for (inputs, targets), (following, _) in zip(seen, seen[1:]):
        assert inputs.shape == targets.shape == (4, 6)
        assert torch.equal(inputs[:, 1:], targets[:, :-1])
        assert torch.equal(targets[:, -1], following[:, 0])  # the stream goes on in each row
    assert torch.equal(seen[0][0][0], data.train[:6])


def test_perplexity_of_a_uniform_guess_is_the_vocabulary():
    """Uniform scores have perplexity V and the loss log V."""
    task = get_task("language-model")
    targets = torch.randint(0, 30, (2, 5))
    scores = torch.zeros(2, 5, 30)
    assert task.loss(scores, targets).item() == pytest.approx(math.log(30))
    sums = {k: float(v) for k, v in task.batch_sums(scores, targets).items()}
    assert task.metrics(sums, 2)["ppl"] == pytest.approx(30.0)
    assert not task.higher_is_better


def test_carried_states_continue_a_sequence_across_batches():
    """With states carried, running a sequence in two halves gives the outputs of one run over
    the whole; a change of mode starts from zeros again."""
    torch.manual_seed(0)
    space = load_space("spaces/darts_rnn.nas", catalog=catalog())
    net = compile_space(space, {"vocab": 20, "units": 5}, CompileOptions(search=False)).eval()
    tokens = torch.randint(0, 20, (3, 8))
    with torch.no_grad():
        whole = net(tokens)
        assert carry_states(net) == 1
        halves = torch.cat([net(tokens[:, :4]), net(tokens[:, 4:])], dim=1)
        torch.testing.assert_close(halves, whole, atol=1e-6, rtol=0)
        net.train()
        net(tokens[:, :4])
        net.eval()
        restarted = net(tokens[:, :4])
    torch.testing.assert_close(restarted, whole[:, :4], atol=1e-6, rtol=0)


def test_an_image_space_is_refused_for_language_modelling(tmp_path):
    """NB201 reads images: binding it to a corpus names what a language model needs."""
    with pytest.raises(nasc.NascUsageError, match="input tokens\\(vocab\\)"):
        nasc.search("nb201", runs_dir=tmp_path, **{**TINY, "defines": {}})
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["isdarts", "darts-1st"])
def test_darts_rnn_searches_the_grammar_corpus_and_exports(tmp_path, strategy):
    """A tiny search of DARTS' recurrent space binds the vocabulary, reports perplexity, keeps
    one candidate per node and exports a fixed network that trains."""
    found = nasc.search("spaces/darts_rnn.nas", strategy=strategy, runs_dir=tmp_path, **TINY)
    assert all("test_ppl" in line and "test_token_acc" in line for line in found.epochs)
    assert found.result["final_test_ppl"] == found.epochs[-1]["test_ppl"]
    kept = found.result["genotype"]["darts_rnn"]
    for node in range(1, 9):
        assert sum(len(ops) for key, ops in kept.items() if key.endswith(f"->n{node}")) == 1
    arch = (found.run_dir / "arch.nas").read_text()
    assert "input tokens(vocab)" in arch and "next h = out" in arch
    trained = nasc.train(found, data="grammar,bptt=4", task="language-model", subset=8,
                         runs_dir=tmp_path, epochs=1, batch_size=4)  # fmt: skip
    records = [json.loads(line) for line in (trained.run_dir / "metrics.jsonl").open()]
    assert records[-1]["test_ppl"] > 1


LM_SEARCH = [
    "search", "spaces/darts_rnn.nas", "--task", "language-model", "--data", "grammar,bptt=4",
    "--subset", "8", "-D", "units=4", "--epochs", "3", "--shrink-steps", "2",
    "--shrink-interval", "1", "--batch-size", "4", "--measure-samples", "4",
    "--measure-on", "train-sample", "--seed", "1", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_a_killed_language_model_search_resumes_to_the_same_result(tmp_path):
    """Killed at the start of its last epoch, a search of DARTS' recurrent space resumes from
    its checkpoint to the genotype and perplexities of the run that was never stopped."""
    import signal

    from tiny_search import lines
    from tiny_search import nasc as run_nasc

    whole = run_nasc([*LM_SEARCH, "--runs-dir", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    killed = run_nasc([*LM_SEARCH, "--runs-dir", str(tmp_path / "part")],
                      env={"NASC_FAULT": "kill@3.1"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [run] = (tmp_path / "part").iterdir()
    resumed = run_nasc(["search", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    [reference] = (tmp_path / "whole").iterdir()
    done = json.loads((run / "result.json").read_text())
    assert done["genotype"] == json.loads((reference / "result.json").read_text())["genotype"]
    ppl = [line["test_ppl"] for line in lines(run) if line.get("event") == "epoch"]
    want = [line["test_ppl"] for line in lines(reference) if line.get("event") == "epoch"]
    assert ppl == pytest.approx(want, rel=1e-6)


def test_perplexity_is_printed_without_a_percent_sign():
    """The search summary writes the task's unit after its metric: nothing after a
    perplexity, `%` after an accuracy."""
    from nasc.runtime.cli.progress import accuracy_lines
    from nasc.runtime.tasks import get_task

    task = get_task("language-model")
    result = {**task.metric_fields(55.5), "supernet_test_acc": {"discretised": 55.5}}
    assert accuracy_lines(result) == [
        "supernet test perplexity (shared weights, not trained from scratch): 55.50 discretised "
        "to the found architecture"
    ]
    images = {**get_task("classification").metric_fields(91.0)}
    assert "91.00%" in accuracy_lines({**images, "final_test_acc": 91.0})[0]
