"""A GPT-2-shaped decoder (learned positions, pre-LayerNorm, GELU MLP, tied output embedding) whose
forward pass takes and returns a key/value cache in the Hugging Face ONNX (optimum) layout."""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

MASKED_SCORE = -1e9


@dataclass(frozen=True)
class LmShape:
    vocab_size: int
    n_positions: int = 256
    n_embd: int = 192
    n_layer: int = 4
    n_head: int = 3
    n_inner: int = 768
    layer_norm_epsilon: float = 1e-5

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


class Attention(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.n_head, self.head_dim = shape.n_head, shape.head_dim
        self.c_attn = nn.Linear(shape.n_embd, 3 * shape.n_embd)
        self.c_proj = nn.Linear(shape.n_embd, shape.n_embd)

    def forward(self, x, allowed, past_key, past_value):
        batch, seq, width = x.shape
        q, k, v = self.c_attn(x).split(width, dim=2)
        q, k, v = (t.view(batch, seq, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if past_key is not None:
            k = torch.cat([past_key, k], dim=2)
            v = torch.cat([past_value, v], dim=2)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed, MASKED_SCORE)
        weights = torch.softmax(scores, dim=-1)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(batch, seq, width)
        return self.c_proj(out), k, v


class Block(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.ln_1 = nn.LayerNorm(shape.n_embd, eps=shape.layer_norm_epsilon)
        self.attn = Attention(shape)
        self.ln_2 = nn.LayerNorm(shape.n_embd, eps=shape.layer_norm_epsilon)
        self.c_fc = nn.Linear(shape.n_embd, shape.n_inner)
        self.mlp_proj = nn.Linear(shape.n_inner, shape.n_embd)

    def forward(self, x, allowed, past_key, past_value):
        attended, key, value = self.attn(self.ln_1(x), allowed, past_key, past_value)
        x = x + attended
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))
        return x, key, value


class TinyLm(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.wte = nn.Embedding(shape.vocab_size, shape.n_embd)
        self.wpe = nn.Embedding(shape.n_positions, shape.n_embd)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layer))
        self.ln_f = nn.LayerNorm(shape.n_embd, eps=shape.layer_norm_epsilon)
        self.apply(self._init)
        # GPT-2 scales residual projections down by depth.
        for block in self.blocks:
            for proj in (block.attn.c_proj, block.mlp_proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * shape.n_layer))

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, position_ids, attention_mask=None, past=None):
        """Returns logits [batch, seq, vocab] and the cache [(key, value)] covering past + seq."""
        seq = input_ids.shape[1]
        past_length = past[0][0].shape[2] if past is not None else 0
        total = past_length + seq
        key_positions = torch.arange(total, device=input_ids.device)
        query_positions = torch.arange(seq, device=input_ids.device) + past_length
        allowed = (key_positions[None, :] <= query_positions[:, None])[None, None]
        if attention_mask is not None:
            allowed = allowed & (attention_mask[:, None, None, :] > 0)
        x = self.wte(input_ids) + self.wpe(position_ids)
        present = []
        for index, block in enumerate(self.blocks):
            past_key, past_value = past[index] if past is not None else (None, None)
            x, key, value = block(x, allowed, past_key, past_value)
            present.append((key, value))
        logits = torch.matmul(self.ln_f(x), self.wte.weight.t())
        return logits, present


class OnnxLm(nn.Module):
    """The exported signature: flat tensors named as transformers.js and optimum expect."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, present = self.model(input_ids, position_ids, attention_mask, past)
        flat = [t for pair in present for t in pair]
        return (logits, *flat)


def onnx_names(n_layer):
    past = [f"past_key_values.{i}.{kind}" for i in range(n_layer) for kind in ("key", "value")]
    present = [f"present.{i}.{kind}" for i in range(n_layer) for kind in ("key", "value")]
    inputs = ["input_ids", "attention_mask", "position_ids", *past]
    outputs = ["logits", *present]
    axes = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for name in past:
        axes[name] = {0: "batch_size", 2: "past_sequence_length"}
    for name in present:
        axes[name] = {0: "batch_size", 2: "total_sequence_length"}
    return inputs, outputs, axes


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())
