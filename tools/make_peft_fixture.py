#!/usr/bin/env python3
"""Writes test/fixtures/peft/: LoRA adapters saved by PEFT itself, so our PEFT import is tested
against the real writer, and safetensors written by the safetensors library. A dev tool: the tests
only read the committed files and never run Python. Usage:

    python tools/make_peft_fixture.py [--out DIR]

Needs torch, safetensors and peft (and transformers for the GPT-2 Conv1D case). Debian 12 ships
python3-torch 1.13 but neither python3-safetensors nor python3-peft, and PEFT 0.21 needs torch 2, so
the committed files were made in a venv with peft 0.21.0, safetensors 0.8.0, transformers 5.17.0 and
torch 2.13.0 (the exact versions are written to MADE_WITH.json).

What each directory holds (adapter_config.json + adapter_model.safetensors as PEFT's save_pretrained
writes them, plus reference.safetensors: for every adapted module `<module>.input`, two random input
rows, and `<module>.delta`, what PEFT's LoRA layer adds to the base layer's output for them):
- tiny-lm/: rank 4, alpha 8 on three linear layers of the reference LM (models/reference/tiny-lm),
  built from tools/reference_models/lm_model.py, so module names are `blocks.N...` (the ONNX export
  wraps it as `model`, hence `/model/blocks.N/...` node names).
- tiny-lm-rslora/: rank 2, alpha 4, use_rslora (scale alpha / sqrt(rank)) on one layer.
- gpt2-conv1d/: Hugging Face GPT-2 (Conv1D layers, weights stored [in, out]) with fan_in_fan_out.
And dtypes.safetensors: small tensors in F32, F16 and BF16 with file metadata.
Values are seeded and reproducible; the order of JSON keys is not (PEFT writes a set, safetensors a
Rust hash map), so a rerun may change bytes but not what the files say.
"""

import argparse
import json
import os
import sys

import peft
import safetensors
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reference_models.lm_model import LmShape, TinyLm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "peft")


def randomize_adapter(model, seed):
    """PEFT starts B at zero (the adapter is a no-op): give A and B values a trained adapter could have."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


def save_with_reference(model, modules, directory, seed):
    """save_pretrained, then each module's LoRA contribution on two random rows, as PEFT computes it."""
    model.save_pretrained(directory)
    os.remove(os.path.join(directory, "README.md"))  # PEFT's model-card template, not part of the adapter
    generator = torch.Generator().manual_seed(seed)
    reference = {}
    with torch.no_grad():
        for name in modules:
            layer = model.base_model.model.get_submodule(name)
            in_features = layer.base_layer.weight.shape[0 if getattr(layer, "fan_in_fan_out", False) else 1]
            rows = torch.randn(2, in_features, generator=generator)
            reference[f"{name}.input"] = rows
            reference[f"{name}.delta"] = (layer(rows) - layer.base_layer(rows)).contiguous()
    save_file(reference, os.path.join(directory, "reference.safetensors"))


def tiny_lm(directory, rank, alpha, modules, use_rslora, seed):
    torch.manual_seed(seed)
    base = TinyLm(LmShape(vocab_size=3072))
    config = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=modules, use_rslora=use_rslora,
        task_type=None,
    )
    model = get_peft_model(base, config)
    randomize_adapter(model, seed)
    save_with_reference(model, modules, directory, seed + 1)


def gpt2_conv1d(directory, seed):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2)
    base = transformers.GPT2LMHeadModel(config)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM")
    model = get_peft_model(base, lora)
    randomize_adapter(model, seed)
    save_with_reference(model, ["transformer.h.0.attn.c_attn"], directory, seed + 1)


def dtypes(path):
    values = torch.tensor([[0.5, -1.25, 3.0], [65504.0, -0.0, 1.0 / 3.0]])
    save_file(
        {"f32": values, "f16": values.half(), "bf16": values.bfloat16(), "empty": torch.zeros(0, 4)},
        path,
        metadata={"format": "pt", "note": "made by tools/make_peft_fixture.py"},
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=OUT)
    out = parser.parse_args().out
    for name in ("tiny-lm", "tiny-lm-rslora", "gpt2-conv1d"):
        os.makedirs(os.path.join(out, name), exist_ok=True)
    tiny_lm(
        os.path.join(out, "tiny-lm"), 4, 8,
        ["blocks.0.attn.c_attn", "blocks.1.mlp_proj", "blocks.3.attn.c_proj"], False, 1,
    )
    tiny_lm(os.path.join(out, "tiny-lm-rslora"), 2, 4, ["blocks.2.c_fc"], True, 2)
    gpt2_conv1d(os.path.join(out, "gpt2-conv1d"), 3)
    dtypes(os.path.join(out, "dtypes.safetensors"))
    versions = {
        "peft": peft.__version__, "safetensors": safetensors.__version__,
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    with open(os.path.join(out, "MADE_WITH.json"), "w") as file:
        json.dump(versions, file, indent=2)
        file.write("\n")


if __name__ == "__main__":
    main()
