"""Tests of the op library: shapes, channels, parameter counts and the registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasc.compiler import OPS, catalog, get_op, register_op
from nasc.dsl import NascUsageError

FEATURE_OPS = sorted(name for name, entry in OPS.items() if entry.role == "op")
HEADS = sorted(name for name, entry in OPS.items() if entry.role == "head")

NB201_CONVS = ("nor_conv_1x1", "nor_conv_3x3", "nor_conv_7x7")
DARTS_OPS = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "conv_7x1_1x7",
    "skip_connect",
    "preprocess",
    "conv3x3_bn",
    "darts_imagenet_stem0",
    "darts_imagenet_stem1",
)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def bn(channels: int, affine: bool) -> int:
    """Parameters of a BatchNorm: a scale and a shift per channel when affine."""
    return 2 * channels if affine else 0


def nb201_bn(channels: int, affine: bool) -> int:
    """NAS-Bench-201's ReLU-Conv-BN: an affine BN, or a conv bias when the BN is not affine."""
    return 2 * channels if affine else channels


def expected_parameters(name: str, c_in: int, c_out: int, stride: int, affine: bool) -> int:
    """The parameter count of an op, written from the NAS-Bench-201 and DARTS definitions."""
    if name == "none":
        return 0
    if name == "skip_connect":
        if stride == 1 and c_in == c_out:
            return 0
        # FactorizedReduce: 1x1 convs to c_out // 2 and c_out - c_out // 2 channels, then a BN.
        return c_in * c_out + bn(c_out, affine)
    if name in NB201_CONVS:
        kernel = int(name[-1])
        return kernel * kernel * c_in * c_out + nb201_bn(c_out, affine)
    if name in ("avg_pool_3x3", "max_pool_3x3"):
        return 0 if c_in == c_out else c_in * c_out + nb201_bn(c_out, affine)
    if name.startswith("sep_conv_"):
        kernel = int(name[-1])
        first = kernel * kernel * c_in + c_in * c_in + bn(c_in, affine)
        second = kernel * kernel * c_in + c_in * c_out + bn(c_out, affine)
        return first + second
    if name.startswith("dil_conv_"):
        kernel = int(name[-1])
        return kernel * kernel * c_in + c_in * c_out + bn(c_out, affine)
    if name == "conv_7x1_1x7":
        return 7 * c_in * c_in + 7 * c_in * c_out + bn(c_out, affine)
    if name == "preprocess":
        return c_in * c_out + bn(c_out, affine)
    if name == "resample":  # a strided 3x3 conv, or a 1x1 conv at stride 1 (or upsampling)
        return (9 if stride > 1 else 1) * c_in * c_out + bn(c_out, affine)
    if name == "conv3x3_bn" or name == "darts_imagenet_stem1":
        return 9 * c_in * c_out + bn(c_out, affine)
    if name == "darts_imagenet_stem0":
        half = c_out // 2
        return 9 * c_in * half + bn(half, affine) + 9 * half * c_out + bn(c_out, affine)
    if name == "resblock":
        convs = 9 * c_in * c_out + nb201_bn(c_out, affine) + 9 * c_out * c_out
        convs += nb201_bn(c_out, affine)
        if stride == 2:
            return convs + c_in * c_out  # average pooling, then a bias-free 1x1 conv
        if c_in != c_out:
            return convs + c_in * c_out + nb201_bn(c_out, affine)
        return convs
    raise AssertionError(f"no closed form written for the op `{name}`; add one to this test")


def expected_head_parameters(name: str, c_in: int, classes: int) -> int:
    """The parameter count of a head (affine BNs), from the NAS-Bench-201 and DARTS definitions."""
    linear = c_in * classes + classes
    if name == "bn_relu_pool_linear":
        return 2 * c_in + linear
    if name == "pool_linear":
        return linear
    if name.startswith("darts_aux_"):
        features = c_in * 128 + 2 * 128 + 128 * 768 * 2 * 2
        if name == "darts_aux_cifar":
            features += 2 * 768
        return features + 768 * classes + classes
    raise AssertionError(f"no closed form written for the head `{name}`; add one to this test")


def effective_stride(name: str, stride: int) -> int:
    return OPS[name].stride or stride


@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("channels", [(4, 4), (4, 6)], ids=["same", "widen"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", FEATURE_OPS)
def test_op_output_shape(name, stride, channels, size):
    """An op maps (B, C_in, H, W) to (B, C_out, ceil(H / s), ceil(W / s)) for its stride s."""
    c_in, c_out = channels
    stride = effective_stride(name, stride)
    op = get_op(name).build(c_in, c_out, stride, True)
    output = op(torch.randn(2, c_in, size, size + 1))
    expected = (2, c_out, -(-size // stride), -(-(size + 1) // stride))
    assert tuple(output.shape) == expected


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("channels", [(4, 4), (4, 6)], ids=["same", "widen"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", FEATURE_OPS)
def test_op_parameter_count(name, stride, channels, affine):
    """An op has exactly the parameters its reference definition gives it."""
    c_in, c_out = channels
    stride = effective_stride(name, stride)
    op = get_op(name).build(c_in, c_out, stride, affine)
    assert count(op) == expected_parameters(name, c_in, c_out, stride, affine)


@pytest.mark.parametrize("name", FEATURE_OPS)
def test_affine_changes_counts_only_where_a_batchnorm_is(name):
    """Affine and non-affine builds differ in size exactly when the op has a BatchNorm."""
    stride = effective_stride(name, 2)
    affine = get_op(name).build(4, 6, stride, True)
    plain = get_op(name).build(4, 6, stride, False)
    norms = [m for m in affine.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.affine for m in norms)
    assert all(not m.affine for m in plain.modules() if isinstance(m, nn.BatchNorm2d))
    assert (count(affine) != count(plain)) == bool(norms)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("name", NB201_CONVS)
def test_nb201_conv_has_bias_exactly_without_affine_bn(name, affine):
    """NAS-Bench-201's ReLU-Conv-BN has a conv bias exactly when its BN is not affine."""
    op = get_op(name).build(4, 4, 1, affine)
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 1 and len(norms) == 1
    assert (convs[0].bias is not None) == (not affine)
    assert norms[0].affine == affine
    assert isinstance(op[0], nn.ReLU) and op[1] is convs[0] and op[2] is norms[0]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", DARTS_OPS)
def test_darts_convs_have_no_bias(name, stride, affine):
    """Every convolution of a DARTS op is bias-free, whatever the BN."""
    op = get_op(name).build(4, 6, effective_stride(name, stride), affine)
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    assert all(conv.bias is None for conv in convs)


@pytest.mark.parametrize("name", FEATURE_OPS)
def test_track_running_stats_reaches_every_batchnorm(name):
    """`track_running_stats=False` gives BatchNorms without running statistics."""
    stride = effective_stride(name, 2)
    op = get_op(name).build(4, 6, stride, False, track_running_stats=False)
    norms = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.running_mean is None and not m.track_running_stats for m in norms)


@pytest.mark.parametrize("name", HEADS)
def test_head_maps_features_to_class_scores(name):
    """A head maps (B, C, H, W) to (B, classes) and has its reference parameter count."""
    size = {"darts_aux_cifar": 8, "darts_aux_imagenet": 7}.get(name, 5)
    head = get_op(name).build(8, 7, 1, True)
    scores = head(torch.randn(2, 8, size, size))
    assert tuple(scores.shape) == (2, 7)
    assert count(head) == expected_head_parameters(name, 8, 7)


@pytest.mark.parametrize("name", ["bn_relu_pool_linear", "pool_linear"])
def test_pooling_heads_take_any_resolution(name):
    """The classifier heads pool globally, so any feature-map size gives (B, classes)."""
    head = get_op(name).build(6, 3, 1, True)
    for size in (1, 4, 9):
        assert tuple(head(torch.randn(2, 6, size, size)).shape) == (2, 3)


def test_get_op_unknown_name_lists_known_names():
    """An unknown op name raises NascUsageError that lists every registered op."""
    with pytest.raises(NascUsageError, match="unknown op `nor_conv_9x9`") as info:
        get_op("nor_conv_9x9")
    text = str(info.value)
    assert all(name in text for name in OPS)
    assert info.value.hint is not None and "nor_conv_3x3" in info.value.hint


def test_get_op_returns_the_registered_entry():
    """A known name gives its entry, with the builder and the flags the compiler reads."""
    assert get_op("none").zero and not get_op("nor_conv_3x3").zero
    assert get_op("skip_connect").identity
    assert get_op("avg_pool_3x3").pooling and get_op("max_pool_3x3").pooling
    assert get_op("sep_conv_3x3") is OPS["sep_conv_3x3"]


def test_none_has_no_parameters_and_outputs_zeros():
    """`none` has no parameters and its output is zeros of the op's shape."""
    for stride in (1, 2):
        op = get_op("none").build(4, 6, stride, True)
        assert count(op) == 0
        output = op(torch.randn(2, 4, 7, 8))
        assert tuple(output.shape) == (2, 6, -(-7 // stride), 8 // stride)
        assert not output.any()


def test_skip_connect_is_identity_at_stride_one():
    """`skip_connect` returns its input unchanged at stride 1 and reduces at stride 2."""
    x = torch.randn(2, 5, 8, 8)
    op = get_op("skip_connect").build(5, 5, 1, True)
    assert count(op) == 0
    assert torch.equal(op(x), x)
    reduced = get_op("skip_connect").build(5, 6, 2, True)
    assert tuple(reduced(x).shape) == (2, 6, 4, 4)


def test_factorized_reduce_reads_two_offset_grids():
    """Strided `skip_connect` concatenates 1x1 convs of ReLU(x) on the even and the odd grid."""
    torch.manual_seed(0)
    op = get_op("skip_connect").build(3, 6, 2, False)
    op.eval()
    x = torch.randn(2, 3, 8, 8)
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [3, 3]
    relu = torch.relu(x)
    even = nn.functional.conv2d(relu[:, :, ::2, ::2], convs[0].weight)
    odd = nn.functional.conv2d(relu[:, :, 1::2, 1::2], convs[1].weight)
    expected = torch.cat([even, odd], dim=1) / (1 + 1e-5) ** 0.5  # BN at initial statistics
    assert torch.allclose(op(x), expected, atol=1e-6)


def test_avg_pool_does_not_count_padding():
    """`avg_pool_3x3` averages real pixels only, so a constant map stays constant at the border."""
    op = get_op("avg_pool_3x3").build(3, 3, 1, True)
    output = op(torch.full((1, 3, 5, 5), 2.0))
    assert torch.allclose(output, torch.full_like(output, 2.0))


def test_resblock_adds_the_shortcut():
    """The residual block's output is its shortcut plus its two ReLU-Conv-BN layers."""
    torch.manual_seed(0)
    block = get_op("resblock").build(4, 4, 1, True).eval()
    x = torch.randn(2, 4, 6, 6)
    assert block.downsample is None
    assert torch.allclose(block(x), x + block.conv_b(block.conv_a(x)))


def test_catalog_describes_every_registered_op():
    """The catalog names every op with its role, fixed stride and one line of documentation."""
    info = catalog()
    assert set(info) == set(OPS)
    assert info["pool_linear"].role == "head" and info["nor_conv_3x3"].role == "op"
    assert info["darts_imagenet_stem0"].stride == 4
    assert info["darts_imagenet_stem1"].stride == 2
    assert info["sep_conv_3x3"].stride is None
    assert all(entry.doc for entry in info.values())


def test_register_op_adds_a_name_to_the_registry():
    """A registered builder is found by `get_op` and appears in the catalog."""
    try:

        @register_op("test_scale_by_two")
        def _scale(c_in, c_out, stride, affine, track_running_stats=True):
            """Twice the input."""
            return nn.Identity()

        assert get_op("test_scale_by_two").build is _scale
        assert catalog()["test_scale_by_two"].doc == "Twice the input."
    finally:
        OPS.pop("test_scale_by_two", None)
    with pytest.raises(NascUsageError, match="unknown op"):
        get_op("test_scale_by_two")


@pytest.mark.parametrize("name", ["skip_connect", "nor_conv_3x3", "darts_aux_cifar", "conv"])
def test_register_op_refuses_a_built_in_name(name):
    """A plugin cannot replace a built-in op or a primitive (found cells and NB201 strings would
    then name another op): the registry is left as it was."""
    before = OPS.get(name)
    with pytest.raises(NascUsageError, match=f"`{name}` is already a built-in") as info:

        @register_op(name)
        def _other(c_in, c_out, stride, affine, track_running_stats=True):
            """Not the built-in."""
            return nn.Identity()

    assert "my_" + name in info.value.hint
    assert OPS.get(name) is before


def test_register_op_refuses_a_second_builder_for_a_plugin_name():
    """Two different builders under one plugin name are refused; registering the same function
    again (a module imported anew) keeps it."""

    def make():
        def build(c_in, c_out, stride, affine, track_running_stats=True):
            """Twice the input."""
            return nn.Identity()

        return build

    try:
        first = register_op("test_twice")(make())
        register_op("test_twice")(make())  # the same module and name: a re-import
        assert get_op("test_twice").build is not first

        def other(c_in, c_out, stride, affine, track_running_stats=True):
            """Another op."""
            return nn.Identity()

        with pytest.raises(NascUsageError, match="`test_twice` is already registered by"):
            register_op("test_twice")(other)
        assert get_op("test_twice").build.__qualname__ == first.__qualname__
    finally:
        OPS.pop("test_twice", None)
