"""The paper's hierarchical VAEs (the HVAE and BIVA, behind one forward contract in
:mod:`.base`): layers, distributions, likelihoods and the models themselves."""

from .base import HierarchicalVAE, HVAEOutput, LayerOutput
from .biva import BIVA, BIVACache
from .distributions import Gaussian
from .hvae import HVAE, EncoderCache
from .inputs import ModelInput, eval_mode, model_inputs
from .likelihoods import BernoulliLikelihood, DiscretizedLogisticMixture, make_likelihood

__all__ = [
    "BIVA",
    "BIVACache",
    "HVAE",
    "HierarchicalVAE",
    "MODEL_KINDS",
    "BernoulliLikelihood",
    "DiscretizedLogisticMixture",
    "EncoderCache",
    "Gaussian",
    "HVAEOutput",
    "LayerOutput",
    "ModelInput",
    "eval_mode",
    "model_inputs",
    "build_model",
    "make_likelihood",
    "model_kind",
]

# The model classes a checkpoint card's "kind" (or a preset, hvaelab.config.preset_kind) names.
MODEL_KINDS: dict[str, type[HierarchicalVAE]] = {"hvae": HVAE, "biva": BIVA}


def build_model(kind: str, config) -> HierarchicalVAE:
    """The one factory: a freshly built model of ``kind`` ("hvae" or "biva") for ``config``."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[kind](config)


def model_kind(model: HierarchicalVAE) -> str:
    """The kind of a model built by :func:`build_model` (what its checkpoint card records)."""
    return "biva" if isinstance(model, BIVA) else "hvae"
