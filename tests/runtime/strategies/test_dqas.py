"""DQAS on a network of cells: K subnets scored per architecture step, REINFORCE on the alphas."""

from __future__ import annotations

import torch

from nasc.compiler import catalog
from nasc.dsl import load_space
from nasc.runtime.data.images import load_digits
from nasc.runtime.search.config import make_config
from nasc.runtime.search.loop import Searcher
from nasc.runtime.strategies.dqas import draw, log_probability, score_surrogate
from nasc.runtime.tasks import bind_data


def test_score_surrogate_is_the_reinforce_estimate():
    """The surrogate's gradient is mean_k (L_k - mean L) grad log p(s_k), computed by hand."""
    logits = torch.tensor([[0.2, -0.4, 1.0], [0.0, 0.5, -9.0]], requires_grad=True)
    live = torch.tensor([[True, True, True], [True, True, False]])
    choices = torch.tensor([[0, 1], [2, 0], [2, 1]])
    losses = torch.tensor([1.0, 0.0, 2.0])
    score_surrogate(logits, live, choices, losses).backward()
    expected = torch.zeros(2, 3)
    for row, loss in zip(choices, losses):
        for i, c in enumerate(row):
            p = torch.softmax(logits.detach()[i].masked_fill(~live[i], -1e9), 0)
            grad = -p
            grad[c] += 1
            expected[i] += (loss - losses.mean()) * grad.masked_fill(~live[i], 0) / 3
    torch.testing.assert_close(logits.grad, expected)
    assert log_probability(logits, live, choices).shape == (3,)


def test_draws_follow_the_categoricals_and_skip_dead_candidates():
    """Draws never pick a dead candidate and their frequencies follow the softmax."""
    logits = torch.tensor([[0.0, 1.0, 5.0], [0.0, 0.0, 0.0]])
    live = torch.tensor([[True, True, False], [True, True, True]])
    choices = draw(logits, live, 4000, torch.Generator().manual_seed(0))
    assert choices.shape == (4000, 2) and not (choices[:, 0] == 2).any()
    share = (choices[:, 0] == 1).float().mean()
    assert abs(float(share) - float(torch.sigmoid(torch.tensor(1.0)))) < 0.03


def test_dqas_searches_a_tiny_nb201():
    """A one-epoch DQAS search of NB201 on digits runs, moves the alphas, and derives one op per
    edge; each architecture step evaluates `dqas_samples` one-op-per-edge subnets."""
    data = load_digits().subset(64, seed=0)
    space = load_space("nb201", catalog=catalog())
    defines = bind_data(space, {"C": 4, "N": 1}, data)
    config = make_config(
        space.preset, "dqas", dict(epochs=1, batch_size=16, device="cpu", seed=0, arch_lr=0.05)
    )
    searcher = Searcher(space, defines, config, data, torch.device("cpu"), fingerprint="test")
    net = searcher.net
    [cell] = net.arch.choices
    before = net.arch.alphas[net.arch.alpha_key(cell)].detach().clone()
    live_counts = []
    original = net.forward

    def counting(*args, **kwargs):
        live_counts.append(int(net.arch.mask(cell).sum()))
        return original(*args, **kwargs)

    net.forward = counting
    searcher.run_epochs()
    after = net.arch.alphas[net.arch.alpha_key(cell)].detach()
    assert not torch.equal(before, after)
    assert set(live_counts) == {6}  # every forward ran one op on each of the 6 edges
    genotype = searcher.strategy.derive(net)
    assert all(len(ops) == 1 for ops in genotype.cells[cell].values())
