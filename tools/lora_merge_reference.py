#!/usr/bin/env python3
"""An independent numpy reference of LoRA merging (TIES, DARE, task arithmetic) that writes the
fixtures test/compute/lora/Merge.test.ts checks src/compute/lora/Merge.ts against: same inputs, same
seed, merged updates equal to 1e-6. A dev tool: the tests read the committed JSON and never run
Python. Usage (Debian's python3-numpy is enough):

    /usr/bin/python3 tools/lora_merge_reference.py [--out test/fixtures/lora-merge]

What the methods compute, per module, with tau_t = scale_t * A_t^T B_t^T ([in, out], float64) the
update of adapter t (zero when the adapter lacks the module):
- task arithmetic: sum_t w_t tau_t.
- TIES: trim each tau_t by removing its floor(trim * n + 1/2) smallest |values| (stable order, so
  equal magnitudes go by index); elect a sign per entry, "weighted" = sign(sum_t trimmed_t) (the
  TIES paper, mergekit "sum"), "majority" = sign(sum_t sign(trimmed_t)) (mergekit "count"), a tied
  count deciding by the weighted rule, a zero sum electing +; average the trimmed values with the
  elected sign (0 if none); multiply by scalingCoef.
- DARE: one uniform draw per entry, in the order modules by name, adapters as given, entries
  row-major; drop when u < p; survivors divided by 1 - p when rescale; then sum_t w_t (w_t = 1 if
  not given).
The generator is xoshiro128** 1.0 seeded with two SplitMix64 outputs of the seed (low then high 32
bits of each), u = draw / 2^32. The merged update is re-factored by numpy's SVD, truncated to the
target rank; the fixture holds both the merged and the truncated dense updates.
"""

import argparse
import json
import os

import numpy as np

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF


class Xoshiro128StarStar:
    def __init__(self, seed):
        state = seed
        words = []
        for _ in range(2):
            state = (state + 0x9E3779B97F4A7C15) & MASK64
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            z ^= z >> 31
            words += [z & MASK32, z >> 32]
        self.s = words
        self.draws = 0

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (32 - k))) & MASK32

    def next_uint32(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK32, 7) * 9) & MASK32
        t = (s[1] << 9) & MASK32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 11)
        self.draws += 1
        return result

    def uniform(self):
        return self.next_uint32() / 4294967296.0


def dense_update(module, rank, alpha):
    a = np.array(module["A"], dtype=np.float32).astype(np.float64).reshape(rank, module["inFeatures"])
    b = np.array(module["B"], dtype=np.float32).astype(np.float64).reshape(module["outFeatures"], rank)
    total = np.zeros((module["inFeatures"], module["outFeatures"]))
    for r in range(rank):
        total = total + np.outer(a[r], b[:, r])
    return (alpha / rank) * total


def module_updates(adapters, name, shape):
    updates = []
    for adapter in adapters:
        module = adapter["modules"].get(name)
        updates.append(np.zeros(shape) if module is None else dense_update(module, adapter["rank"], adapter["alpha"]))
    return updates


def trim(update, fraction):
    flat = update.reshape(-1).copy()
    removed = min(flat.size, int(np.floor(fraction * flat.size + 0.5)))
    order = np.argsort(np.abs(flat), kind="stable")
    flat[order[:removed]] = 0.0
    return flat.reshape(update.shape), removed


def ties(updates, options):
    trimmed, removed = zip(*(trim(u, options["trimFraction"]) for u in updates))
    mass = np.zeros_like(updates[0])
    votes = np.zeros_like(updates[0])
    for u in trimmed:
        mass = mass + u
        votes = votes + np.sign(u)
    by_mass = np.where(mass >= 0, 1.0, -1.0)
    if options["signElection"] == "majority":
        elected = np.where(votes != 0, np.sign(votes), by_mass)
    else:
        elected = by_mass
    total = np.zeros_like(mass)
    count = np.zeros_like(mass)
    for u in trimmed:
        agrees = np.sign(u) == elected
        total = total + np.where(agrees, u, 0.0)
        count = count + agrees
    merged = np.where(count > 0, total / np.maximum(count, 1) * options["scalingCoef"], 0.0)
    return merged, {"trimmed": int(sum(removed))}


def weighted_sum(updates, weights):
    total = np.zeros_like(updates[0])
    for w, u in zip(weights, updates):
        total = total + w * u
    return total


def dare(updates, options, generator):
    p = options["dropRate"]
    factor = 1.0 / (1.0 - p) if options["rescale"] else 1.0
    thinned = []
    dropped = 0
    for u in updates:
        draws = np.array([generator.uniform() for _ in range(u.size)]).reshape(u.shape)
        drop = draws < p
        dropped += int(drop.sum())
        thinned.append(np.where(drop, 0.0, u * factor))
    weights = options.get("weights", [1.0] * len(updates))
    return weighted_sum(thinned, weights), {"dropped": dropped}


def merge(case):
    adapters, method = case["adapters"], case["method"]
    shapes = {}
    for adapter in adapters:
        for name, module in adapter["modules"].items():
            shapes.setdefault(name, (module["inFeatures"], module["outFeatures"]))
    rank = case["target"].get("rank", max(a["rank"] for a in adapters))
    alpha = case["target"].get("alpha", rank)
    generator = Xoshiro128StarStar(method["seed"]) if method["method"] == "dare" else None
    modules = {}
    for name in sorted(shapes):
        updates = module_updates(adapters, name, shapes[name])
        if method["method"] == "task_arithmetic":
            merged, counts = weighted_sum(updates, method["weights"]), {}
        elif method["method"] == "ties":
            merged, counts = ties(updates, method)
        else:
            merged, counts = dare(updates, method, generator)
        u, s, vt = np.linalg.svd(merged, full_matrices=False)
        kept = min(rank, s.size)
        if kept < s.size:
            # The truncation is only well defined (and comparable) with a gap after the kept values.
            assert s[kept - 1] > 1.001 * s[kept], f"{case['name']} {name}: singular values {s[kept - 1]} and {s[kept]} too close"
        truncated = (u[:, :kept] * s[:kept]) @ vt[:kept]
        error = np.linalg.norm(merged - truncated) / np.linalg.norm(merged)
        modules[name] = {
            "merged": rounded(merged),
            "truncated": rounded(truncated),
            "singularValues": rounded(s[:kept]),
            "refactorError": float(error),
            **counts,
        }
    random = None if generator is None else {"generator": "xoshiro128**", "seed": method["seed"], "draws": generator.draws}
    return {"rank": rank, "alpha": alpha, "random": random, "modules": modules}


def rounded(values):
    """Ten significant digits: far below the 1e-6 the test asks for, and a third of the bytes."""
    return [float("%.10g" % v) for v in np.asarray(values).reshape(-1)]


SHAPES = {"model.blocks.0.attn.c_attn": (8, 12), "model.blocks.0.mlp.fc_in": (24, 8), "model.blocks.1.attn.c_proj": (12, 12)}
DIGEST = "sha256-" + "7e" * 32


def make_adapter(rng, adapter_id, rank, alpha, skip=()):
    """Random factors, rounded to float32's shortest decimal so JSON carries them exactly."""
    modules = {}
    for name, (n_in, n_out) in SHAPES.items():
        if name in skip:
            continue
        a = rng.uniform(-1, 1, size=(rank, n_in)).astype(np.float32)
        b = rng.uniform(-0.5, 0.5, size=(n_out, rank)).astype(np.float32)
        modules[name] = {
            "inFeatures": n_in,
            "outFeatures": n_out,
            "A": [float(str(v)) for v in a.reshape(-1)],
            "B": [float(str(v)) for v in b.reshape(-1)],
        }
    return {"id": adapter_id, "baseModelDigest": DIGEST, "rank": rank, "alpha": alpha, "modules": modules}


def cases():
    rng = np.random.RandomState(20240605)
    three = [make_adapter(rng, "style", 2, 4), make_adapter(rng, "domain", 3, 3), make_adapter(rng, "task", 4, 8)]
    two = [make_adapter(rng, "left", 2, 2), make_adapter(rng, "right", 3, 6)]
    partial = three[:2] + [make_adapter(rng, "attention-only", 4, 4, skip=("model.blocks.0.mlp.fc_in",))]
    return [
        {"name": "ties-majority", "method": {"method": "ties", "trimFraction": 0.3, "signElection": "majority", "scalingCoef": 1.0}, "target": {}, "adapters": three},
        {"name": "ties-weighted", "method": {"method": "ties", "trimFraction": 0.5, "signElection": "weighted", "scalingCoef": 0.7}, "target": {"rank": 3, "alpha": 6}, "adapters": three},
        {"name": "dare-rescale", "method": {"method": "dare", "dropRate": 0.4, "rescale": True, "seed": 42, "weights": [0.5, 1.0, 0.25]}, "target": {}, "adapters": three},
        {"name": "dare-plain", "method": {"method": "dare", "dropRate": 0.25, "rescale": False, "seed": 9007199254740991}, "target": {"rank": 2}, "adapters": two},
        {"name": "task-arithmetic-exact", "method": {"method": "task_arithmetic", "weights": [0.5, -0.3, 1.2]}, "target": {"rank": 9}, "adapters": partial},
        {"name": "task-arithmetic-truncated", "method": {"method": "task_arithmetic", "weights": [1.0, 1.0]}, "target": {}, "adapters": two},
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="test/fixtures/lora-merge")
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    for case in cases():
        # Read the inputs back as the test will, so both sides start from the same float32 values.
        case = json.loads(json.dumps(case))
        case["expected"] = merge(case)
        with open(os.path.join(out, case["name"] + ".json"), "w") as file:
            json.dump(case, file, separators=(",", ":"))
            file.write("\n")
    seeds = [0, 1, 42, 9007199254740991]
    draws = {}
    for seed in seeds:
        generator = Xoshiro128StarStar(seed)
        draws[str(seed)] = [generator.next_uint32() for _ in range(8)]
    with open(os.path.join(out, "prng.json"), "w") as file:
        json.dump({"generator": "xoshiro128** seeded by SplitMix64", "firstDraws": draws}, file, indent=1)
        file.write("\n")


if __name__ == "__main__":
    main()
