#!/usr/bin/env python3
"""PyTorch baseline for `npm run bench -- lora`: vector MicroLoRA forward and backward vectors per
second on the CPU with one thread, y = x + scale * (x A^T) B^T over a batch, for the shapes given.
Prints one JSON line: {"torch", "blas", "blas_library", "forward", "backward"} in vectors/s, or
{"unavailable": why}, which is also the answer when torch runs on Debian's reference BLAS
(tools/torch_blas.py; install python3-torch libopenblas0-pthread, as tools/README.md says).

The backward pass is the same arithmetic as test/support/MicroLoRA.ts (h = x A^T recomputed,
dx = dy + scale (dy B) A, dA += scale (dy B)^T x, dB += scale dy^T h), written with fused addmm
calls rather than autograd, which would only add graph bookkeeping: the strongest plain baseline.

    /usr/bin/python3 tools/lora_torch_bench.py --rank 2 --width 256 --batch 32
"""

import argparse
import json
import os
import sys
import time


def vectors_per_second(work, batch, seconds=0.3, rounds=5):
    for _ in range(50):
        work()
    iterations = 1
    while True:
        start = time.perf_counter()
        for _ in range(iterations):
            work()
        if time.perf_counter() - start >= seconds / 4:
            break
        iterations *= 2
    iterations = max(1, int(iterations * seconds / max(time.perf_counter() - start, 1e-9)))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            work()
        best = min(best, time.perf_counter() - start)
    return iterations * batch / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rank", type=int, default=2)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    try:
        import torch
    except ImportError as error:
        print(json.dumps({"unavailable": f"python3 cannot import torch ({error})"}))
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_blas import refusal, torch_blas

    torch.set_num_threads(1)
    blas = torch_blas(torch)
    if refusal(blas) is not None:
        print(json.dumps({"unavailable": refusal(blas), **blas}))
        return
    torch.manual_seed(0)
    rank, width, batch, scale = args.rank, args.width, args.batch, 1.0
    x = torch.randn(batch, width)
    dy = torch.randn(batch, width)
    a = torch.randn(rank, width) / width**0.5
    b = torch.randn(width, rank) * 0.01
    grad_a = torch.zeros_like(a)
    grad_b = torch.zeros_like(b)
    y = torch.empty(batch, width)
    dx = torch.empty(batch, width)

    def forward():
        torch.addmm(x, x @ a.T, b.T, alpha=scale, out=y)

    def backward():
        h = x @ a.T
        g = dy @ b
        torch.addmm(dy, g, a, alpha=scale, out=dx)
        grad_a.addmm_(g.T, x, alpha=scale)
        grad_b.addmm_(dy.T, h, alpha=scale)

    with torch.no_grad():
        result = {
            "torch": torch.__version__,
            **blas,
            "forward": vectors_per_second(forward, batch),
            "backward": vectors_per_second(backward, batch),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
