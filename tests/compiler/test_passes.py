"""Tests of the compiler's optimisation passes: the optimised supernet computes what the plain one
does, in values, gradients, running statistics and IS-DARTS' information."""

from __future__ import annotations

import functools
import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.compiler.passes import PASSES
from nasc.dsl import Genotype, NascUsageError, load_space
from nasc.runtime.strategies.isdarts import measure
from nasc.testing import masks

SMALL = {
    "nb201": {"C": 4, "N": 1, "size": 8},
    "darts": {"C": 4, "layers": 3, "size": 8},
    "tricell": {"C": 4, "N": 1, "size": 8},
}
VARIANTS = {
    "batch-stats": {"search": True, "track_running_stats": False},
    "running-stats": {"search": True, "track_running_stats": True},
    "eval-conventions": {"search": False},
}
PLAIN = {"passes": (), "channels_last": False}


pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def space(name: str):
    return load_space(name, catalog=catalog(), overrides=SMALL[name])


@functools.cache
def twins(name: str, variant: str):
    """The plain and the optimised supernet of a space, with the same weights."""
    nets = []
    for extra in (PLAIN, {}):
        torch.manual_seed(0)
        options = CompileOptions(**VARIANTS[variant], **extra)
        nets.append(compile_space(space(name), SMALL[name], options, seed=0))
    nets[1].load_state_dict(nets[0].state_dict())
    return nets


def image(name: str, seed: int = 1, batch: int = 3) -> torch.Tensor:
    size = SMALL[name]["size"]
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def all_live(net) -> Genotype:
    return Genotype(
        {
            cell: dict(zip(table.edges, table.candidates, strict=True))
            for cell, table in net.arch.choices.items()
        }
    )


def check_same(plain, fast, x, train: bool) -> None:
    """Same logits (1e-5, relative to the largest logit where that is above 1: `sum` mixing of
    many candidates gives logits near 10, where channels-last convolutions round differently),
    same gradients (1e-3 of the largest), same BN statistics."""
    for net in (plain, fast):
        net.train(train)
        net.zero_grad(set_to_none=True)
    outputs = []
    for net in (plain, fast):
        logits = net(x)
        logits.square().mean().backward()
        outputs.append(logits.detach())
    scale = max(1.0, outputs[0].abs().max().item())
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5 * scale, rtol=0)
    grads = [
        {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
        for net in (plain, fast)
    ]
    assert grads[0].keys() == grads[1].keys()
    largest = max((g.abs().max().item() for g in grads[0].values()), default=0.0)
    for key, grad in grads[0].items():
        assert (grad - grads[1][key]).abs().max().item() <= 1e-3 * largest + 1e-12, key
    states = [net.state_dict() for net in (plain, fast)]
    for key, value in states[0].items():
        if torch.is_tensor(value) and value.is_floating_point():
            assert torch.allclose(value, states[1][key], atol=1e-5, rtol=1e-5), key


def test_passes_are_named_and_can_be_switched_off():
    """The default options run every pass; `passes=()` gives one call per op; names are checked."""
    assert CompileOptions().passes == tuple(PASSES)
    plain = compile_space(space("nb201"), SMALL["nb201"], CompileOptions(passes=()))
    fast = compile_space(space("nb201"), SMALL["nb201"])
    assert "_conv(" not in plain.code and "torch.relu(" not in plain.code
    assert "_conv(" in fast.code and "x_relu = torch.relu(x)" in fast.code
    assert "passes: cse, fuse, fold" in fast.code
    cse_only = compile_space(space("nb201"), SMALL["nb201"], CompileOptions(passes=("cse",)))
    assert "_conv(" not in cse_only.code and "x_relu = torch.relu(x)" in cse_only.code
    with pytest.raises(NascUsageError, match="unknown compiler pass `nope`"):
        CompileOptions(passes=("nope",))


def test_darts_code_shares_relus_and_pooling_but_not_grouped_convolutions():
    """DARTS' convolutions of one source share its ReLU and its pooling; their depthwise and
    pointwise stages stay separate (grouped convolutions are slower on the CPU), and a shrink
    takes a candidate out of the code."""
    net = compile_space(space("darts"), SMALL["darts"])
    normal = net.code.split("def cell_reduce")[0]
    assert "c_k2_relu = torch.relu(c_k2)" in normal
    assert "e['c_k2->n1']['sep_conv_3x3.0.1'](c_k2_relu)" in normal
    # inplace_relu: the ReLU after a separable convolution's first BN, never a shared one.
    assert "= torch.relu_(c_k2_n1_sep_conv_3x3_bn)" in normal
    assert "torch.relu_(c_k2)" not in normal
    assert "_conv(" not in normal and normal.count(".pool'], c_k2)") == 2  # max and avg
    net.arch.discard("normal", [("c_k2->n1", "sep_conv_3x3")])
    normal = net.code.split("def cell_reduce")[0]
    assert "e['c_k2->n1']['sep_conv_3x3" not in normal
    assert "e['c_k2->n0']['sep_conv_3x3.0.1'](c_k2_relu)" in normal


def test_fused_conv_runs_grouped_and_depthwise_convolutions_exactly():
    """`fused_conv` computes what separate convolutions do, on one input or one slice each,
    dense, depthwise or grouped (the passes use the dense case only)."""
    from nasc.compiler.kernels import fused_conv

    x = torch.randn(2, 6, 5, 5)
    for groups, lanes in ((1, False), (6, False), (3, False), (1, True), (6, True)):
        convs = [torch.nn.Conv2d(6, 6, 3, padding=1, groups=groups) for _ in range(3)]
        inputs = x.repeat(1, 3, 1, 1) if lanes else x
        expected = torch.cat([conv(x) for conv in convs], dim=1)
        assert torch.allclose(fused_conv(inputs, convs, lanes=lanes), expected, atol=1e-5)


POOLS = [
    torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=True),
    torch.nn.AvgPool2d(2, ceil_mode=True),
    torch.nn.MaxPool2d(3, stride=1, padding=1),
    torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
]


def keep(saved: list, tensor: torch.Tensor) -> torch.Tensor:
    saved.append(tensor)
    return tensor


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("index", range(len(POOLS)))
def test_lean_pool_gives_autograds_numbers_and_keeps_less(index, channels_last):
    """`lean_pool` gives the module's output and input gradient bit for bit, in either layout;
    its backward keeps nothing of an average pooling and int16 argmax offsets of a max pooling."""
    from nasc.compiler.kernels import lean_pool

    pool = POOLS[index]
    x = torch.randn(2, 5, 9, 7, generator=torch.Generator().manual_seed(index))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(pool(x).shape, generator=torch.Generator().manual_seed(9))
    results = []
    for run in (pool, functools.partial(lean_pool, pool)):
        leaf = x.clone().requires_grad_()
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(functools.partial(keep, saved), lambda t: t):
            output = run(leaf)
        output.backward(grad)
        results.append((output.detach(), leaf.grad, saved))
    (out, grad_in, saved_plain), (lean_out, lean_grad, saved_lean) = results
    assert torch.equal(out, lean_out) and torch.equal(grad_in, lean_grad)
    assert lean_grad.stride() == grad_in.stride()
    if isinstance(pool, torch.nn.AvgPool2d):
        assert saved_lean == [] and any(t.shape == x.shape for t in saved_plain)
    else:
        assert [(t.dtype, t.shape) for t in saved_lean] == [(torch.int16, out.shape)]
    with torch.no_grad():
        assert torch.equal(lean_pool(pool, x), out)


def test_accumulate_sums_a_node_into_one_tensor_in_place():
    """With `accumulate` a node's sum is one `torch.add` the other terms are added into; without
    it the code sums with `+`; both give the plain supernet's numbers."""
    name = "nb201"
    for passes in (("cse", "fuse", "fold", "lean_pool"), ("accumulate",), ("lean_pool",)):
        plain, net = (
            compile_space(
                space(name), SMALL[name], CompileOptions(**VARIANTS["batch-stats"], **extra)
            )
            for extra in (PLAIN, {"passes": passes})
        )
        net.load_state_dict(plain.state_dict())
        assert ("torch.add(" in net.code) == ("accumulate" in passes)
        assert ("_pool(" in net.code) == ("lean_pool" in passes)
        for each in (plain, net):
            each.arch.restrict(all_live(each))
            each.arch.set_mixing("mean")
        check_same(plain, net, image(name), train=True)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", sorted(SMALL))
def test_all_live_optimised_supernet_equals_plain(name, variant):
    """With every candidate live, the optimised supernet computes what the plain one does."""
    plain, fast = twins(name, variant)
    for net in (plain, fast):
        net.arch.restrict(all_live(net))
        net.arch.set_mixing("mean")
    for train in (True, False):
        check_same(plain, fast, image(name), train)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
@settings(max_examples=max(4, settings().max_examples // 10))
@given(data=st.data())
def test_optimised_supernet_equals_plain_under_random_masks(name, data):
    """For any masks, mixing mode and BN convention, in training and eval mode, the optimised
    supernet gives the plain one's logits, gradients and BN statistics."""
    variant = data.draw(st.sampled_from(sorted(VARIANTS)))
    mode = data.draw(st.sampled_from(["mean", "live_mean", "sum", "softmax"]))
    plain, fast = twins(name, variant)
    genotype = data.draw(masks(plain.space))
    for net in (plain, fast):
        net.arch.restrict(genotype)
        net.arch.set_mixing(mode)
    for train in (True, False):
        check_same(plain, fast, image(name, seed=data.draw(st.integers(0, 9))), train)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_isdarts_information_is_the_same(name):
    """IS-DARTS' information of every candidate is the same in the optimised supernet: its hooks
    make the cells run their plain code, where each candidate computes its own output (F, a
    ratio over sigma^6 of 4 channels, magnifies the layouts' rounding: 1e-3 relative)."""
    plain, fast = twins(name, "batch-stats")
    for net in (plain, fast):
        net.arch.restrict(all_live(net))
        net.arch.set_mixing("mean")
        table = next(iter(net.arch.choices.values()))
        net.arch.discard(table.cell, [(table.edges[0], table.candidates[0][-1])])
    batches = [(image(name, seed=s, batch=4), None) for s in (1, 2)]
    scores = [measure(net, batches) for net in (plain, fast)]
    assert scores[0].keys() == scores[1].keys()
    for cell, members in scores[0].items():
        assert members.keys() == scores[1][cell].keys()
        for member, value in members.items():
            other = scores[1][cell][member]
            assert (math.isinf(value) and math.isinf(other)) or math.isclose(
                value, other, rel_tol=1e-3
            ), (cell, member)
    assert not any(cell.hooked() for cell in fast.cells())  # the hooks are gone again


def test_hooks_see_each_candidates_own_output():
    """A forward hook on one candidate sees that candidate's output, as in the plain code."""
    plain, fast = twins("nb201", "batch-stats")
    seen = []
    for net in (plain, fast):
        net.arch.restrict(all_live(net))
        net.arch.set_mixing("mean")
        module = net.cells()[0].edges["x->n2"]["nor_conv_3x3"]
        handle = module.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
        try:
            with torch.no_grad():
                net.eval()(image("nb201"))
        finally:
            handle.remove()
    assert len(seen) == 2 and torch.allclose(seen[0], seen[1], atol=1e-6)


def test_options_for_the_gpu_are_off_by_default():
    """torch.compile is never a default; without CUDA inputs the option changes nothing."""
    assert CompileOptions().cuda_compile is None
    torch.manual_seed(0)
    options = CompileOptions(cuda_compile="reduce-overhead")
    net = compile_space(space("nb201"), SMALL["nb201"], options)
    with torch.no_grad():
        net(image("nb201"))
    assert net._cuda_forward is None


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune-no-cudagraphs"])
def test_cuda_compile_equals_eager_and_follows_shrinks(mode):
    """On CUDA, the compiled forward gives the eager logits, and is compiled again after a
    shrink."""
    torch.manual_seed(0)
    eager = compile_space(space("nb201"), SMALL["nb201"]).cuda()
    torch.manual_seed(0)
    options = CompileOptions(cuda_compile=mode)
    compiled = compile_space(space("nb201"), SMALL["nb201"], options).cuda()
    compiled.load_state_dict(eager.state_dict())
    x = image("nb201").cuda()
    for step in range(2):
        with torch.no_grad():
            expected = eager(x).clone()
            got = compiled(x).clone()
        assert torch.allclose(expected, got, atol=1e-4, rtol=1e-4)
        first = compiled._cuda_forward
        for net in (eager, compiled):
            net.arch.discard("nb201_cell", [("x->n1", ("nor_conv_3x3", "avg_pool_3x3")[step])])
    with torch.no_grad():
        compiled(x)
    assert compiled._cuda_forward is not first


GUARD = """
import torch
from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import load_space
torch.set_num_threads(1)
for C in (2, 3, 4):
    overrides = {"C": C, "layers": 3, "size": 8, "stem_multiplier": 1}
    net = compile_space(load_space("darts", catalog=catalog(), overrides=overrides), overrides)
    assert net.options.channels_last and net.channels_last
    for _ in range(3):
        net(torch.randn(4, 3, 8, 8)).square().mean().backward()
print("ok")
"""


def test_channels_last_runs_at_the_channel_counts_that_crashed():
    """With few channels (2 to 4), this PyTorch's oneDNN backward of a strided 1x1 convolution
    on channels-last input corrupted the heap; FactorizedReduce runs those convolutions on NCHW,
    so a channels-last DARTS supernet that narrow trains (in a child process, which a heap
    corruption would kill)."""
    done = subprocess.run(
        [sys.executable, "-c", GUARD], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


STRIDED_POINTWISE = """
ops convs = {nor_conv_1x1, nor_conv_3x3}
cell down(x) with reduction {
    a = x:convs
    keep 1 per edge
    out a
}
network net(C = 4) {
    input(3, 8)
    stem conv3x3_bn(C)
    down @ 2C
    head pool_linear(10)
}
"""


def test_a_strided_pointwise_conv_outside_factorized_reduce_keeps_the_network_nchw():
    """A reduction cell's `nor_conv_1x1` is a strided 1x1 conv that no op guards: the network
    then runs NCHW throughout (its code converts nothing), and trains."""
    from nasc.compiler.supernet import strided_pointwise_convs
    from nasc.dsl import parse_space

    net = compile_space(parse_space(STRIDED_POINTWISE, catalog=catalog()))
    assert net.options.channels_last and not net.channels_last
    assert strided_pointwise_convs(net) == ["stages.1.edges.x->a.nor_conv_1x1.1"]
    assert "channels_last" not in net.code
    net(torch.randn(2, 3, 8, 8)).square().mean().backward()
