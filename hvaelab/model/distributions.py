"""Diagonal Gaussian distributions and the stochastic layers that output them (appendix B).

The variance passes through ``Softplus_beta(h) = log(1 + exp(beta h)) / beta`` with
``beta = ln 2`` so that a pre-activation of 0 gives variance 1: with data-dependent
initialisation every stochastic layer starts as a standard Gaussian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import WNConv2d, WNLinear

LN2 = math.log(2.0)
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class Gaussian:
    """N(mean, diag(var)); log-densities are summed over all but the batch dimension."""

    mean: Tensor
    var: Tensor

    @property
    def std(self) -> Tensor:
        return self.var.sqrt()

    def log_prob(self, z: Tensor) -> Tensor:
        """log N(z; mean, var) summed per example, shape (B,)."""
        lp = -0.5 * (_LOG_2PI + self.var.log() + (z - self.mean).pow(2) / self.var)
        return lp.flatten(1).sum(1)

    def kl(self, other: Gaussian) -> Tensor:
        """Closed-form KL(self || other) of two diagonal Gaussians, summed per example, (B,)."""
        ratio = self.var / other.var
        kl = 0.5 * (ratio - 1.0 - ratio.log() + (self.mean - other.mean).pow(2) / other.var)
        return kl.flatten(1).sum(1)

    def sample(self, eps: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample ``mean + std * eps`` (eps drawn if not given)."""
        if eps is None:
            eps = torch.randn(
                self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
            )
        return self.mean + self.std * eps

    def repeat(self, n: int) -> Gaussian:
        """Repeat each example n times along the batch (for several samples per input)."""
        return Gaussian(self.mean.repeat_interleave(n, 0), self.var.repeat_interleave(n, 0))

    @staticmethod
    def standard(shape: tuple[int, ...], like: Tensor) -> Gaussian:
        zeros = torch.zeros(shape, device=like.device, dtype=like.dtype)
        return Gaussian(zeros, torch.ones_like(zeros))


def softplus_var(h: Tensor, min_var: float) -> Tensor:
    """Variance activation of appendix B: Softplus with beta = ln 2 (gives 1 at h = 0)."""
    return F.softplus(h, beta=LN2) + min_var


class GaussianHead(nn.Module):
    """Turn a (C, r, r) feature map into a diagonal Gaussian over a conv or dense latent."""

    def __init__(self, channels: int, res: int, latent_shape: tuple[int, ...], min_var: float):
        super().__init__()
        self.latent_shape, self.min_var = latent_shape, min_var
        if len(latent_shape) == 3:
            self.layer: nn.Module = WNConv2d(channels, 2 * latent_shape[0], 3)
            self.dense = False
        else:
            self.layer = WNLinear(channels * res * res, 2 * latent_shape[0])
            self.dense = True

    def forward(self, h: Tensor) -> Gaussian:
        out = self.layer(h.flatten(1) if self.dense else h)
        # Under mixed precision (bf16 autocast) the convolution's output is bf16 and a softplus
        # after it would stay bf16: the Gaussian (its variance, log-densities, KL) is computed
        # in the parameters' precision, float32.
        out = out.to(next(self.layer.parameters()).dtype)
        mean, pre_var = out.chunk(2, dim=1)
        return Gaussian(mean, softplus_var(pre_var, self.min_var))
