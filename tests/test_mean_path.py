"""The mean path's own arithmetic (hvaelab.mean_path); the model passes and the ONNX graph that
runs them are checked in tests/test_onnx_export.py."""

from __future__ import annotations

import numpy as np
import torch

from hvaelab.mean_path import mean_path_llr, pvalue


def test_mean_path_llr_subtracts_the_kl_of_every_layer_up_to_k():
    """Eq. 6 on the mean path, by hand: L = rec>0 - sum_i kl_i, L>k = rec>k - sum_{i>k} kl_i,
    LLR>k = L - L>k. Catches the KL of layer k alone subtracted instead of layers 1..k."""
    rec = torch.tensor([[-100.0, -120.0, -150.0, -200.0], [-10.0, -11.0, -12.0, -13.0]])
    kl = torch.tensor([[5.0, 3.0, 2.0], [1.0, 0.5, 0.25]])
    elbo = rec[:, 0] - kl.sum(1)
    want = torch.stack([elbo - (rec[:, k] - kl[:, k:].sum(1)) for k in (1, 2, 3)], 1)
    torch.testing.assert_close(want, torch.tensor([[15.0, 42.0, 90.0], [0.0, 0.5, 1.25]]))
    torch.testing.assert_close(mean_path_llr(rec, kl), want)


def test_mean_path_pvalues_count_reference_values_within_the_tolerance_as_ties():
    """Upper tail, (1 + #{r >= v - tol}) / (n + 1): an input equal to a reference value, or
    above it by less than the tolerance, is tied with it. Catches the tolerance's sign."""
    ref, tol = np.array([1.0, 2.0, 3.0, 4.0]), 1e-3
    got = pvalue(ref, np.array([4.0, 4.0 + tol / 2, 4.0 + 2 * tol, 2.5, 0.0]), tol)
    np.testing.assert_array_equal(got, np.array([2, 2, 1, 3, 5]) / 5)
