#!/usr/bin/env python3
"""PyTorch baseline for the training section of `npm run bench -- lora`: the same LoRA training as
ours (rank, alpha, target modules, AdamW, warmup + cosine, gradient clipping, batch size, epochs) on
the same reference LM weights and token windows, on the CPU with one thread, timed.

Reads the directory bench/support/LoraTorchInputs.ts writes (weights.bin, weights.json, task.json),
builds tools/reference_models/lm_model.py's TinyLm from those weights and first checks that its
held-out loss equals ONNX Runtime's (the same model, not a look-alike); then trains. Prints one JSON
line: {"torch", "blas", "blas_library", "steps", "seconds", "base_loss", "adapted_loss", "first_loss",
"last_loss"}, or {"unavailable": why}, which is also the answer when torch runs on Debian's reference
BLAS (tools/torch_blas.py: 113 s instead of 8 s with OpenBLAS; install python3-torch
libopenblas0-pthread, as tools/README.md says).

    /usr/bin/python3 tools/lora_torch_train.py /tmp/lora-torch-inputs
"""

import json
import math
import os
import sys
import time


def main():
    directory = sys.argv[1]
    try:
        import torch
        from torch import nn
        from torch.nn import functional as F
    except ImportError as error:
        print(json.dumps({"unavailable": f"python3 cannot import torch ({error})"}))
        return
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
    from reference_models.lm_model import LmShape, TinyLm
    from torch_blas import refusal, torch_blas

    torch.set_num_threads(1)
    blas = torch_blas(torch)
    if refusal(blas) is not None:
        print(json.dumps({"unavailable": refusal(blas), **blas}))
        return
    with open(os.path.join(directory, "task.json")) as file:
        task = json.load(file)
    with open(os.path.join(directory, "weights.json")) as file:
        index = json.load(file)["tensors"]
    raw = torch.frombuffer(bytearray(open(os.path.join(directory, "weights.bin"), "rb").read()), dtype=torch.float32)

    def tensor(name):
        entry = index[name]
        start = entry["offset"] // 4
        return raw[start:start + entry["length"]].view(*entry["shape"]).clone()

    vocab, width = index["model.wte.weight"]["shape"]
    layers = 1 + max(int(name.split(".")[2]) for name in index if name.startswith("model.blocks."))
    inner = index["model.blocks.0.c_fc.bias"]["shape"][0]
    positions = index["model.wpe.weight"]["shape"][0]
    model = TinyLm(LmShape(vocab_size=vocab, n_positions=positions, n_embd=width, n_layer=layers, n_head=3, n_inner=inner))
    linears = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    # MatMul weights are stored [in, out] (ONNX's layout); nn.Linear keeps [out, in].
    model.load_state_dict({name: tensor(f"model.{name}").t() if name in linears else tensor(f"model.{name}") for name, _ in model.named_parameters()})
    for parameter in model.parameters():
        parameter.requires_grad_(False)

    def loss_of(batch):
        ids = torch.tensor(batch, dtype=torch.long)
        position_ids = torch.arange(ids.shape[1])[None, :].expand_as(ids)
        logits, _ = model(ids, position_ids)
        return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))

    def held_out_loss():
        with torch.no_grad():
            windows = task["held_out"]
            total = sum(loss_of(windows[i:i + 8]).item() * len(windows[i:i + 8]) for i in range(0, len(windows), 8))
            return total / len(windows)

    base_loss = held_out_loss()
    if abs(base_loss - task["expected_base_loss"]) > 1e-3:
        print(json.dumps({"unavailable": f"the PyTorch model's held-out loss {base_loss:.5f} is not ONNX Runtime's {task['expected_base_loss']:.5f}"}))
        return

    config = task["config"]
    rank, alpha = config["rank"], config.get("alpha", 2 * config["rank"])
    scale = alpha / rank
    generator = torch.Generator().manual_seed(config.get("seed", 0))
    adapters = []
    modules = dict(model.named_modules())
    for target in task["targets"]:
        linear = modules[target[len("model."):]]
        bound = 1 / math.sqrt(linear.in_features)
        A = nn.Parameter((torch.rand(rank, linear.in_features, generator=generator) * 2 - 1) * bound)
        B = nn.Parameter(torch.zeros(linear.out_features, rank))
        adapters += [A, B]

        def forward(x, linear=linear, A=A, B=B):
            return F.linear(x, linear.weight, linear.bias) + scale * F.linear(F.linear(x, A), B)

        linear.forward = forward

    train = task["train"]
    batch_size, epochs = config.get("batchSize", 8), config.get("epochs", 1)
    per_epoch = math.ceil(len(train) / batch_size)
    total_steps = per_epoch * epochs
    warmup = config.get("warmupSteps", 0)
    peak = config.get("learningRate", 1e-3)
    optimizer = torch.optim.AdamW(adapters, lr=peak, betas=(0.9, 0.999), eps=1e-8, weight_decay=config.get("weightDecay", 0.01))

    def learning_rate(step):
        if step < warmup:
            return peak * (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return peak * 0.5 * (1 + math.cos(math.pi * progress))

    losses = []
    step = 0
    began = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            batch = [train[i] for i in order[start:start + batch_size]]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step)
            optimizer.zero_grad()
            loss = loss_of(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(adapters, config.get("maxGradNorm", 1.0))
            optimizer.step()
            losses.append(loss.item())
            step += 1
    seconds = time.perf_counter() - began
    print(json.dumps({
        "torch": torch.__version__,
        **blas,
        "steps": step,
        "seconds": seconds,
        "base_loss": base_loss,
        "adapted_loss": held_out_loss(),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }))


if __name__ == "__main__":
    main()
