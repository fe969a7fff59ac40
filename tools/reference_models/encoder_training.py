"""Trains tiny-encoder: WordPiece on WordNet lemmas and glosses, then contrastive training on
(lemma, gloss) and (lemma, synonym) pairs with in-batch negatives, then held-out retrieval and export."""

import os
import time
from dataclasses import dataclass, asdict

import numpy as np
import torch
from torch.nn import functional as F

from . import corpora, export_util
from .encoder_card import write_card
from .encoder_model import EncoderShape, TinyEncoder, mean_pool, parameter_count
from .retrieval import evaluate_retrieval
from .wordpiece import WordPiece

VOCAB_SIZE = 5000
MAX_LENGTH = 64


@dataclass(frozen=True)
class EncoderSettings:
    seed: int = 1234
    steps: int = 1200
    batch_size: int = 128
    learning_rate: float = 5e-4
    warmup_steps: int = 120
    weight_decay: float = 0.01
    scale: float = 20.0  # inverse temperature of the InfoNCE softmax
    gloss_probability: float = 0.6  # otherwise a synonym, when the synset has one

    @staticmethod
    def quick():
        return EncoderSettings(steps=80, warmup_steps=20)


def _learning_rate(settings, step):
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    remaining = (settings.steps - step) / max(1, settings.steps - settings.warmup_steps)
    return settings.learning_rate * max(0.0, remaining)


def _wordnet_texts(synsets):
    for synset in synsets:
        yield from synset.lemmas
        yield synset.definition
        yield from synset.examples


def batch_tensors(tokenizer, texts):
    encoded = [tokenizer.encode(t, MAX_LENGTH) for t in texts]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_id, dtype=torch.int64)
    mask = torch.zeros((len(encoded), width), dtype=torch.int64)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e)
        mask[row, : len(e)] = 1
    return ids, mask, torch.zeros_like(ids)


def embed(model, tokenizer, texts, batch_size=256):
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            ids, mask, types = batch_tensors(tokenizer, texts[start : start + batch_size])
            out.append(mean_pool(model(ids, mask, types), mask))
    return torch.cat(out).numpy()


def _pooled_by_length(model, tokenizer, texts, chunk=32):
    """Pooled embeddings computed in chunks of similar length, so short texts are not padded to the
    longest one in the batch. Each embedding depends only on its own tokens, so this changes speed only."""
    lengths = [len(tokenizer.encode(t, MAX_LENGTH)) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    pooled = [None] * len(texts)
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        ids, mask, types = batch_tensors(tokenizer, [texts[i] for i in rows])
        for row, vector in zip(rows, mean_pool(model(ids, mask, types), mask)):
            pooled[row] = vector
    return torch.stack(pooled)


def _pairs(synsets, order, rng, settings):
    anchors, positives = [], []
    for index in order:
        synset = synsets[index]
        lemmas = list(synset.lemmas)
        anchor = lemmas[rng.integers(len(lemmas))]
        others = [l for l in lemmas if l != anchor]
        if others and rng.random() >= settings.gloss_probability:
            positive = others[rng.integers(len(others))]
        else:
            positive = synset.definition
        anchors.append(anchor)
        positives.append(positive)
    return anchors, positives


def _duplicate_mask(texts):
    """True where two different rows carry the same text: not a real negative."""
    keys = [t.lower() for t in texts]
    return torch.tensor([[i != j and keys[i] == keys[j] for j in range(len(keys))] for i in range(len(keys))])


def _train(model, tokenizer, synsets, settings, log):
    rng = np.random.default_rng(settings.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
    )
    order, cursor = rng.permutation(len(synsets)), 0
    started, recent = time.time(), []
    labels = torch.arange(settings.batch_size)
    for step in range(settings.steps):
        if cursor + settings.batch_size > len(order):
            order, cursor = rng.permutation(len(synsets)), 0
        chosen = order[cursor : cursor + settings.batch_size]
        cursor += settings.batch_size
        anchors, positives = _pairs(synsets, chosen, rng, settings)
        model.train()
        a = _pooled_by_length(model, tokenizer, anchors)
        p = _pooled_by_length(model, tokenizer, positives)
        scores = settings.scale * a @ p.T
        scores = scores.masked_fill(_duplicate_mask(positives) | _duplicate_mask(anchors), -1e4)
        loss = (F.cross_entropy(scores, labels) + F.cross_entropy(scores.T, labels)) / 2
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(settings, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == settings.steps:
            log(f"encoder step {step + 1}/{settings.steps} loss {np.mean(recent):.3f} {time.time() - started:.0f}s")
            recent = []
    return time.time() - started


def _export(model, path):
    model.eval()
    dummy = (torch.ones(2, 5, dtype=torch.int64), torch.ones(2, 5, dtype=torch.int64), torch.zeros(2, 5, dtype=torch.int64))
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in ("input_ids", "attention_mask", "token_type_ids")}
    axes["last_hidden_state"] = {0: "batch_size", 1: "sequence_length"}
    torch.onnx.export(
        model,
        dummy,
        path,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes=axes,
        opset_version=17,
        do_constant_folding=True,
    )
    return export_util.check_onnx(path)


def _test_vectors(model, tokenizer):
    model.eval()
    sentences = ["a domesticated carnivorous mammal", "Dog", "Naïve café-owners' (re)opening, 2024!"]
    tokenizer_only = [
        "Über-ÉLITE\tTEXT  with [MASK] and 東京 tokens; e.g. x=3.5%",
        "pneumonoultramicroscopicsilicovolcanoconiosis " + "z" * 120,
    ]
    ids, mask, types = batch_tensors(tokenizer, sentences)
    with torch.no_grad():
        hidden = model(ids, mask, types)
        pooled = mean_pool(hidden, mask)
    return {
        "sentences": sentences,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "last_hidden_state": export_util.float32_base64(hidden.numpy()),
        "shape": list(hidden.shape),
        "embeddings": export_util.float32_base64(pooled.numpy()),
        "tokenizer": [{"text": s, "ids": tokenizer.encode(s, MAX_LENGTH)} for s in sentences + tokenizer_only],
    }


def _configs(shape, tokenizer):
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": shape.vocab_size,
        "hidden_size": shape.hidden_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "intermediate_size": shape.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": shape.hidden_dropout_prob,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": shape.max_position_embeddings,
        "type_vocab_size": shape.type_vocab_size,
        "layer_norm_eps": shape.layer_norm_eps,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "pad_token_id": tokenizer.pad_id,
        "torch_dtype": "float32",
        "transformers.js_config": {"dtype": "fp32"},
    }
    tokenizer_config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "mask_token": "[MASK]",
        "model_max_length": MAX_LENGTH,
        "clean_up_tokenization_spaces": True,
    }
    return config, tokenizer_config


def run(root, out_dir, settings, quick, log):
    torch.manual_seed(settings.seed)
    train_synsets, held_out = corpora.wordnet_synsets(root)
    log(f"wordnet: {len(train_synsets)} train synsets, {len(held_out)} held out")
    started = time.time()
    tokenizer = WordPiece.train(_wordnet_texts(train_synsets), VOCAB_SIZE)
    wordpiece_seconds = time.time() - started
    log(f"wordpiece: {len(tokenizer.vocab)} tokens in {wordpiece_seconds:.0f}s")
    shape = EncoderShape(vocab_size=len(tokenizer.vocab))
    untrained = TinyEncoder(shape)
    model = TinyEncoder(shape)
    model.load_state_dict(untrained.state_dict())
    train_seconds = _train(model, tokenizer, train_synsets, settings, log)
    metrics = evaluate_retrieval(held_out, lambda texts: embed(model, tokenizer, texts))
    baselines = {
        "bag_of_words_tfidf": evaluate_retrieval(held_out, None, tokenize=lambda t: _words(tokenizer, t)),
        "untrained_encoder": evaluate_retrieval(held_out, lambda texts: embed(untrained, tokenizer, texts)),
    }
    log(f"retrieval: {metrics}; baselines: {baselines}")

    os.makedirs(os.path.join(out_dir, "onnx"), exist_ok=True)
    onnx_bytes = _export(model, os.path.join(out_dir, "onnx", "model.onnx"))
    export_util.link_root_model(out_dir)
    config, tokenizer_config = _configs(shape, tokenizer)
    export_util.write_json(os.path.join(out_dir, "config.json"), config)
    export_util.write_json(os.path.join(out_dir, "tokenizer.json"), tokenizer.tokenizer_json(MAX_LENGTH))
    export_util.write_json(os.path.join(out_dir, "tokenizer_config.json"), tokenizer_config)
    export_util.write_text(os.path.join(out_dir, "vocab.txt"), tokenizer.vocab_txt())
    export_util.write_json(os.path.join(out_dir, "test_vectors.json"), _test_vectors(model, tokenizer))
    facts = {
        "quick": quick,
        "settings": asdict(settings),
        "shape": asdict(shape),
        "parameters": parameter_count(model),
        "onnx_bytes": onnx_bytes,
        "wordpiece_seconds": wordpiece_seconds,
        "train_seconds": train_seconds,
        "train_synsets": len(train_synsets),
        "held_out_synsets": len(held_out),
        "held_out_keys": [s.key for s in held_out],
        "metrics": metrics,
        "baselines": baselines,
        "torch": torch.__version__,
    }
    write_card(os.path.join(out_dir, "MODEL_CARD.md"), facts)
    export_util.write_json(os.path.join(out_dir, "training_facts.json"), facts)
    return facts


def _words(tokenizer, text):
    from .wordpiece import normalize, pretokenize

    return [w for w in pretokenize(normalize(text)) if any(c.isalnum() for c in w)]
