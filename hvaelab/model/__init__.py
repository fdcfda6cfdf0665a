"""The paper's hierarchical VAE: layers, distributions, likelihoods and the model itself."""

from .distributions import Gaussian
from .hvae import HVAE, EncoderCache, HVAEOutput, LayerOutput
from .likelihoods import BernoulliLikelihood, DiscretizedLogisticMixture, make_likelihood

__all__ = [
    "HVAE",
    "BernoulliLikelihood",
    "DiscretizedLogisticMixture",
    "EncoderCache",
    "Gaussian",
    "HVAEOutput",
    "LayerOutput",
    "make_likelihood",
]
