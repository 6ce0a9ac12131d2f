"""Properties of choices among widths (docs/language.md, section 23): a masked width is the
network of that width, masks only lose widths, and genotypes with widths round-trip.

    from hypothesis import given
    from nasc.testing import check_width_masks, genotypes

    @given(genotypes(space))
    def test_widths(genotype):
        check_width_masks(net, genotype)
"""

from __future__ import annotations

from nasc.dsl import Genotype, NascError, SpaceIR, format_space, parse_arch, parse_space
from nasc.dsl.genotype import apply_genotype, blocks_string
from nasc.dsl.ir import BLOCK_EDGE
from nasc.runtime.testing.properties import PropertyFailure, _input

WIDTH_PROPERTIES = {
    "width-masks-equal-fixed": "the supernet masked to one width per choice computes, output for "
    "output, what the fixed network of those widths computes with the sliced weights, and every "
    "convolution runs at that network's width",
    "widths-only-lose": "discarding widths never brings one back, and no layer of the supernet "
    "runs wider after a discard",
    "width-genotypes-round-trip": "a genotype with widths prints as a fixed .nas network of those "
    "widths that parses back, and its blocks string reads back as the same genotype",
}


def conv_output_shapes(net, x) -> list[tuple[int, ...]]:
    """The output shape of every convolution one forward runs, in order."""
    import torch
    from torch import nn

    shapes = []
    handles = [
        m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def check_width_masks(net, genotype: Genotype, overrides=None) -> None:
    """Mask the supernet to the genotype (`sum` mixing) and compare it with the fixed network of
    its widths built from the sliced weights (`export_network(..., supernet=net)`), in eval mode.

    Raises:
        PropertyFailure: `width-masks-equal-fixed`, naming the widths.
    """
    import torch

    from nasc.compiler import export_network

    prop = "width-masks-equal-fixed"
    space = net.space
    net.arch.set_mixing("sum")
    net.arch.restrict(genotype)
    fixed = export_network(space, genotype, overrides, supernet=net).eval()
    net.eval()
    x = _input(net, seed=5)
    widths = blocks_string(space, genotype)
    with torch.no_grad():
        mine, theirs = net(x), fixed(x)
    scale = max(1.0, mine.abs().max().item())
    if not torch.allclose(mine, theirs, atol=1e-4 * scale, rtol=0):
        raise PropertyFailure(
            prop,
            f"masked to {widths}, the supernet computes other values than the fixed network "
            f"(largest difference {(mine - theirs).abs().max().item():.3g})",
            span=space.network.span,
        )
    if conv_output_shapes(net, x) != conv_output_shapes(fixed, x):
        raise PropertyFailure(
            prop,
            f"masked to {widths}, the supernet's convolutions run at other widths than the "
            "fixed network's",
            span=space.network.span,
        )


def _running_widths(net) -> dict[str, int]:
    """Every sliceable layer's output channels under the current masks, by path."""
    from nasc.compiler.widths import out_size

    net._sync()
    return {
        path: layer.out_width or out_size(layer)
        for path, layer in net.named_modules()
        if hasattr(layer, "out_width")
    }


def check_widths_only_lose(net, discards: list[list[tuple[str, str]]]) -> None:
    """Apply discards in order (`(width choice, width)` pairs; a discard that would leave a
    choice empty is skipped) and check that no width comes back and no layer widens.

    Raises:
        PropertyFailure: `widths-only-lose`.
    """
    prop = "widths-only-lose"
    choices = net.space.width_choices
    live = {c.label: set(net.arch.live(c.label, BLOCK_EDGE)) for c in choices}
    before = _running_widths(net)
    for step in discards:
        for label, width in step:
            if live[label] - {width}:
                net.arch.discard(label, [(BLOCK_EDGE, width)])
                live[label].discard(width)
        for choice in choices:
            now = set(net.arch.live(choice.label, BLOCK_EDGE))
            if not now <= live[choice.label]:
                raise PropertyFailure(
                    prop,
                    f"width {sorted(now - live[choice.label])} of `{choice.label}` came back",
                    span=choice.set.span,
                )
        after = _running_widths(net)
        wider = [path for path in after if after[path] > before.get(path, after[path])]
        if wider:
            raise PropertyFailure(
                prop,
                f"after a discard the layer `{wider[0]}` runs at {after[wider[0]]} channels, "
                f"wider than its {before[wider[0]]}",
                span=net.space.network.span,
            )
        before = after


def check_width_round_trip(space: SpaceIR, genotype: Genotype, catalog=None) -> None:
    """The genotype's fixed network prints as `.nas` text that parses back to it, with each
    width choice's parameter or set replaced by the chosen width; its blocks string reads back.

    Raises:
        PropertyFailure: `width-genotypes-round-trip`.
    """
    prop = "width-genotypes-round-trip"
    fixed = apply_genotype(space, genotype)
    text = format_space(fixed)
    try:
        again = parse_space(text, f"<{space.name} fixed>", catalog=catalog)
    except NascError as error:
        raise PropertyFailure(
            prop, f"the fixed .nas text does not parse: {error.message}", span=error.span
        ) from None
    if again != fixed or again.width_choices:
        raise PropertyFailure(
            prop, "the fixed .nas text parses back to another network", span=space.network.span
        )
    params = {param.name: param.default for param in again.network.params}
    for choice in space.width_choices:
        (width,) = genotype.cells[choice.label][BLOCK_EDGE]
        value = params.get(choice.label)
        if value is not None and getattr(value, "value", None) != int(width):
            raise PropertyFailure(
                prop,
                f"the fixed network has {choice.label} = {value}, the genotype {width}",
                span=choice.set.span,
            )
        if f"{choice.label}={width}" not in blocks_string(space, genotype).split():
            raise PropertyFailure(prop, f"the blocks string lacks {choice.label}={width}")
    string = blocks_string(space, genotype)
    if parse_arch(space, string) != genotype:
        raise PropertyFailure(
            prop, f"the blocks string `{string}` reads back as another genotype"
        )
