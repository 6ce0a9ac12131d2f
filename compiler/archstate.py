"""The architecture state: masks and architecture parameters per cell type, edge and op.

All instances of a cell type share one entry. Strategies change the architecture only through
this object; every change bumps `version`, and the supernet regenerates its forward code when it
sees a new version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import attrs
import torch
from torch import nn

from nasc.dsl import Genotype, NascUsageError, SpaceIR
from nasc.dsl.ir import Cell

MIXING_MODES = {
    "sum": "live candidates summed with weight 1 (the supernet restricted by its mask)",
    "mean": "live candidates summed and scaled by 1/|candidate set| (the IS-DARTS reference)",
    "live_mean": "live candidates summed and scaled by 1/|live candidates|",
    "softmax": "live candidates weighted by a softmax of their architecture parameters (DARTS), "
    "or by the weights a sampling strategy drew for the step (GDAS, DrNAS, MS-DARTS; `draw`)",
}


@attrs.frozen(kw_only=True)
class CellChoices:
    """The choice edges of one cell type as rows of a padded (edge x op) table.

    Attributes:
        edges: choice edge keys, one row each.
        candidates: each row's candidate ops; columns beyond a row's length are padding.
        subsets: per comparison subset, its k and its members as (row, column) pairs.
        labels: per subset, its label (`x->n1`, `n2`, `{a->b, c->d}`).
        sources: the cell's inputs (signature order) then its nodes (as defined, which follows
            the DAG): the structural order IS-DARTS breaks ties by.
    """

    cell: str
    edges: tuple[str, ...]
    candidates: tuple[tuple[str, ...], ...]
    subsets: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]
    labels: tuple[str, ...]
    sources: tuple[str, ...] = ()

    @classmethod
    def of(cls, cell: Cell) -> CellChoices:
        edges = tuple(edge.key for edge in cell.choices)
        candidates = tuple(edge.candidates for edge in cell.choices)
        row = {key: index for index, key in enumerate(edges)}
        subsets = tuple(
            (
                subset.k,
                tuple((row[key], candidates[row[key]].index(op)) for key, op in subset.members),
            )
            for subset in cell.subsets
        )
        return cls(
            cell=cell.name,
            edges=edges,
            candidates=candidates,
            subsets=subsets,
            labels=tuple(subset.label for subset in cell.subsets),
            sources=cell.input_names + cell.node_names,
        )

    @property
    def width(self) -> int:
        return max(len(ops) for ops in self.candidates)

    def position(self, edge: str, op: str) -> tuple[int, int]:
        row = self.edges.index(edge)
        return row, self.candidates[row].index(op)


_MODULE_ATTRIBUTES = frozenset(dir(nn.ParameterDict()))


class ArchState(nn.Module):
    """Masks (buffers) and architecture parameters (`alphas`) of every searched cell type.

    Args:
        space: the search space; cell types without choices get no entry.
        generator: DARTS initialises alphas as 1e-3 * N(0, 1); a generator makes it repeatable.
        edge_normalisation: PC-DARTS' edge normalisation: a parameter `beta` per choice edge
            (in `betas`, drawn after every alpha, so the alphas do not change), softmaxed over
            the choice edges into one node, scales each edge's mixed output.
    """

    def __init__(
        self,
        space: SpaceIR,
        generator: torch.Generator | None = None,
        edge_normalisation: bool = False,
    ):
        super().__init__()
        self.choices: dict[str, CellChoices] = {
            cell.name: CellChoices.of(cell) for cell in space.used_cells() if cell.choices
        }
        # Per cell type, the rows of the choice edges into each node (edge normalisation's groups).
        self.edge_groups: dict[str, tuple[tuple[int, ...], ...]] = {}
        for cell in space.used_cells():
            if cell.name in self.choices:
                rows = self.choices[cell.name].edges
                targets = dict.fromkeys(edge.target for edge in cell.choices)
                self.edge_groups[cell.name] = tuple(
                    tuple(rows.index(e.key) for e in cell.choices if e.target == target)
                    for target in targets
                )
        self.alphas = nn.ParameterDict()
        for name, table in self.choices.items():
            # Masks start on the CPU even under a `meta` device context, so the code generator
            # can always read them.
            valid = torch.zeros(len(table.edges), table.width, dtype=torch.bool, device="cpu")
            for row, ops in enumerate(table.candidates):
                valid[row, : len(ops)] = True
            self.register_buffer(f"valid__{name}", valid, persistent=False)
            self.register_buffer(f"mask__{name}", valid.clone())
            self.alphas[self.alpha_key(name)] = nn.Parameter(
                1e-3 * torch.randn(len(table.edges), table.width, generator=generator)
            )
        self.betas = nn.ParameterDict()
        if edge_normalisation:
            for name, table in self.choices.items():
                self.betas[self.alpha_key(name)] = nn.Parameter(
                    1e-3 * torch.randn(len(table.edges), generator=generator)
                )
        self.mixing = "sum"
        self.version = 0
        # Weights a sampling strategy drew for the next forward, per cell type; not state.
        self.drawn: dict[str, torch.Tensor] = {}

    @property
    def edge_normalised(self) -> bool:
        return len(self.betas) > 0

    def alpha_key(self, cell: str) -> str:
        """The `alphas` key of a cell type: its name, unless a module attribute has that name
        (a cell named `type` or `train`), which the key then does not shadow."""
        return f"cell__{cell}" if cell in _MODULE_ATTRIBUTES else cell

    # --- reading -------------------------------------------------------------------------------

    def mask(self, cell: str) -> torch.Tensor:
        """The (edge x op) boolean mask of a cell type; padding columns are False."""
        return getattr(self, f"mask__{cell}")

    def valid(self, cell: str) -> torch.Tensor:
        return getattr(self, f"valid__{cell}")

    def live(self, cell: str, edge: str) -> tuple[str, ...]:
        """The live candidates of a choice edge, in candidate order."""
        table = self.choices[cell]
        row = table.edges.index(edge)
        flags = self.mask(cell)[row].tolist()
        return tuple(op for op, alive in zip(table.candidates[row], flags) if alive)

    def live_count(self) -> int:
        """Live candidates over all cell types."""
        return int(sum(self.mask(cell).sum().item() for cell in self.choices))

    def genotype(self) -> Genotype:
        """The decisions the masks hold: the live candidates of every choice edge."""
        return Genotype(
            {
                cell: {edge: self.live(cell, edge) for edge in table.edges}
                for cell, table in self.choices.items()
            }
        )

    def op_weights(self, cell: str) -> torch.Tensor:
        """Softmax of the alphas over each edge's live candidates; dead entries weigh 0. Weights
        a strategy drew (`draw`) take their place until it clears them."""
        drawn = self.drawn.get(cell)
        if drawn is not None:
            return drawn
        alphas = self.alphas[self.alpha_key(cell)]
        masked = alphas.masked_fill(~self.mask(cell), float("-inf"))
        return torch.softmax(masked, dim=-1).nan_to_num(0.0)

    def edge_weights(self, cell: str) -> torch.Tensor:
        """Per choice edge, the softmax of the betas over the live choice edges into its node
        (PC-DARTS' edge normalisation); all ones without edge normalisation."""
        key = self.alpha_key(cell)
        if key not in self.betas:
            return torch.ones(len(self.choices[cell].edges), device=self.mask(cell).device)
        betas = self.betas[key]
        alive = self.mask(cell).any(dim=1).to(betas.device)
        masked = betas.masked_fill(~alive, float("-inf"))
        weights = torch.zeros_like(betas)
        for rows in self.edge_groups[cell]:
            index = torch.tensor(rows, device=betas.device)
            group = torch.softmax(masked[index], dim=0).nan_to_num(0.0)
            weights = weights.index_put((index,), group)
        return weights

    def mixing_weights(self, cell: str) -> torch.Tensor:
        """The weight of every candidate in its edge's output: the softmax of the alphas over
        the edge's live candidates (dead entries weigh 0), times the edge's weight under edge
        normalisation. PC-DARTS derives its genotype from this product too."""
        weights = self.op_weights(cell)
        if self.alpha_key(cell) in self.betas:
            weights = weights * self.edge_weights(cell)[:, None]
        return weights

    def fingerprint(self) -> str:
        """A hash of the masks, to compare architectures across processes."""
        digest = hashlib.sha256()
        for cell in sorted(self.choices):
            digest.update(cell.encode())
            digest.update(bytes(self.mask(cell).cpu().to(torch.uint8).flatten().tolist()))
        return digest.hexdigest()[:16]

    # --- changing ------------------------------------------------------------------------------

    def set_mixing(self, mode: str) -> None:
        """Choose how live candidates mix; see `MIXING_MODES`."""
        if mode not in MIXING_MODES:
            raise NascUsageError(
                f"unknown mixing mode `{mode}`", hint=f"known modes: {', '.join(MIXING_MODES)}"
            )
        if mode != self.mixing:
            self.mixing = mode
            self.version += 1

    def discard(self, cell: str, members: Iterable[tuple[str, str]]) -> None:
        """Mask out candidates, given as (edge key, op) pairs. Masks only ever lose candidates."""
        mask = self.mask(cell)
        table = self.choices[cell]
        with torch.no_grad():
            for edge, op in members:
                row, column = table.position(edge, op)
                mask[row, column] = False
        self.version += 1

    def draw(self, weights: dict[str, torch.Tensor] | None) -> None:
        """Mix with these (edge x op) weights per cell type instead of the softmax (sampling
        strategies draw them each step, with gradients to the alphas); None clears them. The
        code does not change: it reads the weights at every call."""
        self.drawn = dict(weights or {})

    def select(self, masks: dict[str, torch.Tensor]) -> None:
        """Set the masks of cell types outright (a sampling strategy's subnet for one step);
        the code is regenerated only when a mask changed."""
        changed = False
        with torch.no_grad():
            for cell, mask in masks.items():
                current = self.mask(cell)
                mask = mask.to(current.device, torch.bool) & self.valid(cell).to(current.device)
                if not torch.equal(current, mask):
                    current.copy_(mask)
                    changed = True
        if changed:
            self.version += 1

    def restrict(self, genotype: Genotype) -> None:
        """Keep exactly the genotype's candidates live (e.g. to run the derived subnet)."""
        with torch.no_grad():
            for cell, table in self.choices.items():
                mask = self.mask(cell)
                mask.zero_()
                for edge, ops in genotype.cells.get(cell, {}).items():
                    for op in ops:
                        row, column = table.position(edge, op)
                        mask[row, column] = True
        self.version += 1

    def __getstate__(self):
        # Drawn weights hang in an autograd graph and cannot be copied; they are per step.
        state = self.__dict__.copy()
        state["drawn"] = {}
        return state

    def get_extra_state(self):
        return {"mixing": self.mixing}

    def set_extra_state(self, state):
        self.mixing = state.get("mixing", "sum")
        self.version += 1

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.version += 1  # masks may have changed under the generated code
