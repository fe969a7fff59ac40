#!/usr/bin/python3
"""Trains and exports the two reference models in models/reference/ (tiny-lm, tiny-encoder).
A dev tool: the product never runs Python. Usage:
    /usr/bin/python3 tools/train_reference_models.py [--only lm|encoder] [--quick] [--out DIR]"""

import argparse
import os
import sys
import time

# Before torch loads OpenBLAS: one thread (the machine is shared), and the same summation order every run.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "models", "reference")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["lm", "encoder"], help="train one model only")
    parser.add_argument("--quick", action="store_true", help="1-2 minute smoke-test run, same shapes")
    parser.add_argument("--out", default=OUT, help=f"output directory (default {OUT})")
    args = parser.parse_args()
    # Reproducible and polite: one thread, deterministic kernels.
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    if args.only in (None, "lm"):
        from reference_models import lm_training

        settings = lm_training.LmSettings.quick() if args.quick else lm_training.LmSettings()
        facts = lm_training.run(ROOT, os.path.join(args.out, "tiny-lm"), settings, args.quick, log)
        log(f"tiny-lm: {facts['parameters']:,} parameters, ppl/token {facts['metrics']['perplexity_per_token']:.2f}")
    if args.only in (None, "encoder"):
        from reference_models import encoder_training

        settings = encoder_training.EncoderSettings.quick() if args.quick else encoder_training.EncoderSettings()
        facts = encoder_training.run(ROOT, os.path.join(args.out, "tiny-encoder"), settings, args.quick, log)
        log(f"tiny-encoder: {facts['parameters']:,} parameters, {facts['metrics']}")


if __name__ == "__main__":
    main()
