"""OOD scores of the paper for datasets and single inputs (secs. 4.2 and 5): one entry point.

Sign convention, used everywhere in hvaelab: a HIGHER score means MORE out-of-distribution.
Bounds (ELBO, L>k, L<l) are log-likelihoods in nats; as OOD scores they enter negated (``-L``,
which is bits/dim up to the factor ``1 / (D ln 2)``). Likelihood ratios enter as they are:

* ``LLR>k = ELBO - L>k`` (eq. 6), single-sample estimates averaged over S samples;
* ``LLR_S>k`` with importance sampling, in two forms: ``iw-elbo`` = ``L_S - L>k`` (eq. 10 of the
  paper: only the ELBO importance-weighted) and ``iw-both`` = ``L_S - L>k_S`` (both bounds
  importance-weighted, as in the authors' published code);
* ``LLR>k<l = L<l - L>k`` (eq. 21, appendix E), the generalised ratio left to future work.

:func:`score_tensor` scores a batch of images, :func:`score_dataset` a registered dataset; both
return a :class:`ScoreTable` of raw bounds (nats), from which :func:`ood_scores` derives every OOD
score by name. The CLI, the notebooks and the dashboards all go through these functions.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import distributed as ddp
from .artifacts import Artifacts, atomic_write, read_safetensors
from .bounds import bits_per_dim, bound_samples, log_mean_exp
from .complexity import png_bits
from .example_stats import mean_path_stats, stat_names
from .model import HierarchicalVAE, eval_mode, model_inputs
from .pvalues import Verdict
from .score_names import SECOND_STAGE_COLUMN as SCORE_COLUMN
from .score_names import ScoreName, TableKey, table_scores
from .verdict import kl_means, llr_verdict_names, verdict_names


@dataclass
class ScoreTable:
    """Per-example bounds in nats for one set of inputs at one number of samples S.

    ``columns`` maps ``"elbo"``, ``"L>k"`` (k = 1..L), ``"L<l"`` (l = 1..L) to the average of the S
    single-sample estimates, and the same names with ``"_iw"`` to the importance-weighted bounds
    (eq. 9; equal to the averages when S = 1). ``meta`` records how they were computed.
    """

    columns: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def n_samples(self) -> int:
        return int(self.meta.get("n_samples", 1))

    @property
    def n_layers(self) -> int:
        return int(self.meta["n_layers"])

    def subset(self, idx: np.ndarray) -> ScoreTable:
        return ScoreTable({k: v[idx] for k, v in self.columns.items()}, dict(self.meta))

    def bits_per_dim(self, column: str) -> np.ndarray:
        return bits_per_dim(self.columns[column], int(self.meta["n_dims"]))


def ood_scores(table: ScoreTable, iw: bool | None = None) -> dict[str, np.ndarray]:
    """Every OOD score (higher = more OOD) derived from a table's bounds, by name.

    Names (see :mod:`hvaelab.score_names`): ``-ELBO``, ``-L>k``, ``LLR>k`` (S = 1 style:
    averages of single-sample ratios), and when the table has S > 1 (or ``iw=True``):
    ``-ELBO_S``, ``-L>k_S``, ``LLR_S>k iw-elbo`` (eq. 10) and ``LLR_S>k iw-both``. With L<l
    columns: ``-L<l`` and ``LLR>k<l`` (= L<l - L>k, eq. 21). With PNG lengths: ``IC`` (and
    ``IC_S``), input complexity; with a second stage's column: ``second-stage``.
    """
    c = table.columns
    iw = table.n_samples > 1 if iw is None else iw
    lts = [int(n[2:]) for n in c if n.startswith("L<") and not n.endswith("_iw")]
    names = table_scores(table.n_layers, iw, lts, "png_bits" in c, SCORE_COLUMN in c)
    return {str(n): n.values(c) for n in names}


@torch.no_grad()
def score_tensor(
    model: HierarchicalVAE,
    x01: Tensor | np.ndarray,
    n_samples: int = 1,
    prior: str = "mean",
    lt: bool = True,
    seed: int = 0,
    batch_size: int = 128,
    max_rows: int = 2048,
    progress: Callable[[int, int], None] | bool = False,
    bounds: bool = True,
) -> ScoreTable:
    """Score images (N, C, H, W) in [0, 1] (or uint8 arrays (N, 28, 28)) for every k and l.

    ``prior`` is how the latents below k+1 are taken: "mean" (the conditional priors' means, as
    the authors' code) or "sample" (eq. 5 as written). Results do not depend on batch size or
    batch composition and are reproducible under ``seed``. Besides the bounds, the table holds
    the mean-path statistics of :mod:`hvaelab.example_stats`, the PNG length of each input as
    the model sees it (``png_bits``, :mod:`hvaelab.complexity`) and, for a model with a fitted
    second stage (``model.second_stage``, :mod:`hvaelab.second_stage`), its score.
    ``bounds=False`` computes the statistics only (the second stage's fit).
    """
    inp = model_inputs(model, x01, "fixed", seed)
    x = inp.x
    L, N = model.n_layers, x.shape[0]
    ls = list(range(1, L + 1)) if lt and bounds else []
    names = [f"L>{k}" if k else "elbo" for k in range(L + 1)] if bounds else []
    names += [f"L<{l_}" for l_ in ls]
    cols: dict[str, list[np.ndarray]] = {c: [] for n in names for c in (n, n + "_iw")}
    cols.update({c: [] for c in stat_names(L)})
    cols["png_bits"] = []
    binary = model.config.likelihood == "bernoulli"
    x01_np = inp.x01.detach().cpu().numpy()
    # Under torchrun, batches are dealt to ranks round-robin (hvaelab.distributed): every batch
    # is the one a single process would score, and the columns are gathered on every rank.
    mine = ddp.shard(-(-N // batch_size))
    n_mine = sum(min(batch_size, N - b * batch_size) for b in mine)
    bar = None
    if progress is True and ddp.current().is_main:
        from tqdm.auto import tqdm

        world = ddp.current().world_size
        desc = f"scoring (S={n_samples})" if bounds else "statistics"
        desc += f", rank 0 of {world}" if world > 1 else ""
        bar = tqdm(total=n_mine, desc=desc, unit="img")
    done = 0
    with eval_mode(model), torch.autocast(x.device.type, enabled=False):  # scores in fp32
        for bi in mine:
            sl = slice(bi * batch_size, (bi + 1) * batch_size)
            xb = x[sl]
            cache = model.encode_means(xb)
            for c, v in mean_path_stats(model, xb, cache).items():
                cols[c].append(v.double().cpu().numpy())
            cols["png_bits"].append(png_bits(x01_np[sl], binary))
            done += xb.shape[0]
            if not bounds:
                if bar is not None:
                    bar.update(xb.shape[0])
                elif callable(progress):
                    progress(done, n_mine)
                continue
            b = bound_samples(
                model,
                xb,
                ls=ls,
                n_samples=n_samples,
                prior=prior,
                seed=seed,
                max_rows=max_rows,
                cache=cache,
            )
            for k, v in b.gt.items():
                name = "elbo" if k == 0 else f"L>{k}"
                cols[name].append(v.mean(1).double().cpu().numpy())
                cols[name + "_iw"].append(log_mean_exp(v.double(), 1).cpu().numpy())
            for l_, v in b.lt.items():
                cols[f"L<{l_}"].append(v.mean(1).double().cpu().numpy())
                cols[f"L<{l_}_iw"].append(log_mean_exp(v.double(), 1).cpu().numpy())
            if bar is not None:
                bar.update(xb.shape[0])
            elif callable(progress):
                progress(done, n_mine)
    if bar is not None:
        bar.close()
    columns = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    if ddp.current().active:
        keys = list(columns)
        full = ddp.gather(
            np.stack([columns[k] for k in keys], 1), ddp.owners(N, batch_size), x.device
        )
        columns = {k: full[:, j] for j, k in enumerate(keys)}
    stage = getattr(model, "second_stage", None)
    if stage is not None and N:
        columns[SCORE_COLUMN] = stage.score(columns)
    return ScoreTable(columns, table_meta(model, N, n_samples, prior, seed))


def table_meta(
    model: HierarchicalVAE, n: int, n_samples: int, prior: str, seed: int
) -> dict[str, Any]:
    """How a :class:`ScoreTable` of ``n`` examples was computed (its ``meta``)."""
    return {
        "n_samples": n_samples,
        "prior": prior,
        "seed": seed,
        "n_layers": model.n_layers,
        "n_dims": int(math.prod(model.config.in_shape)),
        "n": n,
    }


def score_dataset(
    model: HierarchicalVAE,
    name: str,
    split: str = "test",
    data_dir: str | None = None,
    limit: int | None = None,
    **kw: Any,
) -> ScoreTable:
    """Score a registered dataset (see :mod:`hvaelab.data`); ``limit`` takes a seeded subset."""
    images, meta = dataset_images(name, split, data_dir, limit)
    table = score_tensor(model, images, **kw)
    table.meta.update(meta)
    return table


def dataset_images(
    name: str, split: str = "test", data_dir: str | None = None, limit: int | None = None
) -> tuple[Tensor, dict[str, Any]]:
    """The images :func:`score_dataset` scores, (N, C, H, W) in [0, 1], and the table metadata
    that says which they are (``limit``: a subset seeded 0, in the dataset's order)."""
    from .data import load_dataset, to_tensor

    ds = load_dataset(name, split, data_dir=data_dir)
    images = ds.images
    idx = np.arange(len(images))
    if limit and limit < len(images):
        idx = np.sort(np.random.default_rng(0).choice(len(images), limit, replace=False))
        images = images[idx]
    meta = {
        "dataset": name,
        "split": split,
        "data_md5": ds.md5,
        "indices": "all" if len(idx) == len(ds.images) else "seeded-subset-0",
    }
    return to_tensor(images), meta


# ------------------------------------------------------------------- stored score tables
# How tables are stored. Each column in the narrowest float type that holds every value exactly
# after float32 rounding: float16 for PNG lengths (whole numbers of bits below 2048), float32
# for the rest. The bounds and statistics come out of a float32 model, so float32 holds them
# exactly; what hvaelab computes from them in float64 (log-mean-exp over S samples, the second
# stage's density) moves by at most 6e-8 relative, far below the tie tolerance of p-values
# (TIE_RTOL) and every digit a page or table prints. A column identical to one stored before it
# (the "_iw" twins at S = 1, the mean-path statistics that every S repeats) is stored once and
# named in the metadata's "aliases". Loaded columns are float64.
TABLE_DTYPES = (np.float16, np.float32)


def second_stage_inputs(n_layers: int) -> list[str]:
    """The statistics a stored table leaves out: ``rec>k`` for k = 1..L-1 feed only the second
    stage's score, which the table stores itself (``rec>0`` and the KLs are shown by the
    pages). Partial rows keep them: the second stage scores a table when it is done."""
    return [name for name in stat_names(n_layers) if name.startswith("rec>") and name != "rec>0"]


def _narrowest(v: np.ndarray) -> np.ndarray:
    v32 = np.ascontiguousarray(v, dtype=np.float32)
    with np.errstate(over="ignore"):
        v16 = v32.astype(np.float16)
    return v16 if np.array_equal(v16.astype(np.float32), v32) else v32


def save_tables(
    path: str | Path,
    tables: Iterable[ScoreTable],
    info: dict | None = None,
    second_stage_inputs_too: bool = False,
) -> Path:
    """Write score tables to ``path`` (safetensors + JSON metadata), atomically: float32 (or
    float16 where exact) columns, each distinct column once, without the statistics that only
    feed the second stage (:func:`second_stage_inputs`) unless ``second_stage_inputs_too``."""
    from safetensors.numpy import save

    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    aliases: dict[str, str] = {}
    first: dict[bytes, str] = {}  # a column's dtype, shape and bytes -> the name it is stored under
    metas: dict[str, Any] = {}
    for t in tables:
        if not t.meta.get("dataset"):
            raise ValueError(
                "a score table needs meta['dataset'] to be saved: score_dataset sets it; for "
                "score_tensor tables set table.meta['dataset'] = NAME first"
            )
        key = str(TableKey(t.meta["dataset"], t.n_samples))
        if key in metas:
            raise ValueError(f"two score tables for {key}: save one table per dataset and S")
        metas[key] = t.meta
        n_layers = t.meta.get("n_layers")
        keep_all = second_stage_inputs_too or n_layers is None
        left_out = (
            set() if keep_all or n_layers is None else set(second_stage_inputs(int(n_layers)))
        )
        for col, v in t.columns.items():
            if col in left_out:
                continue
            name, v = f"{key}/{col}", _narrowest(v)
            fingerprint = f"{v.dtype}{v.shape}".encode() + hashlib.sha256(v.tobytes()).digest()
            if fingerprint in first:
                aliases[name] = first[fingerprint]
            else:
                first[fingerprint], arrays[name] = name, v
    meta = {"tables": json.dumps(metas), "info": json.dumps(info or {})}
    if aliases:
        meta["aliases"] = json.dumps(aliases)
    return atomic_write(path, save(arrays, metadata=meta))


def load_tables(path: str | Path) -> dict[str, ScoreTable]:
    """Read score tables written by :func:`save_tables`, keyed ``"DATASET@S<n>"``; columns are
    float64 (files of hvaelab 0.1, float64 without aliases, read the same)."""
    hint = "write them with `hvaelab tables --checkpoint NAME`"
    meta, arrays = read_safetensors(path, "score tables", hint, "hvaelab score table")
    try:
        if "tables" not in meta:
            raise ValueError("it holds no score-table metadata; is it a checkpoint's weights?")
        out = {key: ScoreTable({}, m) for key, m in json.loads(meta["tables"]).items()}
        columns = {name: v.astype(np.float64) for name, v in arrays.items()}
        for name, source in json.loads(meta.get("aliases", "{}")).items():
            columns[name] = columns[source].copy()
        for name, v in columns.items():
            key, col = name.split("/", 1)
            out[key].columns[col] = v
    except (ValueError, KeyError) as e:  # foreign or damaged
        raise ValueError(f"{path} is not a readable hvaelab score table file ({e})") from e
    return out


def tables_path(checkpoint_stem: str | Path) -> Path:
    """Where a checkpoint's score tables live: beside it, ``NAME.scores.safetensors``."""
    return Artifacts.of(checkpoint_stem).scores


# ------------------------------------------------------------------------ single inputs
# Scores of the same input agree only to float32 rounding across batch compositions (~1e-4 nats
# on bounds of ~1e3 nats); p-values treat reference values this close as ties, so an input equal
# to a reference example is never judged more extreme than itself (a conservative correction).
TIE_RTOL = 1e-5


def tie_tolerance(reference: ScoreTable) -> float:
    """Absolute tolerance (nats) below which two scores count as tied, from the bounds' scale."""
    scale = max(float(np.abs(v).max()) for v in reference.columns.values())
    return TIE_RTOL * (1.0 + scale)


def _pvalue(reference: np.ndarray, values: np.ndarray, tail: str, tol: float) -> np.ndarray:
    """Empirical p-value (see :mod:`hvaelab.pvalues`) with ties up to ``tol``."""
    from .pvalues import empirical_pvalue

    if tail == "upper":
        return empirical_pvalue(reference, values - tol, "upper")
    if tail == "lower":
        return empirical_pvalue(reference, values + tol, "lower")
    up = empirical_pvalue(reference, values - tol, "upper")
    lo = empirical_pvalue(reference, values + tol, "lower")
    return np.minimum(1.0, 2.0 * np.minimum(up, lo))


def score_tails(name: str) -> str:
    """Tail of the empirical p-value for a score (:attr:`ScoreName.tail`)."""
    return ScoreName.parse(name).tail


@dataclass
class InputScores:
    """Scores of new inputs, with p-values and a verdict against an in-distribution reference
    table (sec. 5) when there is one; without a reference the p-value and verdict fields are
    None."""

    names: list[str]
    scores: dict[str, np.ndarray]  # every OOD score (higher = more OOD), by name
    p_values: dict[str, np.ndarray] | None  # empirical p-value of each score vs the reference
    verdict_scores: list[str]  # the scores the verdict is taken over (hvaelab.verdict)
    is_ood: np.ndarray | None  # (N,) bool: any of their p-values below fpr / K (Bonferroni)
    decisive: list[str] | None  # per input, the score with the smallest p-value
    min_p: np.ndarray | None  # (N,) that smallest p-value
    fpr: float
    bits_per_dim: np.ndarray  # (N,) -ELBO in bits/dim
    # per-example mean-path statistics (rec>k, kl<i>: hvaelab.example_stats), by name
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    rule: str = "llr"  # the verdict's rule: "second-stage" or the paper's "llr" (hvaelab.verdict)
    # the paper's LLR>k (k below the top active layer), whichever rule decides; [] without a
    # reference
    llr_verdict: list[str] = field(default_factory=list)
    # the paper's verdict over ``llr_verdict`` at the same FPR, whichever rule decides
    paper: Verdict | None = None

    @property
    def has_reference(self) -> bool:
        return self.p_values is not None

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per input (for CSV / JSON / tables); p-values and verdict are None
        when there was no reference."""
        out = []
        for i, name in enumerate(self.names):
            row: dict[str, Any] = {"input": name, "bits_per_dim": float(self.bits_per_dim[i])}
            for s, v in self.scores.items():
                row[s] = float(v[i])
                p = self.p_values.get(s) if self.p_values else None
                row[f"p({s})"] = float(p[i]) if p is not None else None
            ref = self.has_reference
            is_ood, decisive, min_p = self.is_ood, self.decisive, self.min_p
            row.update(
                verdict=("OOD" if is_ood[i] else "in-distribution")
                if ref and is_ood is not None
                else None,
                decided_by=decisive[i] if ref and decisive is not None else None,
                min_p=float(min_p[i]) if ref and min_p is not None else None,
            )
            out.append(row)
        return out


def score_inputs(
    model: HierarchicalVAE,
    images: Tensor | np.ndarray,
    reference: ScoreTable | None,
    fpr: float = 0.05,
    names: list[str] | None = None,
    iw_form: str = "iw-both",
    batch_size: int = 128,
    lt: bool | None = None,
    verdict: str = "auto",
) -> InputScores:
    """Score new inputs like the reference table was scored and decide in- or out-of-distribution.

    Every score gets its empirical p-value against the reference (the in-distribution test set);
    the verdict, at in-distribution false-positive rate ``fpr``, follows the rule ``verdict``
    (:mod:`hvaelab.verdict`: by default the second stage where the checkpoint has one, else the
    paper's Bonferroni over LLR>k for k below the highest active layer, sec. 5) and names the
    score that decided.
    With ``reference=None`` the inputs get every score (S = 1, conditional-prior means, L<l
    included) and no p-values or verdict. ``lt=False`` leaves out the L<l bounds (appendix E)
    and their ratios, a third of the passes, where only L>k matters (a drawing's every stroke);
    the default computes them when the reference has them.
    """
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    if reference is not None and reference.n_layers != model.n_layers:
        raise ValueError("the reference table was computed with a different model")
    meta = reference.meta if reference is not None else {}
    S = reference.n_samples if reference is not None else 1
    table = score_tensor(
        model,
        images,
        n_samples=S,
        prior=meta.get("prior", "mean"),
        lt=(reference is None or any(c.startswith("L<") for c in reference.columns))
        if lt is None
        else lt,
        seed=int(meta.get("seed", 0)),
        batch_size=batch_size,
    )
    n = len(table)
    names = names or [f"input {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} inputs")
    res = InputScores(
        names=names,
        scores=ood_scores(table),
        p_values=None,
        verdict_scores=[],  # set below, with the reference
        is_ood=None,
        decisive=None,
        min_p=None,
        fpr=fpr,
        bits_per_dim=table.bits_per_dim("elbo_iw" if S > 1 else "elbo"),
        stats={c: table.columns[c] for c in stat_names(model.n_layers) if c in table.columns},
    )
    if reference is None:
        return res
    ref, tol = ood_scores(reference), tie_tolerance(reference)
    # scores the reference lacks (a table written before they were added) get no p-value
    res.p_values = {
        s: _pvalue(ref[s], v, score_tails(s), tol) for s, v in res.scores.items() if s in ref
    }
    means = _kl_means(reference)
    res.rule, res.verdict_scores = verdict_names(
        verdict, model.n_layers, res.p_values, S, iw_form, means
    )
    res.llr_verdict = llr_verdict_names(model.n_layers, S, iw_form, means)
    return decide(res, reference, fpr, ref)


def join_scores(
    first: InputScores,
    second: InputScores,
    reference: ScoreTable,
    ref_scores: dict[str, np.ndarray] | None = None,
) -> InputScores:
    """``first``'s inputs followed by ``second``'s, scored against the same ``reference``: what
    :func:`score_inputs` gives for all of them at once, since an input's scores and p-values
    depend on that input alone (its noise is keyed by its content, :mod:`hvaelab.noise`). The
    verdict is taken again at ``first.fpr``. Adding images one upload at a time thus costs the
    new images' passes only."""
    if first.verdict_scores != second.verdict_scores or first.rule != second.rule:
        raise ValueError("the scores were decided by different rules: score them together")
    if (
        first.scores.keys() != second.scores.keys()
        or first.p_values is None
        or (second.p_values is None or first.p_values.keys() != second.p_values.keys())
    ):
        raise ValueError("the two sets hold different scores: score them together")

    def cat(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([a[k], b[k]]) for k in a if k in b}

    joined = InputScores(
        names=[*first.names, *second.names],
        scores=cat(first.scores, second.scores),
        p_values=cat(first.p_values, second.p_values),
        verdict_scores=list(first.verdict_scores),
        is_ood=None,
        decisive=None,
        min_p=None,
        fpr=first.fpr,
        bits_per_dim=np.concatenate([first.bits_per_dim, second.bits_per_dim]),
        stats=cat(first.stats, second.stats),
        rule=first.rule,
        llr_verdict=list(first.llr_verdict),
    )
    return decide(joined, reference, first.fpr, ref_scores)


def _kl_means(reference: ScoreTable | None) -> list[float] | None:
    """The reference's mean KL per layer (None without one): which layers are active."""
    return None if reference is None else kl_means(reference.columns, reference.n_layers)


def tolerant_verdict(
    reference: Mapping[str, np.ndarray],
    scores: Mapping[str, np.ndarray],
    names: list[str],
    tol: float,
    fpr: float,
):
    """:func:`hvaelab.pvalues.verdict` over the scores ``names`` (higher = more OOD): upper tail
    with ties up to ``tol``, as the p-values, Bonferroni over the names (sec. 5)."""
    from .pvalues import verdict

    return verdict(
        np.stack([reference[s] for s in names], 1),
        np.stack([scores[s] for s in names], 1) - tol,
        tails="upper",
        fpr=fpr,
    )


def decide(
    res: InputScores,
    reference: ScoreTable,
    fpr: float,
    ref_scores: dict[str, np.ndarray] | None = None,
) -> InputScores:
    """Set ``res``'s verdict at false-positive rate ``fpr`` from its scores (no re-scoring): OOD
    when any of ``res.verdict_scores`` is unusually large for the reference, Bonferroni over them
    (sec. 5; :mod:`hvaelab.verdict` chose them).
    ``ref_scores`` is ``ood_scores(reference)`` where the caller already has it."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    ref = ood_scores(reference) if ref_scores is None else ref_scores
    names = res.verdict_scores
    tol = tie_tolerance(reference)
    v = tolerant_verdict(ref, res.scores, names, tol, fpr)
    res.is_ood, res.min_p, res.fpr = np.asarray(v.is_ood), np.asarray(v.min_p), fpr
    res.decisive = [names[j] for j in v.decisive]
    if res.llr_verdict:
        res.paper = tolerant_verdict(ref, res.scores, res.llr_verdict, tol, fpr)
    return res


def reference_key(tables: dict[str, ScoreTable], dataset: str, n_samples: int | None = None) -> str:
    """The key of ``dataset``'s score table in ``tables``: at ``n_samples`` samples, or the
    smallest S stored (the full test set at S = 1 for the shipped checkpoints)."""
    keys = sorted(
        (k for k in tables if TableKey.parse(k).dataset == dataset),
        key=lambda k: TableKey.parse(k).n_samples,
    )
    if n_samples is not None:
        keys = [k for k in keys if TableKey.parse(k).n_samples == n_samples]
    if not keys:
        at = f" at S={n_samples}" if n_samples is not None else ""
        raise ValueError(
            f"no score table of {dataset!r}{at}; available: {', '.join(tables) or 'none'}"
        )
    return keys[0]
