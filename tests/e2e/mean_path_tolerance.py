"""How close the browser's mean-path numbers must be to the Python's (test_site_model.py,
test_site_draw.py): ONNX Runtime Web and onnxruntime / PyTorch differ by float32 rounding.

* statistics (rec>k, KL) within ``RTOL`` relative on ``max(|b|, 1)``; LLR>k within ``RTOL``
  relative to the terms it is the difference of (:func:`llr_scale`);
* the second stage's score within ``RTOL`` relative or within what the statistics' own
  tolerance moves it (:func:`second_stage_tolerance`);
* p-values within ``P_ATOL``.
"""

from __future__ import annotations

import numpy as np

from hvaelab.mean_path import SECOND_STAGE
from hvaelab.onnx_export import score_with_sidecar

RTOL = 1e-5  # statistics and second-stage score, relative
P_ATOL = 1e-3  # p-values, absolute


def llr_scale(rec: np.ndarray, kl: np.ndarray) -> np.ndarray:
    """(N, L): the size of the terms LLR>k = rec>0 - rec>k - (kl1 + ... + klk) is made of,
    ``|rec>0| + |rec>k| + |kl1| + ... + |klk|`` (rec (N, L + 1), kl (N, L))."""
    rec, kl = np.asarray(rec, np.float64), np.asarray(kl, np.float64)
    return np.abs(rec[:, :1]) + np.abs(rec[:, 1:]) + np.cumsum(np.abs(kl), 1)


def second_stage_tolerance(outputs: dict, side: dict) -> np.ndarray:
    """How far the second stage's score moves, to first order, when each statistic it is
    computed from (rec>0..rec>L-1, kl1..klL) moves by the statistics' own tolerance
    ``RTOL * max(|stat|, 1)``: the sum over them of ``|s(stat + t) - s(stat - t)| / 2``.

    The score is ``-log q`` of standardised ``log1p`` statistics: float32 differences of about
    1e-6 between two runtimes' statistics move it by up to a few 1e-5 relative where it is
    small (about 1 nat), more than 1e-5 of its own size.
    """
    base = {name: np.asarray(outputs[name], np.float64) for name in ("rec", "kl", "llr")}

    def stage(o: dict) -> np.ndarray:
        return score_with_sidecar(o, side)["scores"][SECOND_STAGE]

    total = np.zeros(len(base["llr"]))
    for name in ("rec", "kl"):
        for j in range(base[name].shape[1]):
            t = np.zeros_like(base[name])
            t[:, j] = RTOL * np.maximum(np.abs(base[name][:, j]), 1.0)
            plus, minus = {**base, name: base[name] + t}, {**base, name: base[name] - t}
            total += np.abs(stage(plus) - stage(minus)) / 2
    return total
