"""Language modelling: token streams in (`data/text.py`), a network that reads `input
tokens(vocab)` and ends in scores over the vocabulary at every step, cross-entropy of the next
token, and perplexity.

The network's output contract: `net(tokens)` with tokens (batch, bptt) int64 returns scores
(batch, bptt, vocabulary); the targets are the tokens shifted by one. Truncated backpropagation
through time: a batch backpropagates through its `bptt` steps only, while the states of the
network's recurrent cells carry over, detached, to the next batch of the same pass, which
continues each row's stream (`TokenBatches`); they start from zeros when the network switches
between training and evaluation and when the batch size changes.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional

from nasc.dsl import NascUsageError
from nasc.runtime.data.text import GRAMMAR, TokenBatches, TokenData, load_text, perplexity
from nasc.runtime.tasks.base import Task
from nasc.runtime.tasks.registry import register_task

# The command line's default `--data`, an image set, stands for the embedded corpus here.
IMAGE_DEFAULT = "cifar10"


def carry_states(net: torch.nn.Module, carry: bool = True) -> int:
    """Make every recurrent cell of `net` carry its final states to its next forward (in the
    same mode, at the same batch size); returns how many cells there are."""
    from nasc.compiler.supernet import RecurrentCellModule

    cells = [m for m in net.modules() if isinstance(m, RecurrentCellModule)]
    for cell in cells:
        cell.carry = carry
    return len(cells)


@register_task("language-model")
class LanguageModel(Task):
    """Token ids in, scores over the vocabulary at every step out; reports call perplexity
    (lower is better) and next-token accuracy."""

    metric = "ppl"
    metric_label = "perplexity"
    metric_unit = ""
    higher_is_better = False
    sums = ("nll", "tokens", "correct")
    words = {"classes": "words in its vocabulary", "vocab": "words in its vocabulary"}

    def load(self, spec, cache_dir=None, image_size=None) -> TokenData:
        """`grammar` (embedded), a Penn Treebank / WikiText-2 folder or a text file
        (`data.text.load_text`); the command line's default `cifar10` means `grammar`."""
        return load_text(GRAMMAR if spec in (None, IMAGE_DEFAULT) else spec)

    def examples(self, data: TokenData, split: str) -> int:
        """Windows of `bptt` tokens: a search splits and samples them."""
        return data.windows(split)

    def batches(
        self,
        data: TokenData,
        split,
        batch_size,
        device,
        *,
        indices=None,
        augment=False,
        drop_last=False,
        cutout=0,
        shard=(0, 1),
    ) -> TokenBatches:
        if shard[1] > 1:
            raise NascUsageError(
                "language modelling runs on one process",
                hint="run it without torchrun",
            )
        return TokenBatches(data, split, batch_size, device, indices, drop_last)

    def facts(self, data: TokenData) -> dict[str, int]:
        return {"vocab": data.vocabulary}

    def bind(self, space, defines, data) -> dict[str, int]:
        """Bind `vocab` to the data's vocabulary; the network must read tokens and score each."""
        from nasc.compiler import catalog
        from nasc.dsl.macro import instantiate

        have = data.vocabulary
        bound = dict(defines)
        if "vocab" in space.network.param_names:
            if "vocab" in defines and defines["vocab"] != have:
                raise NascUsageError(
                    f"-D vocab={defines['vocab']} contradicts the data: {data.name} has {have} "
                    "words in its vocabulary",
                    hint="drop -D vocab; nasc takes it from the data",
                )
            bound["vocab"] = have
        plan = instantiate(space, bound, catalog())
        head = next(stage for stage in plan.stages if stage.kind == "head")
        if not plan.tokens or plan.channels != have or head.width != have:
            raise NascUsageError(
                f"the space `{space.name}` does not model {data.name}'s {have} words: language "
                "modelling needs `input tokens(vocab)` and a head with one score per word",
                hint="declare a `vocab` parameter and write `input tokens(vocab)` and e.g. "
                "`head decoder(vocab)` (see spaces/darts_rnn.nas)",
            )
        return bound

    def check_network(self, net, data, device) -> None:
        super().check_network(net, data, device)
        carry_states(net)

    def check_output(self, output: torch.Tensor, targets: torch.Tensor) -> None:
        if output.dim() != 3 or output.shape[:2] != targets.shape:
            raise NascUsageError(
                f"the network produces {tuple(output.shape)} for token windows of "
                f"{tuple(targets.shape)}; language modelling needs (batch, steps, vocabulary) "
                "scores",
                hint="end the network with a head that scores each step, e.g. `head "
                "decoder(vocab)` after a recurrent cell",
            )

    def loss(self, output, targets, smoothing: float = 0.0) -> torch.Tensor:
        return functional.cross_entropy(
            output.reshape(-1, output.shape[-1]), targets.reshape(-1), label_smoothing=smoothing
        )

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(-1)

    def batch_sums(self, output, targets) -> dict[str, torch.Tensor]:
        nll = functional.cross_entropy(
            output.reshape(-1, output.shape[-1]).float(), targets.reshape(-1), reduction="sum"
        )
        return {
            "nll": nll.detach().double(),
            "tokens": torch.tensor(targets.numel(), device=targets.device),
            "correct": (self.predict(output) == targets).sum(),
        }

    def metrics(self, sums, seen: int) -> dict[str, float]:
        tokens = float(sums["tokens"])
        return {
            "ppl": perplexity(float(sums["nll"]), tokens),
            "token_acc": 100.0 * float(sums["correct"]) / max(tokens, 1.0),
        }

    def chance_loss(self, data: TokenData) -> float:
        return math.log(max(data.vocabulary, 2))
