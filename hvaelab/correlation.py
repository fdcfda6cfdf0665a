r"""How similar are two models' representations, layer by layer? (paper sec. 2, fig. 2).

Given the same inputs, the representations of every layer of two models' inference networks are
compared with two measures. Early layers (low-level features) of models trained on different data
are expected to be similar and later ones less so.

**Mean maximum absolute correlation** (:func:`abs_corr_similarity`, the measure of fig. 2).
Write a layer's representation as observations x units, ``A`` (n x p) and ``B`` (n x q). Units of
a convolutional map (N, C, H, W) are its C channels and every spatial position is an extra
observation (n = N H W, so both maps must have the same spatial size); dense layers are (N, units).
With the Pearson correlation ``rho_ij = cov(A_i, B_j) / (sd(A_i) sd(B_j))``,

.. math::

    s(A, B) = \tfrac12 \Big( \tfrac1p \sum_{i=1}^p \max_j |\rho_{ij}|
                           + \tfrac1q \sum_{j=1}^q \max_i |\rho_{ij}| \Big),

i.e. each unit is matched to its most correlated unit of the other model, in both directions.
s is in [0, 1], symmetric, 1 when ``B = A``, and invariant to permuting units and to scaling or
shifting a unit (also by a negative factor). A *dead* unit (standard deviation at most
``1e-6 * (|mean| + 1e-6)``, e.g. constant) has no defined correlation; its correlations are taken
as 0, so it counts with similarity 0 instead of producing NaN.

**Linear CKA** (:func:`linear_cka`; Kornblith et al., 2019). With the representations flattened
per example, ``X`` (N x p) and ``Y`` (N x q), and columns centred,

.. math::

    \mathrm{CKA}(X, Y) = \frac{\mathrm{HSIC}(K, L)}{\sqrt{\mathrm{HSIC}(K, K)\,\mathrm{HSIC}(L, L)}}
    = \frac{\lVert Y^\top X \rVert_F^2}{\lVert X^\top X \rVert_F \, \lVert Y^\top Y \rVert_F}
    = \frac{\langle K, L \rangle_F}{\lVert K \rVert_F \lVert L \rVert_F},

with the linear kernels ``K = X X^T`` and ``L = Y Y^T``. The feature-space form is used when
``max(p, q) <= N`` and the equal example-space (Gram) form otherwise, whichever is cheaper. CKA
is in [0, 1], invariant to orthogonal transforms and isotropic scaling of either representation
(not to per-unit scaling). A representation that is constant over the examples has no defined
CKA; it gives 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .model import HierarchicalVAE, eval_mode, model_inputs
from .model.layers import Stage

MEASURES = ("abs_corr", "cka")
_ARCH_FIELDS = (
    "in_shape",
    "latents",
    "latent_kinds",
    "kernels",
    "strides",
    "channels",
    "blocks_per_stage",
    "skip",
    "likelihood",
)
_CHUNK = 1 << 16  # rows (abs-corr) or columns (CKA Gram form) processed at once


class ArchitectureMismatchError(ValueError):
    """Two models compared layer by layer do not have the same architecture."""


class RepresentationShapeError(ValueError):
    """Two representations cannot be compared (different numbers of examples or positions)."""


# ------------------------------------------------------------------------------- representations
@torch.no_grad()
def layer_representations(
    model: HierarchicalVAE, x01: Tensor, seed: int = 0, batch_size: int = 256
) -> dict[str, Tensor]:
    """Every layer of the inference network on its mean path (appendix D), bottom-up.

    Names are ``stage{i}.block{j}`` (output of residual block j of the deterministic stage below
    z_i, shape (N, C, r, r)) and ``z{i}`` (the posterior mean of z_i); inputs are binarized with
    ``seed`` for Bernoulli models. Tensors are float32 on the CPU.
    """
    L = model.n_layers
    names = []
    for i in range(1, L + 1):
        stage = model.enc_stage[i - 1]
        assert isinstance(stage, Stage)
        names += [f"stage{i}.block{j}" for j in range(1, len(stage.blocks) + 1)]
        names.append(f"z{i}")
    out: dict[str, list[Tensor]] = {n: [] for n in names}
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    handles = []
    with eval_mode(model):
        x = model_inputs(model, x01, "fixed", seed, what="x01").x
        try:
            for i, stage in enumerate(model.enc_stage, start=1):
                assert isinstance(stage, Stage)
                for j, block in enumerate(stage.blocks, start=1):

                    def hook(_m, _inp, y, name=f"stage{i}.block{j}"):
                        out[name].append(y.detach().float().cpu())

                    handles.append(block.register_forward_hook(hook))
            for a in range(0, x.shape[0], batch_size):
                cache = model.encode_means(x[a : a + batch_size])
                for i in range(1, L + 1):
                    out[f"z{i}"].append(cache.q[i].mean.detach().float().cpu())
        finally:
            for h in handles:
                h.remove()
    return {n: torch.cat(v) for n, v in out.items()}


# -------------------------------------------------------------------------------------- measures
def _units(t: Tensor, what: str) -> Tensor:
    """(observations, units): conv maps put spatial positions into the observations."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() == 2:
        return t
    if t.dim() == 4:
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    raise RepresentationShapeError(
        f"{what} must be (N, units) or (N, C, H, W), got shape {tuple(t.shape)}"
    )


def _standardised(u: Tensor) -> tuple[Tensor, Tensor]:
    """Column means and 1/std (0 for dead units), in float64."""
    n = u.shape[0]
    mean = torch.zeros(u.shape[1], dtype=torch.float64, device=u.device)
    for a in range(0, n, _CHUNK):
        mean += u[a : a + _CHUNK].double().sum(0)
    mean /= n
    ss = torch.zeros_like(mean)
    for a in range(0, n, _CHUNK):
        ss += (u[a : a + _CHUNK].double() - mean).pow(2).sum(0)
    return mean, _inverse_std(mean, (ss / n).sqrt())


def _inverse_std(mean: Tensor, std: Tensor) -> Tensor:
    """1/std per unit, 0 for a dead unit (std <= 1e-6 (|mean| + 1e-6): no defined correlation)."""
    dead = std <= 1e-6 * (mean.abs() + 1e-6)
    return torch.where(dead, torch.zeros_like(std), 1.0 / std.clamp_min(1e-300))


def _paired_units(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Both representations as (observations, units), checked to have the same observations."""
    ua, ub = _units(a, "a"), _units(b, "b")
    if a.dim() != b.dim() or ua.shape[0] != ub.shape[0]:
        raise RepresentationShapeError(
            f"representations of shapes {tuple(a.shape)} and {tuple(b.shape)} have different "
            "numbers of observations: give both the same examples (and, for conv maps, the "
            "same spatial size)"
        )
    return ua, ub


def _best_match(r: Tensor) -> float:
    """Mean over units of their largest |correlation|, in both directions, averaged."""
    r = r.abs()
    return float(0.5 * (r.max(1).values.mean() + r.max(0).values.mean()))


def correlation_matrix(a: Tensor, b: Tensor) -> Tensor:
    """(p, q) Pearson correlations between the units of a and b (dead units give 0)."""
    ua, ub = _paired_units(a, b)
    if ua.shape[0] < 2:
        raise RepresentationShapeError("correlations need at least 2 observations")
    ma, ia = _standardised(ua)
    mb, ib = _standardised(ub)
    cross = torch.zeros(ua.shape[1], ub.shape[1], dtype=torch.float64, device=ua.device)
    for s in range(0, ua.shape[0], _CHUNK):
        za = (ua[s : s + _CHUNK].double() - ma) * ia
        zb = (ub[s : s + _CHUNK].double() - mb) * ib
        cross += za.T @ zb
    return (cross / ua.shape[0]).clamp(-1.0, 1.0)


def abs_corr_similarity(a: Tensor, b: Tensor) -> float:
    """Mean maximum absolute Pearson correlation between units, symmetrised (module docstring)."""
    return _best_match(correlation_matrix(a, b))


def _flat(t: Tensor, what: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() < 2:
        raise RepresentationShapeError(
            f"{what} must be (N, features...) with a batch dimension, got {tuple(t.shape)}"
        )
    return t.reshape(t.shape[0], -1)


def _gram(x: Tensor, centre: bool = True) -> Tensor:
    """``X X^T`` in float64 (columns centred first if ``centre``), over column chunks."""
    n = x.shape[0]
    gram = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    step = max(256, (1 << 22) // max(n, 1))
    for a in range(0, x.shape[1], step):
        c = x[:, a : a + step].double()
        if centre:
            c = c - c.mean(0)
        gram += c @ c.T
    return gram


def linear_cka(a: Tensor, b: Tensor) -> float:
    """Linear CKA (Kornblith et al., 2019) between two representations of the same N examples."""
    x, y = _flat(a, "a"), _flat(b, "b")
    if x.shape[0] != y.shape[0]:
        raise RepresentationShapeError(
            f"CKA needs the same examples in both representations, got {x.shape[0]} and "
            f"{y.shape[0]}"
        )
    n = x.shape[0]
    if n < 2:
        raise RepresentationShapeError("CKA needs at least 2 examples")
    if max(x.shape[1], y.shape[1]) <= n:
        xc = x.double() - x.double().mean(0)
        yc = y.double() - y.double().mean(0)
        num = (yc.T @ xc).pow(2).sum()
        den = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    else:
        return _cka_of_grams(_gram(x), _gram(y))
    return _cka_ratio(num, den)


def _cka_of_grams(k: Tensor, m: Tensor) -> float:
    """CKA from two centred Gram matrices: <K, L>_F / (||K||_F ||L||_F)."""
    return _cka_ratio((k * m).sum(), torch.linalg.matrix_norm(k) * torch.linalg.matrix_norm(m))


def _cka_ratio(num: Tensor, den: Tensor) -> float:
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) in [0, 1]; 0 for a constant representation."""
    if not den > 0:
        return 0.0
    return float((num / den).clamp(0.0, 1.0))


# ------------------------------------------------------------------------ moments of any prefix
@dataclass(frozen=True)
class LayerMoments:
    r"""Per-example sums of one layer of two models: both measures on the first n examples.

    With A_i, B_i the (positions x units) representations of example i (r positions: H W for a
    conv map, 1 for a dense layer), kept in float64::

        sa[i] = sum_r A_i      saa[i] = sum_r A_i**2      sab[i] = A_i^T B_i   (p x q)
        sb[i] = sum_r B_i      sbb[i] = sum_r B_i**2      ka = X X^T, kb = Y Y^T (N x N)

    with X, Y the flattened (uncentred) representations. The means, variances and covariances of
    the first n examples are sums of the first n rows, so :meth:`abs_corr` and :meth:`cka` of
    any prefix cost O(p q + n^2), equal to :func:`abs_corr_similarity` and :func:`linear_cka`
    of ``a[:n], b[:n]`` up to rounding (one-pass moments; a centred Gram ``H K H``).
    Memory: N (p q + 2 p + 2 q) + 2 N^2 float64 numbers.
    """

    rows: int  # positions per example (H W of a conv map, 1 for a dense layer)
    sa: Tensor  # (N, p) sum over positions of a
    sb: Tensor  # (N, q)
    saa: Tensor  # (N, p) sum of squares
    sbb: Tensor  # (N, q)
    sab: Tensor  # (N, p, q) cross products
    ka: Tensor  # (N, N) uncentred Gram of the flattened a
    kb: Tensor  # (N, N)

    @classmethod
    def of(cls, a: Tensor, b: Tensor) -> LayerMoments:
        """The moments of two representations of the same N examples (shapes as the measures)."""
        ua, ub = _paired_units(a, b)
        if a.shape[0] != b.shape[0]:  # the same observations, split into examples differently
            raise RepresentationShapeError(
                f"moments need the same examples in both: {a.shape[0]} and {b.shape[0]}"
            )
        n = a.shape[0]
        ua = ua.reshape(n, -1, ua.shape[1]).double()  # (N, r, p)
        ub = ub.reshape(n, -1, ub.shape[1]).double()
        return cls(
            rows=ua.shape[1],
            sa=ua.sum(1),
            sb=ub.sum(1),
            saa=ua.pow(2).sum(1),
            sbb=ub.pow(2).sum(1),
            sab=torch.bmm(ua.transpose(1, 2), ub),
            ka=_gram(_flat(a, "a"), centre=False),
            kb=_gram(_flat(b, "b"), centre=False),
        )

    @property
    def n(self) -> int:
        """How many examples the moments hold."""
        return self.sa.shape[0]

    def _prefix(self, n: int | None) -> int:
        n = self.n if n is None else n
        if not 1 <= n <= self.n:
            raise ValueError(f"n must be in [1, {self.n}] (the examples held), got {n}")
        return n

    def abs_corr(self, n: int | None = None) -> float:
        """:func:`abs_corr_similarity` of the first n examples (all by default)."""
        n = self._prefix(n)
        obs = n * self.rows
        if obs < 2:
            raise RepresentationShapeError("correlations need at least 2 observations")

        def mean_inv(s: Tensor, ss: Tensor) -> tuple[Tensor, Tensor]:
            mean = s[:n].sum(0) / obs
            return mean, _inverse_std(
                mean, (ss[:n].sum(0) / obs - mean * mean).clamp_min(0.0).sqrt()
            )

        ma, ia = mean_inv(self.sa, self.saa)
        mb, ib = mean_inv(self.sb, self.sbb)
        cov = self.sab[:n].sum(0) / obs - torch.outer(ma, mb)
        return _best_match((cov * ia[:, None] * ib[None, :]).clamp(-1.0, 1.0))

    def cka(self, n: int | None = None) -> float:
        """:func:`linear_cka` of the first n examples (all by default): <HKH, HLH>_F / norms."""
        n = self._prefix(n)
        if n < 2:
            raise RepresentationShapeError("CKA needs at least 2 examples")

        def centred(k: Tensor) -> Tensor:
            k = k[:n, :n]
            return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()

        return _cka_of_grams(centred(self.ka), centred(self.kb))

    def similarity(self, measure: str, n: int | None = None) -> float:
        """The named measure (one of :data:`MEASURES`, a method of this class) of the first n."""
        return getattr(self, measure)(n)


# ----------------------------------------------------------------------------------- two models
def check_same_architecture(model_a: HierarchicalVAE, model_b: HierarchicalVAE) -> None:
    """Raise :class:`ArchitectureMismatchError` naming the fields where the configs differ."""
    diff = [
        f"{f}: {getattr(model_a.config, f)!r} vs {getattr(model_b.config, f)!r}"
        for f in _ARCH_FIELDS
        if getattr(model_a.config, f) != getattr(model_b.config, f)
    ]
    if type(model_a) is not type(model_b):  # an HVAE and a BIVA may share a config
        diff.insert(0, f"model class: {type(model_a).__name__} vs {type(model_b).__name__}")
    if diff:
        raise ArchitectureMismatchError(
            "layer-by-layer comparison needs two models of the same architecture; they differ "
            "in " + "; ".join(diff)
        )


def _checked_measures(measures: Sequence[str]) -> tuple[str, ...]:
    measures = tuple(measures)
    unknown = [m for m in measures if m not in MEASURES]
    if not measures or unknown:
        raise ValueError(f"measures must be a non-empty subset of {MEASURES}, got {measures}")
    return measures


def _layer_moments(
    model_a: HierarchicalVAE,
    model_b: HierarchicalVAE,
    x01: Tensor,
    seed: int,
    layers: Iterable[str] | None,
    batch_size: int,
) -> Iterator[tuple[str, LayerMoments]]:
    """Each chosen layer's moments, bottom-up; a layer's representations are freed once used."""
    check_same_architecture(model_a, model_b)
    ra = layer_representations(model_a, x01, seed=seed, batch_size=batch_size)
    rb = layer_representations(model_b, x01, seed=seed, batch_size=batch_size)
    names = list(ra)
    if layers is not None:
        wanted = list(layers)
        missing = [n for n in wanted if n not in ra]
        if missing:
            raise ValueError(f"unknown layers {missing}; available: {', '.join(names)}")
        names = [n for n in names if n in wanted]
    for name in names:
        yield name, LayerMoments.of(ra.pop(name), rb.pop(name))


@dataclass(frozen=True)
class PairMoments:
    """Two models' :class:`LayerMoments` on the same N inputs: fig. 2 for any first n of them.

    Built once by :meth:`of` (the models' forward passes), :meth:`similarities` then answers for
    any n <= N without running a model again (the correlation page's images/set slider).
    """

    layers: dict[str, LayerMoments]  # bottom-up, as layer_representations

    @classmethod
    def of(
        cls,
        model_a: HierarchicalVAE,
        model_b: HierarchicalVAE,
        x01: Tensor,
        seed: int = 0,
        layers: Iterable[str] | None = None,
        batch_size: int = 256,
    ) -> PairMoments:
        return cls(dict(_layer_moments(model_a, model_b, x01, seed, layers, batch_size)))

    @property
    def n(self) -> int:
        """How many inputs the moments hold."""
        return next(iter(self.layers.values())).n if self.layers else 0

    def similarities(
        self, n: int | None = None, measures: Sequence[str] = MEASURES
    ) -> dict[str, dict[str, float]]:
        """``{measure: {layer: similarity}}`` on the first n inputs (all by default)."""
        measures = _checked_measures(measures)
        return {
            m: {name: lm.similarity(m, n) for name, lm in self.layers.items()} for m in measures
        }


def layer_correlations(
    model_a: HierarchicalVAE,
    model_b: HierarchicalVAE,
    x01: Tensor,
    measures: Sequence[str] = MEASURES,
    seed: int = 0,
    layers: Iterable[str] | None = None,
    batch_size: int = 256,
) -> dict[str, dict[str, float]]:
    """``{measure: {layer: similarity}}`` of two models' representations of the same inputs.

    Layers are ordered bottom-up as in :func:`layer_representations`; ``layers`` restricts them.
    Memory grows as N times the summed layer sizes (about 0.6 MB per example for "hvae-grey"),
    plus one layer's :class:`LayerMoments` at a time.
    """
    measures = _checked_measures(measures)
    out: dict[str, dict[str, float]] = {m: {} for m in measures}
    for name, lm in _layer_moments(model_a, model_b, x01, seed, layers, batch_size):
        for m in measures:
            out[m][name] = lm.similarity(m)
    return out


__all__ = [
    "MEASURES",
    "ArchitectureMismatchError",
    "LayerMoments",
    "PairMoments",
    "RepresentationShapeError",
    "abs_corr_similarity",
    "check_same_architecture",
    "correlation_matrix",
    "layer_correlations",
    "layer_representations",
    "linear_cka",
]
