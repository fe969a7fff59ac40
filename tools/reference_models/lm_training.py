"""Trains tiny-lm: byte-level BPE on the training documents, then the decoder on random 256-token windows,
then held-out perplexity, ONNX export with a KV cache, and the files transformers.js needs."""

import math
import os
import time
from dataclasses import dataclass, asdict

import numpy as np
import torch
from torch.nn import functional as F

from . import corpora, export_util
from .byte_bpe import END_OF_TEXT, ByteLevelBpe
from .lm_card import write_card
from .lm_model import LmShape, OnnxLm, TinyLm, onnx_names, parameter_count

VOCAB_SIZE = 3072
EVAL_STRIDE = 128


@dataclass(frozen=True)
class LmSettings:
    seed: int = 1234
    steps: int = 1100
    batch_size: int = 16
    learning_rate: float = 2e-3
    min_learning_rate: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    bpe_training_chars: int = 0  # 0: all training text
    eval_windows: int = 0  # 0: the whole held-out stream

    @staticmethod
    def quick():
        return LmSettings(steps=60, warmup_steps=10, bpe_training_chars=2_000_000, eval_windows=40)


def _learning_rate(settings, step):
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return settings.min_learning_rate + (settings.learning_rate - settings.min_learning_rate) * cosine


def _stream(tokenizer, documents):
    ids = []
    for document in documents:
        ids.append(tokenizer.end_of_text_id)
        ids.extend(tokenizer.encode(document.text))
    return np.array(ids, dtype=np.int64)


def _train(model, stream, settings, log):
    context = model.shape.n_positions
    generator = np.random.default_rng(settings.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
        betas=(0.9, 0.95),
    )
    positions = torch.arange(context)[None, :].expand(settings.batch_size, context)
    model.train()
    started, recent = time.time(), []
    for step in range(settings.steps):
        starts = generator.integers(0, len(stream) - context - 1, size=settings.batch_size)
        windows = torch.from_numpy(np.stack([stream[s : s + context + 1] for s in starts]))
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(settings, step)
        logits, _ = model(windows[:, :-1], positions)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        recent.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == settings.steps:
            elapsed = time.time() - started
            log(f"lm step {step + 1}/{settings.steps} loss {np.mean(recent):.3f} {elapsed:.0f}s")
            recent = []
    return time.time() - started


@torch.no_grad()
def _evaluate(model, tokenizer, documents, settings):
    """Sliding windows of the full context, stride 128; every document token is scored once with at least
    128 tokens of context (except near the start). End-of-text separators are context, never targets."""
    model.eval()
    stream = _stream(tokenizer, documents)
    context = model.shape.n_positions
    total_nll, scored_tokens, window_count = 0.0, 0, 0
    scored_until = 1  # index of the next target still to score
    start = 0
    while scored_until < len(stream):
        if settings.eval_windows and window_count >= settings.eval_windows:
            break
        chunk = torch.from_numpy(stream[start : start + context + 1])
        inputs, targets = chunk[:-1][None], chunk[1:]
        logits, _ = model(inputs, torch.arange(inputs.shape[1])[None])
        nll = F.cross_entropy(logits[0], targets, reduction="none")
        first = scored_until - (start + 1)
        keep = targets[first:] != tokenizer.end_of_text_id
        total_nll += nll[first:][keep].sum().item()
        scored_tokens += int(keep.sum())
        scored_until = start + 1 + len(targets)
        start += EVAL_STRIDE
        window_count += 1
    # Bytes of exactly the scored text: decode the scored document tokens.
    scored_ids = [int(t) for t in stream[1:scored_until] if t != tokenizer.end_of_text_id]
    scored_bytes = len(tokenizer.decode(scored_ids).encode("utf-8"))
    return {
        "tokens": scored_tokens,
        "bytes": scored_bytes,
        "nll_per_token": total_nll / scored_tokens,
        "perplexity_per_token": math.exp(total_nll / scored_tokens),
        "perplexity_per_byte": math.exp(total_nll / scored_bytes),
        "bits_per_byte": total_nll / scored_bytes / math.log(2),
    }


def unigram_baseline(tokenizer, train_stream, held_out_docs):
    """Context-free reference point: add-one-smoothed token frequencies of the training stream."""
    eot = tokenizer.end_of_text_id
    counts = np.bincount(train_stream[train_stream != eot], minlength=len(tokenizer.vocab)).astype(np.float64) + 1
    log_probability = np.log(counts / counts.sum())
    ids = np.array([i for d in held_out_docs for i in tokenizer.encode(d.text)], dtype=np.int64)
    nll = -log_probability[ids].sum()
    held_out_bytes = sum(len(d.text.encode("utf-8")) for d in held_out_docs)
    return {
        "perplexity_per_token": math.exp(nll / len(ids)),
        "perplexity_per_byte": math.exp(nll / held_out_bytes),
        "bits_per_byte": nll / held_out_bytes / math.log(2),
    }


def _export(model, path):
    shape = model.shape
    inputs, outputs, axes = onnx_names(shape.n_layer)
    batch, seq, past = 2, 3, 4
    dummy = [
        torch.ones(batch, seq, dtype=torch.int64),
        torch.ones(batch, past + seq, dtype=torch.int64),
        torch.arange(past, past + seq)[None].expand(batch, seq).contiguous(),
    ]
    dummy += [torch.zeros(batch, shape.n_head, past, shape.head_dim) for _ in range(2 * shape.n_layer)]
    model.eval()
    torch.onnx.export(
        OnnxLm(model),
        tuple(dummy),
        path,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes=axes,
        opset_version=17,
        do_constant_folding=True,
    )
    if not export_util.replace_transposed_copy(path, _embedding_initializer(path)):
        raise SystemExit("tied lm head: no transposed copy of the embedding found in the export")
    return export_util.check_onnx(path)


def _embedding_initializer(path):
    import onnx

    graph = onnx.load(path).graph
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0].endswith("wte.weight")]
    return gathers[0].input[0]


@torch.no_grad()
def _test_vectors(model, tokenizer):
    """Inputs and PyTorch outputs for tools/check_reference_models.mjs (and our TypeScript tests)."""
    model.eval()
    sentences = [
        "Call me Ishmael.",
        "The State of the Union is strong, and the Congress has passed 12 bills!",
        "  Don't   stop\n\nbelieving—naïve café 2024\t",
        "It's 5 o'clock... THEY'LL say ''quoted''!!! 🎉 日本語 <|endoftext|>Next line\r\n\tend  ",
    ]
    prompt = "The President of the United States"
    prompt_ids = tokenizer.encode(prompt)
    full_ids = prompt_ids + tokenizer.encode(" shall")
    logits, _ = model(torch.tensor([full_ids]), torch.arange(len(full_ids))[None])
    # Left-padded batch: second row padded with one masked position.
    padded = [full_ids[:6], [0] + full_ids[:5]]
    mask = [[1] * 6, [0] + [1] * 5]
    padded_positions = [list(range(6)), [1] + list(range(5))]
    padded_logits, _ = model(torch.tensor(padded), torch.tensor(padded_positions), torch.tensor(mask))
    generated, ids = [], list(prompt_ids)
    for _ in range(20):
        step_logits, _ = model(torch.tensor([ids]), torch.arange(len(ids))[None])
        next_id = int(step_logits[0, -1].argmax())
        generated.append(next_id)
        ids.append(next_id)
    return {
        "tokenizer": [{"text": s, "ids": tokenizer.encode(s)} for s in sentences],
        "forward": {"input_ids": full_ids, "logits": export_util.float32_base64(logits[0].numpy())},
        "padded": {
            "input_ids": padded,
            "attention_mask": mask,
            "position_ids": padded_positions,
            "logits": export_util.float32_base64(padded_logits.numpy()),
        },
        "greedy": {"prompt": prompt, "prompt_ids": prompt_ids, "new_ids": generated, "text": tokenizer.decode(generated)},
    }


def _configs(shape, tokenizer):
    eos = tokenizer.end_of_text_id
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": shape.vocab_size,
        "n_positions": shape.n_positions,
        "n_ctx": shape.n_positions,
        "n_embd": shape.n_embd,
        "n_layer": shape.n_layer,
        "n_head": shape.n_head,
        "n_inner": shape.n_inner,
        "activation_function": "gelu",
        "layer_norm_epsilon": shape.layer_norm_epsilon,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "use_cache": True,
        "torch_dtype": "float32",
        "transformers.js_config": {"dtype": "fp32"},
    }
    tokenizer_config = {
        "tokenizer_class": "GPT2Tokenizer",
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "model_max_length": shape.n_positions,
        "clean_up_tokenization_spaces": False,
    }
    generation_config = {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos, "max_length": shape.n_positions}
    return config, tokenizer_config, generation_config


def run(root, out_dir, settings, quick, log):
    torch.manual_seed(settings.seed)
    train_docs, held_out_docs = corpora.language_model_corpus(root)
    log(f"lm corpus: {len(train_docs)} train documents, {len(held_out_docs)} held out")
    started = time.time()
    bpe_texts, budget = [], settings.bpe_training_chars
    for document in train_docs:
        if budget and sum(len(t) for t in bpe_texts) >= budget:
            break
        bpe_texts.append(document.text)
    tokenizer = ByteLevelBpe.train(bpe_texts, VOCAB_SIZE)
    bpe_seconds = time.time() - started
    log(f"bpe: {len(tokenizer.vocab)} tokens in {bpe_seconds:.0f}s")
    stream = _stream(tokenizer, train_docs)
    train_bytes = sum(len(d.text.encode("utf-8")) for d in train_docs)
    log(f"train stream: {len(stream)} tokens, {train_bytes / len(stream):.2f} bytes/token")

    shape = LmShape(vocab_size=len(tokenizer.vocab))
    model = TinyLm(shape)
    train_seconds = _train(model, stream, settings, log)
    metrics = _evaluate(model, tokenizer, held_out_docs, settings)
    log(f"held-out: {metrics}")
    baseline = unigram_baseline(tokenizer, stream, held_out_docs)
    log(f"unigram baseline: {baseline}")

    os.makedirs(os.path.join(out_dir, "onnx"), exist_ok=True)
    onnx_path = os.path.join(out_dir, "onnx", "model.onnx")
    onnx_bytes = _export(model, onnx_path)
    export_util.link_root_model(out_dir)
    config, tokenizer_config, generation_config = _configs(shape, tokenizer)
    export_util.write_json(os.path.join(out_dir, "config.json"), config)
    export_util.write_json(os.path.join(out_dir, "tokenizer.json"), tokenizer.tokenizer_json())
    export_util.write_json(os.path.join(out_dir, "tokenizer_config.json"), tokenizer_config)
    export_util.write_json(os.path.join(out_dir, "generation_config.json"), generation_config)
    export_util.write_json(os.path.join(out_dir, "test_vectors.json"), _test_vectors(model, tokenizer))
    facts = {
        "quick": quick,
        "settings": asdict(settings),
        "shape": asdict(shape),
        "parameters": parameter_count(model),
        "onnx_bytes": onnx_bytes,
        "bpe_seconds": bpe_seconds,
        "train_seconds": train_seconds,
        "train_tokens": len(stream),
        "train_bytes": train_bytes,
        "tokens_seen": settings.steps * settings.batch_size * shape.n_positions,
        "train_documents": len(train_docs),
        "held_out": [f"{d.source}/{d.name}" for d in held_out_docs],
        "metrics": metrics,
        "unigram_baseline": baseline,
        "torch": torch.__version__,
    }
    write_card(os.path.join(out_dir, "MODEL_CARD.md"), facts)
    export_util.write_json(os.path.join(out_dir, "training_facts.json"), facts)
    return facts
