"""The paper's hierarchical VAE: layers, distributions, likelihoods and the model itself."""

from .distributions import Gaussian
from .hvae import HVAE, EncoderCache, HVAEOutput, LayerOutput
from .inputs import ModelInput, eval_mode, model_inputs
from .likelihoods import BernoulliLikelihood, DiscretizedLogisticMixture, make_likelihood

__all__ = [
    "HVAE",
    "BernoulliLikelihood",
    "DiscretizedLogisticMixture",
    "EncoderCache",
    "Gaussian",
    "HVAEOutput",
    "LayerOutput",
    "ModelInput",
    "eval_mode",
    "model_inputs",
    "make_likelihood",
]
