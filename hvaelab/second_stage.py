"""A second stage over the HVAE's own statistics: a fully unsupervised OOD score beyond the paper.

The paper scores an input with one ratio, LLR>k (eq. 6). The model computes much more per input;
like DoSE (Morningstar et al., AISTATS 2021, https://arxiv.org/abs/2006.09273), this module fits
a simple density to the HVAE's per-example statistics on in-distribution *training* data only and
scores a new input by how unusual its statistics are:

    second-stage(x) = -log q(f(x)),   f(x) = log1p([-rec>0, ..., -rec>L-1, kl1, ..., klL]),

with the deterministic mean-path statistics of :mod:`hvaelab.example_stats` (reconstruction
log-likelihood from the latents above k, eq. 5's likelihood term at the means, and each layer's
closed-form KL, eq. 1), standardised, and ``q`` a Gaussian mixture with full covariances (EM,
k-means++ start). A feature is standardised by its spread over the training images but by no
less than ``min_std``: the KL of a collapsed latent layer varies by float noise only (BIVA's z10:
1.5e-6 nats), and dividing by that made the score swing by hundreds of nats when the weights were
merely rounded to float16. Every statistic is positive, so ``log1p`` tames their heavy right
tails; the set is not redundant (no statistic is a sum of others). Higher = more OOD, as every
hvaelab score.

Honest by construction (:func:`fit_second_stage` receives training images and nothing else):

* the mixture is fitted on a seeded subset of the training split (``n_fit`` images);
* its only choice, the number of components, is made by the mean log-likelihood of a disjoint
  held-out subset of the *training* split (``n_select`` images); the in-distribution test set
  stays the evaluation reference, and no OOD data or label is ever seen;
* the fit, its record and the training features it was fitted on are stored beside the
  checkpoint as ``NAME.second-stage.safetensors`` (arrays + JSON metadata, no pickle) and
  reproduce exactly under the same seed.

Paper: https://arxiv.org/abs/2102.08248 (this score is not in it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import atomic_write, read_safetensors
from .example_stats import stat_names
from .score_names import SECOND_STAGE_COLUMN

KIND = "hvaelab second stage"
SCORE_COLUMN = SECOND_STAGE_COLUMN  # its column in a score table (named in score_names)


@dataclass(frozen=True)
class SecondStageConfig:
    """Every setting of the second stage (fixed before any OOD number was computed)."""

    n_fit: int = 10_000  # training images the mixture is fitted on (seeded subset of the split)
    n_select: int = 2_000  # further training images whose log-likelihood picks the component count
    components: tuple[int, ...] = (1, 2, 4, 8, 16)  # candidate numbers of mixture components
    reg_covar: float = 1e-3  # added to every covariance's diagonal (features are standardised)
    # smallest spread a feature is standardised by: one that varies less over the training
    # images (the KL of a collapsed latent layer) would blow float noise up into the score
    min_std: float = 1e-3
    max_iter: int = 500  # EM iterations at most per candidate
    tol: float = 1e-7  # EM stops when the mean log-likelihood gains less than this
    seed: int = 0  # the subsets of the training split and the k-means++ start

    def __post_init__(self) -> None:
        if self.n_fit < 2 or self.n_select < 1:
            raise ValueError(
                f"need n_fit >= 2 and n_select >= 1, got {self.n_fit}, {self.n_select}"
            )
        if not self.components or min(self.components) < 1:
            raise ValueError(f"components must be positive counts, got {self.components}")
        if self.reg_covar <= 0:
            raise ValueError(f"reg_covar must be > 0, got {self.reg_covar}")
        if self.min_std <= 0:
            raise ValueError(f"min_std must be > 0, got {self.min_std}")


def features(columns: Mapping[str, np.ndarray], n_layers: int) -> np.ndarray:
    """(N, 2L) feature matrix ``log1p`` of the positive statistics (see the module docstring)."""
    names = stat_names(n_layers)
    missing = [n for n in names if n not in columns]
    if missing:
        raise KeyError(
            f"the statistics {missing} are missing: score with hvaelab.scores.score_tensor "
            "(it computes them since the second stage was added)"
        )
    raw = np.stack([np.asarray(columns[n], dtype=np.float64) for n in names], 1)
    raw[:, :n_layers] *= -1.0  # -log p(x|z) >= 0 for discrete likelihoods
    if not np.isfinite(raw).all():
        raise ValueError("statistics contain NaN or inf; check the inputs and the model")
    return np.log1p(np.maximum(raw, 0.0))


# ------------------------------------------------------------------- the Gaussian mixture
@dataclass
class Mixture:
    """Gaussian mixture, full covariances: weights (K,), means (K, F), covariances (K, F, F)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def component_log_density(self, x: np.ndarray) -> np.ndarray:
        """(N, K) ``log w_k + log N(x; mu_k, Sigma_k)``."""
        n, f = x.shape
        out = np.empty((n, len(self.weights)))
        params = zip(self.weights, self.means, self.covariances, strict=True)
        for k, (w, mu, cov) in enumerate(params):
            chol = np.linalg.cholesky(cov)
            sol = np.linalg.solve(chol, (x - mu).T)
            maha = (sol**2).sum(0)
            logdet = 2.0 * np.log(np.diag(chol)).sum()
            out[:, k] = math.log(w) - 0.5 * (f * math.log(2 * math.pi) + logdet + maha)
        return out

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """(N,) ``log q(x)``."""
        c = self.component_log_density(x)
        m = c.max(1, keepdims=True)
        return (m + np.log(np.exp(c - m).sum(1, keepdims=True)))[:, 0]


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: k rows of x, each further ones drawn by squared distance."""
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        i = rng.choice(len(x), p=d2 / total) if total > 0 else rng.integers(len(x))
        centres.append(x[i])
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    return np.stack(centres)


def _m_step(x: np.ndarray, resp: np.ndarray, reg: float) -> Mixture:
    nk = resp.sum(0) + 1e-12
    means = resp.T @ x / nk[:, None]
    covs = np.empty((len(nk), x.shape[1], x.shape[1]))
    for k in range(len(nk)):
        d = x - means[k]
        covs[k] = (resp[:, k, None] * d).T @ d / nk[k] + reg * np.eye(x.shape[1])
    return Mixture(nk / nk.sum(), means, covs)


def fit_mixture(
    x: np.ndarray, k: int, reg: float, max_iter: int, tol: float, seed: int
) -> tuple[Mixture, int]:
    """EM for a k-component mixture on x (N, F) from a k-means++ start; (mixture, iterations)."""
    if len(x) < k:
        raise ValueError(f"{len(x)} examples cannot fit {k} mixture components")
    rng = np.random.default_rng(seed)
    centres = _kmeans_pp(x, k, rng)
    nearest = ((x[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)
    resp = np.eye(k)[nearest]
    mix, prev, it = _m_step(x, resp, reg), -np.inf, 0
    while it < max_iter:
        it += 1
        c = mix.component_log_density(x)
        m = c.max(1, keepdims=True)
        log_norm = m + np.log(np.exp(c - m).sum(1, keepdims=True))
        resp = np.exp(c - log_norm)
        mix = _m_step(x, resp, reg)
        ll = float(log_norm.mean())
        if ll - prev < tol:
            break
        prev = ll
    return mix, it


# ------------------------------------------------------------------- the fitted second stage
@dataclass
class SecondStage:
    """A fitted second stage: standardisation, the chosen mixture, and the record of the fit."""

    n_layers: int
    feature_mean: np.ndarray
    feature_std: np.ndarray
    mixture: Mixture
    config: SecondStageConfig
    record: dict[str, Any] = field(default_factory=dict)
    # the features it was fitted on and selected with (N, 2L), for inspecting a fit just made
    # (None for fits made from features alone, and for a fit read from a file: not stored)
    fit_features: np.ndarray | None = None
    select_features: np.ndarray | None = None

    def standardise(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return (features(columns, self.n_layers) - self.feature_mean) / self.feature_std

    def score(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """(N,) the OOD score ``-log q(f(x))`` in nats of feature space; higher = more OOD."""
        return -self.mixture.log_density(self.standardise(columns))

    # -------------------------------------------------------------- storage (no pickle)
    def save(self, path: str | Path) -> Path:
        """Write the fit as safetensors (float64 arrays + JSON metadata), atomically. The
        features it was fitted on are not stored: they are 30 to 100 times the fit, and
        `hvaelab second-stage` recomputes them from the model and the recorded training indices.
        """
        from safetensors.numpy import save

        arrays = {
            "feature_mean": self.feature_mean,
            "feature_std": self.feature_std,
            "weights": self.mixture.weights,
            "means": self.mixture.means,
            "covariances": self.mixture.covariances,
        }
        arrays = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}
        meta = {
            "kind": KIND,
            "n_layers": str(self.n_layers),
            "config": json.dumps(asdict(self.config)),
            "record": json.dumps(self.record),
        }
        return atomic_write(Path(path), save(arrays, metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> SecondStage:
        """Read a fit written by :meth:`save`; a foreign or damaged file raises ValueError."""
        hint = "fit one with `hvaelab second-stage --checkpoint NAME`"
        meta, arrays = read_safetensors(path, "second stage", hint, KIND)
        try:
            if meta.get("kind") != KIND:
                raise ValueError(f"its metadata kind is {meta.get('kind')!r}, not {KIND!r}")
            cfg = json.loads(meta["config"])
            cfg["components"] = tuple(cfg["components"])
            out = cls(
                n_layers=int(meta["n_layers"]),
                feature_mean=arrays["feature_mean"],
                feature_std=arrays["feature_std"],
                mixture=Mixture(arrays["weights"], arrays["means"], arrays["covariances"]),
                config=SecondStageConfig(**cfg),
                record=json.loads(meta["record"]),
                fit_features=arrays.get("fit_features"),  # files of hvaelab 0.1 held them
                select_features=arrays.get("select_features"),
            )
            k, f = out.mixture.means.shape
            shapes_ok = (
                f == 2 * out.n_layers
                and out.feature_mean.shape == out.feature_std.shape == (f,)
                and out.mixture.weights.shape == (k,)
                and out.mixture.covariances.shape == (k, f, f)
            )
            for feats in (out.fit_features, out.select_features):
                shapes_ok = shapes_ok and (
                    feats is None or (feats.ndim == 2 and feats.shape[1] == f)
                )
            if not shapes_ok:
                raise ValueError("its arrays do not fit together")
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a readable {KIND} file ({e})") from e
        return out


def training_subsets(n: int, cfg: SecondStageConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint (fit, select) indices into a training split of ``n`` images."""
    need = cfg.n_fit + cfg.n_select
    if n < need:
        raise ValueError(f"the training split has {n} images; n_fit + n_select = {need}")
    perm = np.random.default_rng(cfg.seed).permutation(n)
    return np.sort(perm[: cfg.n_fit]), np.sort(perm[cfg.n_fit : need])


def fit_second_stage(
    model,
    train_images: np.ndarray,
    cfg: SecondStageConfig | None = None,
    batch_size: int = 256,
    progress: Callable[[str], None] | None = None,
) -> SecondStage:
    """Fit the second stage on a model's in-distribution *training* images (uint8 (N, 28, 28) or
    floats (N, C, H, W) in [0, 1]) and nothing else: the statistics of a seeded subset, the
    mixture per candidate component count, the count chosen by held-out training log-likelihood.
    """
    from .scores import score_tensor

    cfg = cfg or SecondStageConfig()
    say = progress or (lambda _msg: None)
    fit_idx, sel_idx = training_subsets(len(train_images), cfg)
    say(f"statistics of {len(fit_idx)} + {len(sel_idx)} training images")
    both = np.concatenate([fit_idx, sel_idx])
    stats = score_tensor(
        model,
        train_images[both],
        lt=False,
        bounds=False,
        batch_size=batch_size,
        progress=progress is not None,
    ).columns
    n_layers = model.n_layers
    f_all = features(stats, n_layers)
    stage = fit_features(f_all[: len(fit_idx)], f_all[len(fit_idx) :], cfg, n_layers, say)
    stage.fit_features, stage.select_features = f_all[: len(fit_idx)], f_all[len(fit_idx) :]
    stage.record.update(
        {
            "fit_indices_sha256": _sha(fit_idx),
            "select_indices_sha256": _sha(sel_idx),
            "n_train": int(len(train_images)),
        }
    )
    return stage


def fit_features(
    f_fit: np.ndarray,
    f_sel: np.ndarray,
    cfg: SecondStageConfig,
    n_layers: int,
    say: Callable[[str], None] = lambda _msg: None,
) -> SecondStage:
    """Standardise on ``f_fit``, fit a mixture per candidate count on it, keep the count with the
    highest mean log-likelihood of the held-out ``f_sel`` (the smaller count on ties)."""
    mean, spread = f_fit.mean(0), f_fit.std(0)
    std = np.maximum(spread, cfg.min_std)
    z_fit, z_sel = (f_fit - mean) / std, (f_sel - mean) / std
    candidates = []
    best: tuple[float, Mixture] | None = None
    for k in cfg.components:
        if k > len(z_fit):
            continue
        mix, iters = fit_mixture(z_fit, k, cfg.reg_covar, cfg.max_iter, cfg.tol, cfg.seed)
        held = float(mix.log_density(z_sel).mean())
        fitted = float(mix.log_density(z_fit).mean())
        candidates.append(
            {"components": k, "fit_loglik": fitted, "heldout_loglik": held, "em_iterations": iters}
        )
        say(f"  {k:>2} components: held-out log-likelihood {held:.4f} ({iters} EM iterations)")
        if best is None or held > best[0] + 1e-9:
            best = (held, mix)
    if best is None:
        raise ValueError(f"no candidate component count fits {len(z_fit)} examples")
    chosen = len(best[1].weights)
    say(f"chosen: {chosen} components")
    names = [f"log1p(-{n})" if n.startswith("rec") else f"log1p({n})" for n in stat_names(n_layers)]
    # by name, or by column for features that are not the model's statistics
    labels = names if len(names) == len(spread) else list(range(len(spread)))
    record = {
        "features": names,
        "floored_features": [labels[i] for i in np.flatnonzero(spread < cfg.min_std)],
        "selection": candidates,
        "chosen_components": chosen,
    }
    return SecondStage(n_layers, mean, std, best[1], cfg, record)


def _sha(idx: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()
