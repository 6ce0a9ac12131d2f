"""Token streams for language modelling: an embedded corpus drawn from a known stochastic grammar
(no download; its entropy rate, the perplexity floor no model beats, is computed exactly), a
word-level corpus in the Penn Treebank / WikiText-2 layout (a folder of `train.txt`,
`valid.txt`, `test.txt`), or any text file, split 80/10/10.

Words are split on whitespace and every line ends in `<eos>`, as the DARTS and AWD-LSTM language
model code reads Penn Treebank. A split is cut into windows of `bptt` tokens (an example); a
batch holds `batch` windows, laid out as that many parallel streams (`TokenBatches`), so the
state a recurrent cell carries from one batch to the next continues its stream.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import torch

from nasc.dsl import NascUsageError

EOS = "<eos>"
GRAMMAR = "grammar"  # the embedded corpus's name (`--data grammar`)
BPTT = 35  # tokens per window: the truncation of backpropagation through time (DARTS: 35)
MAX_TEXT_BYTES = 512 * 2**20  # a text file larger than this is refused before it is read


@attrs.frozen(kw_only=True)
class TokenData:
    """A corpus held in memory as int64 token streams.

    Attributes:
        name: what runs and errors call it.
        words: the vocabulary, token id -> word.
        train, valid, test: the splits' token streams.
        entropy: the source's true entropy rate in nats per token (the embedded grammar's), or
            None where it is unknown; exp(entropy) is the perplexity floor.
        bptt: the window length, tokens per example.
    """

    name: str
    words: tuple[str, ...] = attrs.field(converter=tuple)
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    entropy: float | None = None
    bptt: int = BPTT

    @property
    def vocabulary(self) -> int:
        return len(self.words)

    def stream(self, split: str) -> torch.Tensor:
        return self.train if split == "train" else self.test

    def windows(self, split: str) -> int:
        """How many whole windows (inputs and their next tokens) the split holds."""
        return max(0, (len(self.stream(split)) - 1) // self.bptt)

    def subset(self, count: int, seed: int = 0) -> TokenData:
        """The first `count` training windows and a quarter as many test windows (at least
        one); `seed` is unused, since a stream keeps its order."""
        tokens = count * self.bptt + 1
        test = max(1, count // 4) * self.bptt + 1
        return attrs.evolve(
            self, name=f"{self.name}[{count}]", train=self.train[:tokens], test=self.test[:test]
        )


# --- the embedded corpus: a seeded Markov source over a small vocabulary -------------------------


def grammar_source(
    vocabulary: int = 40, successors: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A first-order Markov source: each word is followed by one of `successors` words drawn
    for it, with probabilities drawn too (all from `seed`).

    Returns:
        (the float64 transition matrix P[i, j] = p(j | i), its stationary distribution).
    """
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.zeros(vocabulary, vocabulary, dtype=torch.float64)
    for word in range(vocabulary):
        # The next word is always another word; word + 1 is always one (the chain is then
        # irreducible), the rest are drawn among word + 2, word + 3, ... (modulo the vocabulary).
        others = torch.randperm(vocabulary - 2, generator=generator)[: successors - 1]
        others = (others + word + 2) % vocabulary
        chosen = torch.cat([torch.tensor([(word + 1) % vocabulary]), others])
        weights = torch.rand(successors, generator=generator, dtype=torch.float64) + 0.2
        matrix[word, chosen] += weights / weights.sum()
    # The stationary distribution pi = pi P, sum(pi) = 1, solved exactly: the last equation of
    # (P^T - I) pi = 0 is implied by the others and gives way to the sum.
    system = matrix.T - torch.eye(vocabulary, dtype=torch.float64)
    system[-1] = 1.0
    target = torch.zeros(vocabulary, dtype=torch.float64)
    target[-1] = 1.0
    stationary = torch.linalg.solve(system, target)
    return matrix, stationary / stationary.sum()


def entropy_rate(matrix: torch.Tensor, stationary: torch.Tensor) -> float:
    """The entropy rate of a stationary Markov chain in nats per token: sum_i pi_i H(P[i])."""
    logs = torch.where(matrix > 0, matrix.log(), torch.zeros_like(matrix))
    return float(-(stationary * (matrix * logs).sum(1)).sum())


def grammar_corpus(tokens: int = 12_000, seed: int = 0) -> TokenData:
    """The embedded corpus: `tokens` training tokens and a tenth as many for each of valid and
    test, drawn from `grammar_source(seed=seed)`, started in its stationary distribution."""
    matrix, stationary = grammar_source(seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    total = tokens + 2 * (tokens // 10)
    stream = torch.empty(total, dtype=torch.int64)
    word = int(torch.multinomial(stationary, 1, generator=generator))
    draws = torch.rand(total, generator=generator, dtype=torch.float64)
    cumulative = matrix.cumsum(1)
    for position in range(total):
        stream[position] = word
        word = min(int(torch.searchsorted(cumulative[word], draws[position])), len(matrix) - 1)
    valid_end = tokens + tokens // 10
    return TokenData(
        name=GRAMMAR,
        words=[f"w{index:02d}" for index in range(len(matrix))],
        train=stream[:tokens],
        valid=stream[tokens:valid_end],
        test=stream[valid_end:],
        entropy=entropy_rate(matrix, stationary),
    )


# --- corpora from files --------------------------------------------------------------------------


def _read_words(path: Path) -> list[str]:
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise NascUsageError(
            f"{path} is larger than {MAX_TEXT_BYTES // 2**20} MiB",
            hint="language modelling reads the whole corpus into memory: cut it down first",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise NascUsageError(
            f"cannot read {path} as UTF-8 text: {error}",
            hint="give a plain text file, one sentence or paragraph a line",
        ) from None
    words = []
    for line in text.splitlines():
        line_words = line.split()
        if line_words:
            words.extend([*line_words, EOS])
    return words


def _encode(splits: list[list[str]]) -> tuple[list[str], list[torch.Tensor]]:
    """Token ids for each split, over a vocabulary in order of first appearance (train first)."""
    index: dict[str, int] = {}
    encoded = []
    for words in splits:
        encoded.append(torch.tensor([index.setdefault(w, len(index)) for w in words]))
    return list(index), encoded


def load_text(spec: str) -> TokenData:
    """`grammar` (the embedded corpus), a folder of `train.txt`, `valid.txt` and `test.txt`
    (Penn Treebank, WikiText-2), or a text file (split 80/10/10 by tokens, in order); any of
    them followed by `,bptt=N` for windows of N tokens (default 35).

    Raises:
        NascUsageError: an unknown name, a folder without the three files, an unreadable file, a
            bad window length, or a corpus too short for a window in each split.
    """
    spec, bptt = _window(spec)
    if spec == GRAMMAR:
        return attrs.evolve(grammar_corpus(), bptt=bptt)
    path = Path(spec).expanduser()
    if path.is_dir():
        files = [path / f"{split}.txt" for split in ("train", "valid", "test")]
        missing = [file.name for file in files if not file.is_file()]
        if missing:
            raise NascUsageError(
                f"--data {spec}: the folder has no {', '.join(missing)}",
                hint="a word-level corpus folder holds train.txt, valid.txt and test.txt, as "
                "Penn Treebank and WikiText-2 ship",
            )
        words, (train, valid, test) = _encode([_read_words(file) for file in files])
        name = path.name
    elif path.is_file():
        all_words = _read_words(path)
        words, (stream,) = _encode([all_words])
        cut_train, cut_valid = int(len(stream) * 0.8), int(len(stream) * 0.9)
        train, valid, test = stream[:cut_train], stream[cut_train:cut_valid], stream[cut_valid:]
        name = path.stem
    else:
        raise NascUsageError(
            f"--data {spec}: no such corpus",
            hint=f"language modelling reads `{GRAMMAR}` (embedded, no download), a folder of "
            "train.txt, valid.txt and test.txt (Penn Treebank, WikiText-2), or a text file",
        )
    data = TokenData(name=name, words=words, train=train, valid=valid, test=test, bptt=bptt)
    for split, stream in (("train", data.train), ("test", data.test)):
        if len(stream) < data.bptt + 1:
            raise NascUsageError(
                f"--data {spec}: the {split} split holds {len(stream)} tokens, fewer than one "
                f"window of {data.bptt} tokens and its next token",
                hint="give a longer corpus",
            )
    return data


def _window(spec: str) -> tuple[str, int]:
    """The corpus and the window length of a `--data` value: `PATH` or `PATH,bptt=N`."""
    head, _, tail = spec.rpartition(",bptt=")
    if not head:
        return spec, BPTT
    if not tail.isdigit() or not 1 <= int(tail) <= 10_000:
        raise NascUsageError(
            f"--data {spec}: `bptt={tail}` is no window length",
            hint="write the tokens per window as a whole number, e.g. `--data grammar,bptt=35`",
        )
    return head, int(tail)


# --- batches -------------------------------------------------------------------------------------


class TokenBatches:
    """Batches of windows: (inputs, targets), both (batch, bptt) int64, the targets the inputs
    shifted by one token.

    The windows (all of the split's, or those at `indices`, in stream order) are laid out as
    `batch_size` parallel streams, as language models batchify a corpus: batch k holds the k-th
    window of each stream, so consecutive batches continue each row.
    """

    def __init__(
        self, data: TokenData, split: str, batch_size: int, device, indices=None, drop_last=False
    ):
        stream = data.stream(split)
        count = data.windows(split)
        chosen = torch.arange(count) if indices is None else torch.sort(indices).values
        rows = max(1, min(batch_size, len(chosen)))
        per_row = len(chosen) // rows
        if not drop_last and per_row == 0:
            per_row = 1
        chosen = chosen[: rows * per_row].view(rows, per_row)
        offsets = chosen[..., None] * data.bptt + torch.arange(data.bptt + 1)
        self.windows = stream[offsets].to(device)  # (rows, per row, bptt + 1)

    def __len__(self) -> int:
        return self.windows.shape[1]

    def epoch(self, seed=None, start: int = 0, shuffle: bool = True):
        """The batches in stream order from batch `start` (a stream is never shuffled: the state
        carried from batch to batch must continue it)."""
        for position in range(start, len(self)):
            window = self.windows[:, position]
            yield window[:, :-1], window[:, 1:]


def perplexity(nll_sum: float, tokens: float) -> float:
    """exp of the mean negative log-likelihood per token (capped to stay finite)."""
    return math.exp(min(nll_sum / max(tokens, 1.0), 50.0))
