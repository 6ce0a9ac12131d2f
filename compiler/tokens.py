"""The modules of token sequences (B, length, features) that transformer ops in the language are
built from: patch embedding, class token, positional embedding, multi-head self-attention, the
MLP and token pooling. Each weight is one tensor at the written size (no module per head), so a
width choice can take a slice of it."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class PatchEmbed(nn.Module):
    """A patch x patch convolution of stride patch (with bias), its pixels read row by row as
    tokens: (B, C, H, W) -> (B, H / patch * W / patch, width), as torchvision's ViT."""

    def __init__(self, C_in: int, width: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(C_in, width, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ClassToken(nn.Module):
    """A learned token (zeros at first, as torchvision's) put before the sequence."""

    def __init__(self, width: int):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, width))

    def forward(self, x):
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)


class PositionEmbedding(nn.Module):
    """A learned vector per position (normal, std 0.02 at first, as torchvision's) added to a
    sequence of exactly `length` tokens."""

    def __init__(self, length: int, width: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(1, length, width).normal_(std=0.02))

    def forward(self, x):
        if x.shape[1] != self.embedding.shape[1]:
            raise ValueError(
                f"a positional embedding of {self.embedding.shape[1]} tokens is given "
                f"{x.shape[1]}: the network is built for another image size"
            )
        return x + self.embedding


class SelfAttention(nn.Module):
    """Multi-head self-attention over (B, length, width), with torch's `MultiheadAttention`
    parameters: `in_proj_weight` (3 heads head_dim, width), whose rows are the queries, the
    keys and the values, each head by head; `in_proj_bias`; `out_proj`, a linear layer from
    heads head_dim back to width. Dropout applies to the attention weights in training."""

    def __init__(self, width: int, heads: int, head_dim: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        inner = heads * head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner))
        self.out_proj = nn.Linear(inner, width)
        nn.init.xavier_uniform_(self.in_proj_weight)  # as torch's MultiheadAttention
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x):
        batch, length, _ = x.shape
        qkv = functional.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        p = self.dropout if self.training else 0.0
        out = functional.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, -1))


class MLP(nn.Module):
    """Linear -> GELU -> Linear on each token: `fc1` (hidden, width) and `fc2` (out, hidden)."""

    def __init__(self, width: int, hidden: int, out: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TokenPool(nn.Module):
    """A sequence to a flat vector: its first token (the class token), or the mean of all."""

    def __init__(self, first: bool):
        super().__init__()
        self.first = first

    def forward(self, x):
        return x[:, 0] if self.first else x.mean(dim=1)

    def extra_repr(self) -> str:
        return "first" if self.first else "mean"
