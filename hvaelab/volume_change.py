"""Why the lowest levels dominate the likelihood: volume change through a bottleneck decoder.

Appendix C of Havtorn et al. (2021): take a deterministic decoder ``x = f_1(f_2(...f_L(z)))``
with ``f_i : R^{d_i} -> R^{d_{i-1}}`` and a bottleneck ``d_0 >= d_1 >= ... >= d_L``. By a change of
variables (eq. 13, 15)

    log p(x) = log p(z) - 1/2 * sum_i log det(J_i^T J_i),      J_i = df_i/dz_i  (d_{i-1} x d_i)

and each term grows with the layer's dimension: a ``d x d`` determinant is of order
``lambda^d`` (eq. 16). So ``log p(x)`` is dominated by the terms of the largest, lowest layers,
the low-level features, whatever the top (semantic) layer says.

With Gaussian Jacobians (appendix C.2: entries i.i.d. ``N(0, sigma^2)``), ``J^T J`` is Wishart
with ``d_{i-1}`` degrees of freedom and scale ``sigma^2 I_{d_i}``, whose log-determinant has the
closed-form mean :func:`expected_log_det` (Muirhead 2009, thm. 3.2.15). The paper's eq. 17 states
the same expectation for the inverse volume itself; the log is what adds up in ``log p(x)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import digamma


def _check_dims(dims: Sequence[int]) -> list[int]:
    dims = [int(d) for d in dims]
    if len(dims) < 2 or any(d < 1 for d in dims):
        raise ValueError(f"dims must be >= 2 positive layer sizes (d_0 = |x| first), got {dims}")
    if any(a < b for a, b in zip(dims, dims[1:], strict=False)):
        raise ValueError(f"dims must not grow towards the top (a bottleneck), got {dims}")
    return dims


def expected_log_det(d: int, n: int, sigma: float = 1.0) -> float:
    """E[log det(J^T J)] for ``J`` (n x d) with i.i.d. ``N(0, sigma^2)`` entries, ``n >= d``:
    ``d log(2 sigma^2) + sum_{j=0}^{d-1} psi((n - j) / 2)`` (Wishart log-determinant)."""
    if not (1 <= d <= n):
        raise ValueError(f"need 1 <= d <= n, got d={d}, n={n}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    j = np.arange(d)
    return float(d * np.log(2.0 * sigma**2) + digamma((n - j) / 2.0).sum())


def layer_terms(dims: Sequence[int], sigma: float = 1.0) -> np.ndarray:
    """Expected contribution ``-1/2 E[log det J_i^T J_i]`` of each layer i = 1..L to
    ``log p(x)`` (eq. 15), for a bottleneck with layer sizes ``dims = (d_0, d_1, ..., d_L)``."""
    dims = _check_dims(dims)
    return np.array(
        [-0.5 * expected_log_det(d, n, sigma) for n, d in zip(dims[:-1], dims[1:], strict=True)]
    )


def sampled_layer_terms(
    dims: Sequence[int], sigma: float = 1.0, draws: int = 16, seed: int = 0
) -> np.ndarray:
    """``-1/2 log det J_i^T J_i`` for ``draws`` random Gaussian Jacobians per layer, shape
    (draws, L): the Monte Carlo counterpart of :func:`layer_terms`."""
    dims = _check_dims(dims)
    rng = np.random.default_rng(seed)
    out = np.empty((draws, len(dims) - 1))
    for i, (n, d) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        for r in range(draws):
            jac = sigma * rng.standard_normal((n, d))
            out[r, i] = -0.5 * np.linalg.slogdet(jac.T @ jac)[1]
    return out


__all__ = ["expected_log_det", "layer_terms", "sampled_layer_terms"]
