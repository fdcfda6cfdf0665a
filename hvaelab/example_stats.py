"""Per-example statistics of an HVAE along its mean path: the second stage's inputs.

For an input x and the inference network's mean path of appendix D (every latent at its
posterior mean), with no sampling at all:

* ``rec>k`` (k = 0..L-1): ``log p(x | z)`` with ``z_{>k}`` the posterior means and ``z_{<=k}`` the
  conditional priors' means given them; ``rec>0`` is the reconstruction log-likelihood at the
  posterior means, and ``rec>k`` the deterministic counterpart of the likelihood term of L>k
  (eq. 5): how well x is reconstructed from its latents above k alone;
* ``kl<i>`` (i = 1..L): the closed-form ``KL(q(z_i | .) || p(z_i | z_{i+1}))`` of layer i, the
  conditional prior taken at the posterior means above; their sum is the KL term of the ELBO
  (eq. 1) at the mean path.

These are deterministic functions of the (binarized) input: reproducible without a seed and free
of the Monte Carlo noise that limits single-sample scores (sec. 4.2). They cost L forward passes
of the generative network and one of the inference network.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import HierarchicalVAE
from .model.hvae import EncoderCache


def stat_names(n_layers: int) -> list[str]:
    """Column names of the statistics of an ``n_layers`` model, in a fixed order."""
    return [f"rec>{k}" for k in range(n_layers)] + [f"kl{i}" for i in range(1, n_layers + 1)]


@torch.no_grad()
def mean_path_stats(
    model: HierarchicalVAE, x: Tensor, cache: EncoderCache | None = None
) -> dict[str, Tensor]:
    """The statistics of a batch ``x`` in model space (see the module docstring), each (B,).

    ``cache`` is :meth:`~hvaelab.model.hvae.HVAE.encode_means` of the same x where the caller
    has it.
    """
    cache = model.encode_means(x) if cache is None else cache
    out: dict[str, Tensor] = {}
    for k in range(model.n_layers):
        res = model(x, k=k, posterior="mean", prior="mean", cache=cache)
        out[f"rec>{k}"] = res.log_px
        if k == 0:
            for layer in res.layers:
                assert layer.posterior is not None
                out[f"kl{layer.index}"] = layer.posterior.kl(layer.prior)
    return {name: out[name] for name in stat_names(model.n_layers)}
