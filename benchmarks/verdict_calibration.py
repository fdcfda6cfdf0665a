"""The verdict's calibration on unseen in-distribution images and its catch rate on MNIST.

Held-out FashionMNIST *training* images (seeded, outside the second stage's fit and selection
subsets, so no part of the detector was fitted on them) are scored against the checkpoint's
reference (its FashionMNIST test table) with each verdict rule of :mod:`hvaelab.verdict`; the
flagged fraction should match the nominal FPR. MNIST is only measured, never used to choose
anything. Prints one row per rule and FPR.

    HVAELAB_DATA=../shared/data .venv/bin/python benchmarks/verdict_calibration.py [--n 4000]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from hvaelab.checkpoint import load_model
from hvaelab.data import load_dataset
from hvaelab.scores import (
    load_tables,
    ood_scores,
    reference_key,
    score_inputs,
    tables_path,
    tie_tolerance,
    tolerant_verdict,
)
from hvaelab.second_stage import SecondStageConfig, training_subsets
from hvaelab.verdict import kl_means, llr_verdict_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="fashionmnist")
    ap.add_argument("--n", type=int, default=4000, help="held-out training images")
    ap.add_argument("--n-test", type=int, default=500, help="FashionMNIST and MNIST test images")
    a = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model(a.checkpoint)
    tables = load_tables(tables_path(lm.path))
    ref = tables[reference_key(tables, lm.dataset)]
    train = load_dataset(lm.dataset, "train")
    fit, sel = training_subsets(len(train), SecondStageConfig())
    rest = np.setdiff1d(np.arange(len(train)), np.concatenate([fit, sel]))
    held = np.sort(np.random.default_rng(1).choice(rest, a.n, replace=False))
    pick = lambda n, k: np.sort(np.random.default_rng(0).choice(n, k, replace=False))  # noqa: E731
    test, mnist = load_dataset(lm.dataset, "test"), load_dataset("mnist", "test")
    sets = {
        f"held-out {lm.dataset} train (n={a.n})": np.asarray(train.images)[held],
        f"{lm.dataset} test (n={a.n_test})": np.asarray(test.images)[pick(len(test), a.n_test)],
        f"mnist test (n={a.n_test})": np.asarray(mnist.images)[pick(len(mnist), a.n_test)],
    }
    print(
        f"{a.checkpoint} on {platform.processor() or platform.machine()}, torch {torch.__version__}"
    )
    scored = {}
    for name, x in sets.items():
        t = time.perf_counter()
        scored[name] = score_inputs(lm.model, x, ref, lt=False).scores
        print(f"scored {name} in {time.perf_counter() - t:.1f} s")
    refs, tol = ood_scores(ref), tie_tolerance(ref)
    L = ref.n_layers
    rules = {
        "second stage (default)": ["second-stage"],
        "LLR>k, k below top active layer": llr_verdict_names(L, means=kl_means(ref.columns, L)),
        "LLR>k, every k = 1..L (before)": [f"LLR>{k}" for k in range(1, L + 1)],
    }
    print(f"\n{'rule':34s} {'FPR':>5s}  " + "  ".join(f"{n:>28s}" for n in sets))
    for label, names in rules.items():
        if not all(n in refs for n in names):
            continue
        for fpr in (0.01, 0.05, 0.10):
            flagged = [
                float(np.mean(tolerant_verdict(refs, s, names, tol, fpr).is_ood))
                for s in scored.values()
            ]
            print(f"{label:34s} {fpr:5.2f}  " + "  ".join(f"{f:28.3f}" for f in flagged))


if __name__ == "__main__":
    main()
