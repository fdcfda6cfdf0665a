"""Model configuration and named presets (paper appendix B, table 4).

A :class:`HVAEConfig` fully determines the architecture of :class:`hvaelab.model.HVAE`, and with
the model kind ("biva", :func:`preset_kind`) that of :class:`hvaelab.model.BIVA`, whose
``latents`` are the sizes of each of a layer's two units; it is stored in every checkpoint's JSON
card beside the kind, so a checkpoint rebuilds its model without code changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class HVAEConfig:
    """Architecture of a bottom-up hierarchical VAE (paper sec. 5 and appendix B).

    Stochastic layer i (1 = lowest) is preceded by a deterministic stage of ``blocks_per_stage``
    residual blocks with kernel ``kernels[i-1]`` whose last block strides by ``strides[i-1]``.
    """

    name: str = "hvae-grey"  # preset name, informational
    in_shape: tuple[int, int, int] = (1, 28, 28)  # (channels, height, width) of the input x
    latents: tuple[int, ...] = (8, 16, 8)  # z_1..z_L: channels (conv) or units (dense); table 4
    latent_kinds: tuple[str, ...] = (
        "conv",
        "dense",
        "dense",
    )  # "conv" keeps space, "dense" flattens
    kernels: tuple[int, ...] = (5, 3, 3)  # kernel size of each deterministic stage; table 4
    strides: tuple[int, ...] = (2, 2, 1)  # stride of each stage (in its last block); table 4
    channels: int = 64  # channels of every deterministic stage; appendix B
    blocks_per_stage: int = 3  # residual blocks per deterministic stage; appendix B
    skip: bool = True  # skip connections z_i -> z_{i+2} in both networks (z_0 = x); sec. 5
    likelihood: str = "bernoulli"  # "bernoulli" (grey, binarized) or "dmol" (natural images)
    n_mixtures: int = 10  # logistic mixture components when likelihood == "dmol"
    min_var: float = 1e-5  # floor added to the Softplus variance for numerical safety
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # free-form notes

    def __post_init__(self) -> None:
        n = len(self.latents)
        for attr in ("latent_kinds", "kernels", "strides"):
            if len(getattr(self, attr)) != n:
                raise ValueError(
                    f"HVAEConfig.{attr} has {len(getattr(self, attr))} entries but there are "
                    f"{n} latent layers: give one per layer."
                )
        if any(kind not in ("conv", "dense") for kind in self.latent_kinds):
            raise ValueError(f"latent_kinds must be 'conv' or 'dense', got {self.latent_kinds}")
        if self.likelihood not in ("bernoulli", "dmol"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'dmol', got {self.likelihood!r}")
        res = self.in_shape[1]
        for i, s in enumerate(self.strides):
            if res % s:
                raise ValueError(f"stage {i + 1}: resolution {res} is not divisible by stride {s}")
            res //= s

    @property
    def n_layers(self) -> int:
        """Number of stochastic layers L."""
        return len(self.latents)

    @property
    def colour(self) -> bool:
        """Whether the model takes colour (3-channel) images: 32x32 RGB, 8-bit, no binarization."""
        return self.in_shape[0] == 3

    def resolutions(self) -> list[int]:
        """Spatial size r_0 (input), r_1, ..., r_L of each stage's output."""
        res = [self.in_shape[1]]
        for s in self.strides:
            res.append(res[-1] // s)
        return res

    def latent_shape(self, i: int) -> tuple[int, ...]:
        """Shape (without batch) of latent z_i, i in 1..L."""
        r = self.resolutions()[i]
        c = self.latents[i - 1]
        return (c, r, r) if self.latent_kinds[i - 1] == "conv" else (c,)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HVAEConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown HVAEConfig fields {sorted(unknown)}: is this an hvaelab card?"
            )
        kw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)


_BIVA_LATENTS = (10, 8, 6, 42, 40, 38, 36, 34, 32, 30)
_BIVA_KINDS = ("conv",) * 3 + ("dense",) * 7
_BIVA_KERNELS = (5,) + (3,) * 9

PRESETS: dict[str, HVAEConfig] = {
    # The paper's grey-scale HVAE: z1 14x14x8 (conv), z2 16, z3 8 (dense); Bernoulli likelihood.
    "hvae-grey": HVAEConfig(),
    # The paper's natural-image HVAE: 32x32x3 input, z (16x16)x8, (8x8)x16, (4x4)x32; DMoL output.
    "hvae-natural": HVAEConfig(
        name="hvae-natural",
        in_shape=(3, 32, 32),
        latents=(8, 16, 32),
        latent_kinds=("conv", "conv", "conv"),
        kernels=(5, 3, 3),
        strides=(2, 2, 2),
        likelihood="dmol",
    ),
    # A tiny grey model for tests and quick demos (same structure, narrower).
    "hvae-tiny": HVAEConfig(name="hvae-tiny", channels=16, blocks_per_stage=1),
    # BIVA (appendix B.2, table 4; built by hvaelab.model.BIVA, see its module docstring for
    # why these choices): ten layers, three conv then seven dense; per-unit channels 10-8-6 and
    # 42..30. Grey: strides 2-1-1-2-1-1-1-1-1-1 (14x14 conv latents, 7x7 dense features; table
    # 4's third stride 2 would not divide 7). Natural: table 4's 2-1-1-2-1-2-1-1-1-1, an overall
    # stride of 8 as in B.2, 16x16 conv latents.
    "biva-grey": HVAEConfig(
        name="biva-grey",
        latents=_BIVA_LATENTS,
        latent_kinds=_BIVA_KINDS,
        kernels=_BIVA_KERNELS,
        strides=(2, 1, 1, 2, 1, 1, 1, 1, 1, 1),
    ),
    "biva-natural": HVAEConfig(
        name="biva-natural",
        in_shape=(3, 32, 32),
        latents=_BIVA_LATENTS,
        latent_kinds=_BIVA_KINDS,
        kernels=_BIVA_KERNELS,
        strides=(2, 1, 1, 2, 1, 2, 1, 1, 1, 1),
        likelihood="dmol",
    ),
    # A tiny grey BIVA for tests and CPU runs (same structure, narrower).
    "biva-tiny": HVAEConfig(
        name="biva-tiny",
        latents=_BIVA_LATENTS,
        latent_kinds=_BIVA_KINDS,
        kernels=_BIVA_KERNELS,
        strides=(2, 1, 1, 2, 1, 1, 1, 1, 1, 1),
        channels=16,
        blocks_per_stage=1,
    ),
}

# The model class each preset builds (hvaelab.model.build_model); "hvae" where not listed.
PRESET_KINDS: dict[str, str] = {"biva-grey": "biva", "biva-natural": "biva", "biva-tiny": "biva"}


def preset_kind(name: str) -> str:
    """The model kind ("hvae" or "biva") the named preset describes."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return PRESET_KINDS.get(name, "hvae")


def get_preset(name: str, **overrides: Any) -> HVAEConfig:
    """Return the named preset, optionally with fields overridden."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    d = PRESETS[name].to_dict()
    d.update(overrides)
    return HVAEConfig.from_dict(d)
