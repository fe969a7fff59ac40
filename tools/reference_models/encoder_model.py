"""A BERT-shaped encoder (absolute positions, token types, post-LayerNorm, GELU) that returns
last_hidden_state; pooling and normalisation are left to the caller, as in transformers.js."""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

MASKED_SCORE = -1e9


@dataclass(frozen=True)
class EncoderShape:
    vocab_size: int
    hidden_size: int = 192
    num_hidden_layers: int = 4
    num_attention_heads: int = 3
    intermediate_size: int = 512
    max_position_embeddings: int = 64
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads


class EncoderLayer(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.heads, self.head_dim = shape.num_attention_heads, shape.head_dim
        width = shape.hidden_size
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.attention_output = nn.Linear(width, width)
        self.attention_norm = nn.LayerNorm(width, eps=shape.layer_norm_eps)
        self.intermediate = nn.Linear(width, shape.intermediate_size)
        self.output = nn.Linear(shape.intermediate_size, width)
        self.output_norm = nn.LayerNorm(width, eps=shape.layer_norm_eps)
        self.dropout = nn.Dropout(shape.hidden_dropout_prob)

    def _split(self, x):
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, allowed):
        batch, seq, width = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        weights = torch.softmax(scores.masked_fill(~allowed, MASKED_SCORE), dim=-1)
        attended = torch.matmul(weights, v).transpose(1, 2).reshape(batch, seq, width)
        x = self.attention_norm(x + self.dropout(self.attention_output(attended)))
        hidden = self.output(F.gelu(self.intermediate(x)))
        return self.output_norm(x + self.dropout(hidden))


class TinyEncoder(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        width = shape.hidden_size
        self.word_embeddings = nn.Embedding(shape.vocab_size, width)
        self.position_embeddings = nn.Embedding(shape.max_position_embeddings, width)
        self.token_type_embeddings = nn.Embedding(shape.type_vocab_size, width)
        self.embedding_norm = nn.LayerNorm(width, eps=shape.layer_norm_eps)
        self.dropout = nn.Dropout(shape.hidden_dropout_prob)
        self.layers = nn.ModuleList(EncoderLayer(shape) for _ in range(shape.num_hidden_layers))
        self.apply(self._init)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, attention_mask, token_type_ids):
        seq = input_ids.shape[1]
        positions = torch.arange(seq, device=input_ids.device)[None, :]
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = self.dropout(self.embedding_norm(x + self.token_type_embeddings(token_type_ids)))
        allowed = (attention_mask > 0)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, allowed)
        return x


def mean_pool(hidden, attention_mask):
    """Masked mean over tokens, then L2 normalisation: what feature-extraction(pooling mean, normalize) does."""
    mask = attention_mask[:, :, None].to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return F.normalize(summed, p=2, dim=1)


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())
