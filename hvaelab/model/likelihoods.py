"""Output distributions p(x|z) for the hierarchical VAE decoder.

The paper (Havtorn et al., 2021, Sec. 5 and Appendix B.1) uses a Bernoulli output distribution for
grey-scale images (FashionMNIST/MNIST, binarized pixels in {0, 1}) and a discretized mixture of
logistics (Salimans et al., 2017, "PixelCNN++", Sec. 2.1-2.2) for natural images (CIFAR10/SVHN,
8-bit pixels rescaled to [-1, 1]).

A decoder head outputs a parameter tensor of shape ``(B, P, H, W)`` with ``P = num_params(C)``;
a :class:`Likelihood` turns it into per-example ``log p(x|z)`` (summed over all dimensions),
expected images and samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BernoulliLikelihood",
    "DiscretizedLogisticMixture",
    "Likelihood",
    "bernoulli_log_prob",
    "make_likelihood",
]

LOG_SCALE_MIN = -7.0


def _check_4d(name: str, t: Tensor) -> None:
    if t.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W); got {tuple(t.shape)}.")


def _check_range(name: str, x: Tensor, lo: float, hi: float, hint: str) -> None:
    # inputs were checked at the door (model/inputs.py); compiled or exported graphs skip this
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    if x.numel() and (x.min().item() < lo - 1e-6 or x.max().item() > hi + 1e-6):
        raise ValueError(
            f"{name} must lie in [{lo}, {hi}]; got values in "
            f"[{x.min().item():.4g}, {x.max().item():.4g}]. {hint}"
        )


class Likelihood(torch.nn.Module):
    """Base class of a parameter-free output distribution over images."""

    def num_params(self, channels: int) -> int:
        """Number of decoder output channels ``P`` needed for images with ``channels`` channels."""
        raise NotImplementedError

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """``log p(x|params)`` summed over all non-batch dimensions, shape ``(B,)``."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """Expected image in data space ``[0, 1]``, shape ``(B, C, H, W)``."""
        raise NotImplementedError

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A sample in model-input space (the space :meth:`log_prob` expects)."""
        raise NotImplementedError

    def to_model_space(self, x01: Tensor) -> Tensor:
        """Map images in ``[0, 1]`` to the space :meth:`log_prob` expects."""
        raise NotImplementedError

    def forward(self, params: Tensor, x: Tensor) -> Tensor:
        return self.log_prob(params, x)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """``log p(x | logits) = sum x * z - softplus(z)`` per example, shape ``(B,)``.

    The same value as ``-binary_cross_entropy_with_logits`` (equal up to float rounding), in a
    form that is finite for every finite logit (softplus is evaluated stably) and that exports
    exactly to ONNX, where ``binary_cross_entropy_with_logits`` became an unstable graph that
    gave -inf on real images (``hvaelab export-onnx``).
    """
    return (x * logits - F.softplus(logits)).flatten(1).sum(1)


class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli per pixel; ``params`` are logits with ``P = C``."""

    def num_params(self, channels: int) -> int:
        if channels < 1:
            raise ValueError(f"channels must be >= 1; got {channels}.")
        return channels

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        _check_4d("params", params)
        _check_4d("x", x)
        if params.shape != x.shape:
            raise ValueError(
                f"Bernoulli logits shape {tuple(params.shape)} must equal x shape "
                f"{tuple(x.shape)} (P = C channels)."
            )
        _check_range("x", x, 0.0, 1.0, "Binarize images to {0, 1} before calling log_prob.")
        return bernoulli_log_prob(params, x.to(params.dtype))

    def mean(self, params: Tensor) -> Tensor:
        _check_4d("params", params)
        return torch.sigmoid(params)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _check_4d("params", params)
        return torch.bernoulli(torch.sigmoid(params), generator=generator)

    def to_model_space(self, x01: Tensor) -> Tensor:
        return x01


class DiscretizedLogisticMixture(Likelihood):
    """Discretized mixture of logistics (Salimans et al., 2017) on a ``2**n_bits`` grid in [-1, 1].

    Parameter layout along dim 1 of ``params`` (``M = n_mixtures``, ``C`` channels,
    ``K = C*(C-1)//2``), each group stored channel-major (index ``offset + c*M + m``):

    * ``[0, M)``: mixture logits;
    * ``[M, M + C*M)``: component means ``mu[c, m]``;
    * ``[M + C*M, M + 2*C*M)``: log-scales (clamped below at -7);
    * ``[M + 2*C*M, M*(1 + 2*C + K))``: raw autoregressive coefficients, squashed with tanh, for
      the pairs ``(c, j)`` with ``j < c`` in order ``(1,0), (2,0), (2,1), (3,0), ...``.

    Channel ``c`` of component ``m`` has mean ``mu[c, m] + sum_{j<c} coeff[c, j, m] * x_j``.
    Each bin has width ``2 / (2**n_bits - 1)``; the lowest bin extends to ``-inf`` and the highest
    to ``+inf`` so the probabilities of the grid values sum to one.
    """

    def __init__(self, n_mixtures: int = 10, n_bits: int = 8) -> None:
        super().__init__()
        if n_mixtures < 1:
            raise ValueError(f"n_mixtures must be >= 1; got {n_mixtures}.")
        if not 1 <= n_bits <= 16:
            raise ValueError(f"n_bits must be in [1, 16]; got {n_bits}.")
        self.n_mixtures = n_mixtures
        self.n_bits = n_bits
        self.n_levels = 2**n_bits - 1  # number of bin widths spanning [-1, 1]

    def extra_repr(self) -> str:
        return f"n_mixtures={self.n_mixtures}, n_bits={self.n_bits}"

    @staticmethod
    def _per_mixture(channels: int) -> int:
        return 1 + 2 * channels + channels * (channels - 1) // 2

    def num_params(self, channels: int) -> int:
        if channels < 1:
            raise ValueError(f"channels must be >= 1; got {channels}.")
        return self.n_mixtures * self._per_mixture(channels)

    def channels_from_params(self, num_params: int) -> int:
        """Infer ``C`` from ``P``; raises ValueError if ``P`` matches no channel count."""
        c = 1
        while self.num_params(c) < num_params:
            c += 1
        if self.num_params(c) != num_params:
            raise ValueError(
                f"params has {num_params} channels, which is not n_mixtures * (1 + 2C + C(C-1)/2) "
                f"for any C with n_mixtures={self.n_mixtures}; size the decoder head with "
                f"num_params(C)."
            )
        return c

    def _unpack(self, params: Tensor, channels: int | None = None):
        """Split ``params``: logits (B,M,H,W), means/log-scales (B,C,M,H,W), coeffs (B,K,M,H,W)."""
        _check_4d("params", params)
        b, p, h, w = params.shape
        if channels is None:
            channels = self.channels_from_params(p)
        elif p != self.num_params(channels):
            raise ValueError(
                f"params has {p} channels but a {channels}-channel image with "
                f"n_mixtures={self.n_mixtures} needs num_params({channels}) = "
                f"{self.num_params(channels)}."
            )
        m, c = self.n_mixtures, channels
        k = c * (c - 1) // 2
        logits, means, log_scales, coeffs = torch.split(params, [m, c * m, c * m, k * m], dim=1)
        means = means.reshape(b, c, m, h, w)
        log_scales = log_scales.reshape(b, c, m, h, w).clamp(min=LOG_SCALE_MIN)
        coeffs = torch.tanh(coeffs.reshape(b, k, m, h, w))
        return logits, means, log_scales, coeffs

    @staticmethod
    def _ar_means(means: Tensor, coeffs: Tensor, x: Tensor) -> Tensor:
        """Component means ``mean_c + sum_{j<c} coeff[c, j] * x_j``; ``x`` is (B, C, 1, H, W)."""
        channels = means.shape[1]
        out = [means[:, 0]]
        idx = 0
        for c in range(1, channels):
            mc = means[:, c]
            for j in range(c):
                mc = mc + coeffs[:, idx] * x[:, j]
                idx += 1
            out.append(mc)
        return torch.stack(out, dim=1)

    def _log_bin_prob(self, x: Tensor, mu: Tensor, log_s: Tensor) -> Tensor:
        """Log-probability of the bin containing grid value ``x`` under Logistic(mu, exp(log_s)).

        Interior bins use the exact identity
        ``sigmoid(a) - sigmoid(b) = sigmoid(a) * sigmoid(-b) * (1 - exp(b - a))``, which stays
        accurate in the tails where the CDF difference would cancel; if the bin is so narrow
        relative to the scale that ``1 - exp(b - a)`` underflows, the mid-bin density times the
        bin width is used instead (the fallback of Salimans et al., 2017).
        """
        half = 1.0 / self.n_levels
        inv_s = torch.exp(-log_s)
        centered = x - mu
        plus_in = inv_s * (centered + half)
        min_in = inv_s * (centered - half)
        log_cdf_plus = F.logsigmoid(plus_in)  # lowest bin: CDF from -inf
        log_one_minus_cdf_min = F.logsigmoid(-min_in)  # highest bin: up to +inf

        width_in = 2.0 * half * inv_s  # = plus_in - min_in >= 0
        tiny = torch.finfo(x.dtype).tiny ** 0.5
        log_1m_exp = torch.log(-torch.expm1(-width_in.clamp(min=tiny)))
        log_delta = log_cdf_plus + log_one_minus_cdf_min + log_1m_exp
        mid_in = inv_s * centered
        log_pdf_mid = mid_in - log_s - 2.0 * F.softplus(mid_in)
        log_mid_bin = log_pdf_mid + math.log(2.0 * half)
        interior = torch.where(width_in > tiny, log_delta, log_mid_bin)

        return torch.where(
            x < -1.0 + half,
            log_cdf_plus,
            torch.where(x > 1.0 - half, log_one_minus_cdf_min, interior),
        )

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        _check_4d("x", x)
        b, c, h, w = x.shape
        if params.dim() == 4 and (params.shape[0], *params.shape[2:]) != (b, h, w):
            raise ValueError(
                f"params shape {tuple(params.shape)} does not match x shape {tuple(x.shape)} in "
                f"batch or spatial size."
            )
        _check_range(
            "x",
            x,
            -1.0,
            1.0,
            "Map [0, 1] images with to_model_space() before calling log_prob.",
        )
        logits, means, log_scales, coeffs = self._unpack(params, c)
        xe = x.to(params.dtype).unsqueeze(2)  # (B, C, 1, H, W)
        mu = self._ar_means(means, coeffs, xe)
        log_px = self._log_bin_prob(xe, mu, log_scales).sum(1)  # (B, M, H, W)
        log_mix = torch.log_softmax(logits, dim=1)
        return torch.logsumexp(log_mix + log_px, dim=1).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        """Approximate E[x] in [0, 1]: mixture-weighted component means, with the autoregressive
        coefficients applied to the (clamped) means of the earlier channels."""
        logits, means, _, coeffs = self._unpack(params)
        channels = means.shape[1]
        comp = [means[:, 0].clamp(-1.0, 1.0)]
        idx = 0
        for c in range(1, channels):
            mc = means[:, c]
            for j in range(c):
                mc = mc + coeffs[:, idx] * comp[j]
                idx += 1
            comp.append(mc.clamp(-1.0, 1.0))
        comp_t = torch.stack(comp, dim=1)  # (B, C, M, H, W)
        weights = torch.softmax(logits, dim=1).unsqueeze(1)
        x = (weights * comp_t).sum(2)
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw a component (Gumbel-max), then each channel in order from its logistic, clamped
        to [-1, 1] and quantised to the ``2**n_bits`` grid."""
        logits, means, log_scales, coeffs = self._unpack(params)
        channels = means.shape[1]
        eps = torch.finfo(params.dtype).eps
        dev = generator.device if generator is not None else params.device
        with torch.no_grad():
            u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=dev)
            u = u.to(logits.device).clamp(eps, 1.0 - eps)
            choice = torch.argmax(logits - torch.log(-torch.log(u)), dim=1, keepdim=True)
            onehot = torch.zeros_like(logits).scatter_(1, choice, 1.0).unsqueeze(1)
            mu = (means * onehot).sum(2)  # (B, C, H, W)
            log_s = (log_scales * onehot).sum(2)
            coef = (coeffs * onehot).sum(2)  # (B, K, H, W)
            u = torch.rand(mu.shape, generator=generator, dtype=mu.dtype, device=dev).to(mu.device)
            u = u.clamp(eps, 1.0 - eps)
            noise = torch.log(u) - torch.log1p(-u)
            xs: list[Tensor] = []
            idx = 0
            for c in range(channels):
                mc = mu[:, c]
                for j in range(c):
                    mc = mc + coef[:, idx] * xs[j]
                    idx += 1
                xc = (mc + torch.exp(log_s[:, c]) * noise[:, c]).clamp(-1.0, 1.0)
                xs.append(self._quantise(xc))
            return torch.stack(xs, dim=1)

    def _quantise(self, x: Tensor) -> Tensor:
        """Round values in [-1, 1] to the nearest of the ``2**n_bits`` grid points."""
        return torch.round((x + 1.0) / 2.0 * self.n_levels) / self.n_levels * 2.0 - 1.0

    def to_model_space(self, x01: Tensor) -> Tensor:
        _check_range("x01", x01, 0.0, 1.0, "Pass images scaled to [0, 1].")
        return self._quantise(2.0 * x01 - 1.0)


def make_likelihood(name: str, **kw) -> Likelihood:
    """Build a likelihood by name: ``"bernoulli"`` or ``"dmol"`` (kwargs: n_mixtures, n_bits)."""
    key = name.lower()
    if key == "bernoulli":
        if kw:
            raise ValueError(f"'bernoulli' likelihood takes no options; got {sorted(kw)}.")
        return BernoulliLikelihood()
    if key == "dmol":
        unknown = set(kw) - {"n_mixtures", "n_bits"}
        if unknown:
            raise ValueError(
                f"Unknown option(s) {sorted(unknown)} for 'dmol'; allowed: n_mixtures, n_bits."
            )
        return DiscretizedLogisticMixture(**kw)
    raise ValueError(f"Unknown likelihood {name!r}; choose 'bernoulli' or 'dmol'.")
