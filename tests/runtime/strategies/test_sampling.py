"""The sampling strategies (GDAS, DrNAS, MS-DARTS): what each step draws, what runs, and what
the gradients reach."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasc.compiler import catalog
from nasc.dsl import load_space
from nasc.runtime.data.images import load_digits
from nasc.runtime.search.config import make_config
from nasc.runtime.search.loop import Searcher
from nasc.runtime.strategies.drnas import concentration
from nasc.runtime.tasks import bind_data


@pytest.fixture(scope="module")
def digits():
    return load_digits().subset(64, seed=0)


def searcher(strategy, data, name="nb201", **overrides):
    space = load_space(name, catalog=catalog())
    small = {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3}}[name]
    defines = bind_data(space, small, data)
    values = dict(epochs=3, batch_size=16, device="cpu", seed=0)
    values.update(overrides)
    config = make_config(space.preset, strategy, values)
    return Searcher(space, defines, config, data, torch.device("cpu"), fingerprint="test")


def batch(data, count=8):
    return data.train_images[:count].float() / 255.0, data.train_labels[:count]


def test_gdas_runs_only_the_sampled_op_of_every_edge(digits):
    """After a draw every edge has one live op, weighted exactly 1; a forward calls that op's
    module and no other candidate's. Two draws in a row pick different subnets somewhere."""
    s = searcher("gdas", digits)
    net, arch = s.net, s.net.arch
    s.strategy.sample(net)
    [cell] = arch.choices
    mask = arch.mask(cell)
    assert mask.sum(dim=-1).tolist() == [1] * len(arch.choices[cell].edges)
    weights = arch.mixing_weights(cell)
    assert torch.equal(weights.detach()[mask], torch.ones(int(mask.sum())))
    called = set()
    hooks = []
    for module in net.cells():
        for edge, ops in module.edges.items():
            for op, op_module in ops.items():
                hooks.append(
                    op_module.register_forward_hook(
                        lambda *_, key=(edge, op): called.add(key)  # noqa: B023 - bound by key
                    )
                )
    images, _ = batch(digits)
    net(images)
    for hook in hooks:
        hook.remove()
    sampled = {(edge, op) for edge in arch.choices[cell].edges for op in arch.live(cell, edge)}
    # `none` is no call at all: the code adds nothing for it.
    assert called == {(edge, op) for edge, op in sampled if op != "none"}


def test_gdas_gradient_reaches_every_alpha_of_an_edge_through_the_sampled_weight(digits):
    """The straight-through weight has the value one-hot and the gradient of the softmax: the
    loss's gradient reaches every candidate's alpha of an edge, not only the sampled one's;
    an edge that sampled `none` (a zero output) gets none (see the module doc of gdas)."""
    s = searcher("gdas", digits)
    net, arch = s.net, s.net.arch
    [cell] = arch.choices
    s.strategy.sample(net)
    images, labels = batch(digits)
    loss = nn.functional.cross_entropy(s.logits(images), labels)
    [alphas] = list(arch.parameters())
    (grad,) = torch.autograd.grad(loss, [alphas])
    sampled = [arch.live(cell, edge)[0] for edge in arch.choices[cell].edges]
    assert any(op != "none" for op in sampled)
    for row, op in enumerate(sampled):
        if op == "none":
            assert (grad[row] == 0).all()
        else:
            assert (grad[row] != 0).all(), op


def test_gdas_temperature_anneals_from_ten_to_a_tenth(digits):
    s = searcher("gdas", digits, epochs=5)
    taus = []
    for epoch in range(5):
        s.strategy.epoch = epoch
        taus.append(s.strategy.tau())
    assert taus == pytest.approx([10.0, 7.525, 5.05, 2.575, 0.1])


def test_gdas_samples_each_op_with_its_softmax_probability(digits):
    """The hard sample is the argmax of Gumbel-perturbed log-probabilities, so (the Gumbel-max
    theorem) op o of an edge is drawn with probability softmax(alpha)_o, at any temperature."""
    s = searcher("gdas", digits)
    net, arch = s.net, s.net.arch
    [cell] = arch.choices
    with torch.no_grad():
        arch.alphas[arch.alpha_key(cell)].copy_(torch.linspace(-1.0, 1.5, 30).view(6, 5))
    expected = torch.softmax(arch.alphas[arch.alpha_key(cell)].detach(), dim=-1)
    for epoch in (0, 2):  # tau 10 and 0.1
        s.strategy.epoch = epoch
        counts = torch.zeros(6, 5)
        for _ in range(3000):
            s.strategy.sample(net)
            counts += arch.mask(cell).float()
        assert torch.allclose(counts / 3000, expected, atol=0.03)


def test_gdas_derives_two_inputs_per_node_in_the_darts_space(digits):
    """A subset that keeps two incoming edges per node still gets them from GDAS' alphas."""
    from nasc.dsl.genotype import check_genotype

    s = searcher("gdas", digits, name="darts")
    s.strategy.sample(s.net)  # masks now hold one sampled op per edge
    genotype = s.strategy.derive(s.net)
    check_genotype(s.space, genotype)
    for cell in genotype.cells.values():
        chosen = [op for ops in cell.values() for op in ops]
        assert len(chosen) == 8 and "none" not in chosen


def test_drnas_draws_dirichlet_weights_over_the_live_candidates(digits):
    """Each row of a draw is a point of the simplex over its live candidates, dead ones 0, and
    the draws average to the Dirichlet mean beta / sum(beta)."""
    s = searcher("drnas", digits)
    net, arch = s.net, s.net.arch
    [cell] = arch.choices
    arch.discard(cell, [("x->n1", "none"), ("x->n1", "skip_connect")])
    with torch.no_grad():
        arch.alphas[arch.alpha_key(cell)].copy_(torch.linspace(-1.0, 2.0, 30).view(6, 5))
    total = torch.zeros(6, 5)
    for _ in range(1000):
        s.strategy.sample(net)
        drawn = arch.mixing_weights(cell).detach()
        total += drawn
    drawn_sum = drawn.sum(dim=-1)
    assert torch.allclose(drawn_sum, torch.ones(6), atol=1e-5)
    assert (drawn[0, :2] == 0).all()
    mean = s.strategy.expected(net)[cell]
    assert torch.allclose(total / 1000, mean, atol=0.02)


def test_drnas_pathwise_gradient_reaches_the_alphas(digits):
    s = searcher("drnas", digits)
    s.strategy.sample(s.net)
    images, labels = batch(digits)
    loss = nn.functional.cross_entropy(s.logits(images), labels)
    [alphas] = list(s.net.arch.parameters())
    (grad,) = torch.autograd.grad(loss, [alphas])
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()


def test_drnas_kl_anchor_matches_the_closed_form(digits):
    """KL(Dir(beta) || Dir(1)) = lgamma(sum beta) - sum lgamma(beta) - lgamma(K)
    + sum (beta_i - 1)(digamma(beta_i) - digamma(sum beta)), summed over edges and scaled."""
    s = searcher("drnas", digits, drnas_reg="kl", drnas_reg_scale=0.5)
    arch = s.net.arch
    [cell] = arch.choices
    with torch.no_grad():
        arch.alphas[arch.alpha_key(cell)].copy_(torch.linspace(-2.0, 3.0, 30).view(6, 5))
    beta = concentration(arch.alphas[arch.alpha_key(cell)].detach()).double()
    total = beta.sum(-1)
    kl = (
        torch.lgamma(total)
        - torch.lgamma(beta).sum(-1)
        - torch.lgamma(torch.tensor(5.0, dtype=torch.double))
        + ((beta - 1) * (torch.digamma(beta) - torch.digamma(total)[:, None])).sum(-1)
    )
    assert float(s.strategy.regulariser(s.net).detach()) == pytest.approx(
        0.5 * float(kl.sum()), rel=1e-5
    )
    assert s.strategy.optimizer.param_groups[0]["weight_decay"] == 0.0
    l2 = searcher("drnas", digits, drnas_reg="l2", drnas_reg_scale=0.25)
    assert l2.strategy.regulariser(l2.net) == 0.0
    assert l2.strategy.optimizer.param_groups[0]["weight_decay"] == 0.25


def test_drnas_progressive_pruning_keeps_the_strongest_ops(digits):
    """After the prune epoch every edge keeps its `drnas_keep` strongest candidates by mean."""
    s = searcher("drnas", digits, drnas_prune_epoch=1, drnas_keep=2)
    arch = s.net.arch
    [cell] = arch.choices
    s.run_one_epoch()
    assert arch.mask(cell).sum(dim=-1).tolist() == [2] * 6
    [record] = [r for r in s.metric_records if r["event"] == "prune"]
    assert record["live"] == 12 and sum(len(v) for v in record["pruned"].values()) == 18
    s.run_epochs()
    assert arch.mask(cell).sum(dim=-1).tolist() == [2] * 6


def test_ms_darts_at_zero_bandwidth_is_first_order_darts(digits):
    """h = 0 draws softmax(alpha) itself: the run matches DARTS (first order) step for step."""
    ms = searcher("ms-darts", digits, epochs=2, ms_bandwidth=0.0)
    darts = searcher("darts-1st", digits, epochs=2)
    ms.run_epochs()
    darts.run_epochs()
    for (name, a), (_, b) in zip(ms.net.arch.alphas.items(), darts.net.arch.alphas.items()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert ms.strategy.derive(ms.net) == darts.strategy.derive(darts.net)


def test_ms_darts_samples_within_the_bandwidth(digits):
    """The drawn weights are softmax(alpha + h eps): recovering eps from their logs gives a
    standard deviation of about h."""
    s = searcher("ms-darts", digits, ms_bandwidth=0.5)
    arch = s.net.arch
    [cell] = arch.choices
    shifts = []
    for _ in range(200):
        s.strategy.sample(s.net)
        logits = arch.mixing_weights(cell).detach().log()
        alphas = arch.alphas[arch.alpha_key(cell)].detach()
        shift = logits - alphas
        shifts.append(shift - shift.mean(dim=-1, keepdim=True))  # softmax drops a constant
    spread = torch.stack(shifts).std() * (5 / 4) ** 0.5  # centring 5 values shrinks the std
    assert float(spread) == pytest.approx(0.5, rel=0.1)
