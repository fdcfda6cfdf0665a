"""Command line: ``hvaelab train / evaluate / score / tables / second-stage / correlate / data /
copy / export-onnx / export-site / info / notebooks / dashboard``.

Every command goes through the library's one scoring entry point (:mod:`hvaelab.scores`), so
the numbers printed here are the ones the notebooks and dashboards show.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
import warnings
from pathlib import Path

import numpy as np
import torch

from . import __version__
from . import distributed as ddp
from .app import dashboard
from .artifacts import Artifacts, atomic_write, staged, write_csv
from .checkpoint import (
    WEIGHTS_DTYPES,
    copy_checkpoint,
    ensure_writable,
    load_model,
    read_card,
    resolve_checkpoint,
    update_card,
)
from .correlation import layer_correlations
from .data import (
    DataFormatError,
    get_spec,
    list_datasets,
    load_dataset,
    load_inputs,
    load_samples,
    save_samples,
    to_tensor,
)
from .data.errors import DataNotFoundError
from .data.inventory import fetch, format_inventory, inventory, verify_split
from .device import resolve_device
from .evaluate import evaluate_tables, format_table1, format_table2, write_results
from .partial_tables import read_partial, score_dataset_in_steps
from .score_names import Family, ScoreName, TableKey
from .scores import (
    ScoreTable,
    load_tables,
    reference_key,
    save_tables,
    score_dataset,
    score_inputs,
    tables_path,
)
from .second_stage import SCORE_COLUMN as SECOND_STAGE_COLUMN
from .second_stage import SecondStageConfig, fit_second_stage
from .train import RESUME_OVERRIDES, TrainConfig, Trainer
from .verdict import RULES, describe


class CLIError(Exception):
    """An error to report to the user in one line, without a traceback."""


def _add_common(p: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--device``, with TrainConfig's defaults and help."""
    for name in ("data_dir", "device"):
        _add_field(p, _TRAIN_FIELDS[name])


_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_NOT_OPTIONS = ("model_overrides",)  # set through --channels


def _add_field(p: argparse.ArgumentParser, f: dataclasses.Field) -> None:
    """One ``--option`` for a TrainConfig field: its default, its type and its help text."""
    hint = typing.get_type_hints(TrainConfig)[f.name]
    kind = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
    kw: dict = {"default": f.default, "help": f.metadata.get("help", "")}
    if f.metadata.get("choices"):
        kw["choices"] = f.metadata["choices"]
    if typing.get_origin(hint) is tuple:
        kw.update(nargs="*", type=typing.get_args(hint)[0])
    elif kind is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif kind in (int, float):
        kw["type"] = kind
    if f.default is not None:
        shown = " ".join(f.default) if isinstance(f.default, tuple) else f.default
        kw["help"] += f" (default: {shown})"
    p.add_argument("--" + f.name.replace("_", "-"), **kw)


def train_config_from_args(a: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed ``hvaelab train`` arguments: every option named like a
    TrainConfig field sets that field (one left at None, as ``--epochs`` is, the field's default);
    ``--channels`` overrides the preset's width."""
    overrides = {"channels": a.channels} if a.channels else {}
    kw = {k: v for k, v in vars(a).items() if k in _TRAIN_FIELDS and v is not None}
    return TrainConfig(**{**kw, "ood": tuple(a.ood)}, model_overrides=overrides)


def _cmd_train(a: argparse.Namespace) -> int:
    out = Path(a.out) if a.out else Path("checkpoints") / a.dataset
    cfg = train_config_from_args(a)
    card = Artifacts(out).card
    if a.resume and card.exists():  # exact with the training state, else from the weights
        how = {k: getattr(a, k) for k in RESUME_OVERRIDES}
        trainer = Trainer.resume(out, epochs=a.epochs, **how)
        print(f"resuming {out} at epoch {trainer.epoch}/{trainer.cfg.epochs}")
    else:
        if a.resume:
            print(f"no checkpoint at {card}: starting a new run")
        trainer = Trainer(cfg)
        print(f"model: {trainer.model.num_parameters():,} parameters on {trainer.device}")
    print(f"precision {trainer.precision}" + (", compiled step" if trainer.cfg.compile else ""))
    trainer.run(out, until=a.until)
    print(f"wrote {out}.safetensors and {out}.json (epoch {trainer.epoch}/{trainer.cfg.epochs})")
    return 0


def _load(a: argparse.Namespace):
    return load_model(a.checkpoint, device=ddp.device_of(resolve_device(a.device)))


def _compute_tables(a, lm, priors, samples):
    tables = {}
    for prior in priors:
        for S in samples:
            for name in [a.in_name, *a.ood]:
                if ddp.current().is_main:
                    print(f"scoring {name} (test, S={S}, prior={prior})", file=sys.stderr)
                limit = a.limit if S == 1 or not a.iw_limit else a.iw_limit
                t = score_dataset(
                    lm.model,
                    name,
                    "test",
                    data_dir=a.data_dir,
                    limit=limit,
                    n_samples=S,
                    prior=prior,
                    batch_size=a.batch_size,
                    progress=True,
                    seed=a.seed,
                )
                tables[(prior, str(TableKey(name, S)))] = t
    return tables


def _cmd_evaluate(a: argparse.Namespace) -> int:
    lm = _load(a)
    if a.tables and not ddp.current().is_main:  # nothing to share: rank 0 reads and reports
        return 0
    if a.tables:
        stored = load_tables(tables_path(lm.path))
        per_prior: dict[str, dict[str, ScoreTable]] = {}
        for key, t in stored.items():
            per_prior.setdefault(t.meta.get("prior", "mean"), {})[key] = t
    else:
        tables = _compute_tables(a, lm, a.prior, a.samples)
        if not ddp.current().is_main:  # under torchrun: rank 0 reports and writes
            return 0
        per_prior = {}
        for (prior, key), t in tables.items():
            per_prior.setdefault(prior, {})[key] = t
    results = {"checkpoint": str(lm.path), "in": a.in_name, "ood": a.ood, "by_prior": {}}
    for prior, tabs in per_prior.items():
        res = evaluate_tables(tabs, a.in_name, seed=a.seed)
        results["by_prior"][prior] = res
        print(f"== {lm.name}: conditional prior below k = {prior} ==")
        print(format_table1(res["table1"]))
        print()
        print(format_table2(res["table2"]))
    flat: dict[str, list[dict[str, typing.Any]]] = {"table1": [], "table2": []}
    for res in results["by_prior"].values():
        flat["table1"] += res["table1"]
        flat["table2"] += res["table2"]
    out = Path(a.out) if a.out else Path("results") / f"evaluate-{lm.name}"
    paths = write_results({**results, **flat}, out)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _keep_finished(partial: Path, key: str, table: ScoreTable) -> None:
    """Keep a finished table in the partial file until the run's files are committed: a stop
    loses at most the table being scored (``--resume`` takes the finished ones from there)."""
    saved = read_partial(partial, log=lambda _m: None)
    columns = {c: v for c, v in table.columns.items() if c != SECOND_STAGE_COLUMN}
    saved[key] = ScoreTable(columns, dict(table.meta))
    _save_partial(partial, saved)


def _save_partial(partial: Path, tables: dict[str, ScoreTable]) -> None:
    if tables:
        save_tables(partial, tables.values(), info={"partial": True}, second_stage_inputs_too=True)
    else:
        partial.unlink(missing_ok=True)


def _cmd_tables(a: argparse.Namespace) -> int:
    """Score tables, the card's evaluation and the image samples change together or not at all
    (:func:`hvaelab.artifacts.staged`); finished tables wait in the partial file meanwhile."""
    ensure_writable(resolve_checkpoint(a.checkpoint), "tables")  # before any work or write
    lm = _load(a)
    partial = Artifacts.of(lm.path).partial_scores
    with staged():
        rc, done = _tables(a, lm, partial)
    if done and ddp.current().is_main:  # committed: the finished tables leave the partial file
        saved = read_partial(partial, log=lambda _m: None)
        _save_partial(partial, {k: t for k, t in saved.items() if k not in done})
    return rc


def _tables(a: argparse.Namespace, lm, partial: Path) -> tuple[int, set[str]]:
    sha = lm.card.get("weights_sha256")
    path = tables_path(lm.path)
    main = ddp.current().is_main
    info = {"checkpoint": lm.name, "in": a.in_name, "ood": a.ood}
    tables, done = {}, set()
    if path.exists():  # keep other S / datasets computed earlier for these very weights
        try:
            old = load_tables(path)
        except ValueError:
            old = {}
        tables = {k: t for k, t in old.items() if t.meta.get("weights_sha256") == sha}
        for k in set(old) - set(tables):
            if main:
                print(f"dropping stale table {k} (computed for other weights)", file=sys.stderr)
    for S in a.samples:
        for name in [a.in_name, *a.ood]:
            key = str(TableKey(name, S))
            t = score_dataset_in_steps(
                lm.model,
                name,
                partial,
                sha,
                resume=a.resume,
                finished=tables.get(key),
                data_dir=a.data_dir,
                limit=a.limit if S == 1 or not a.iw_limit else a.iw_limit,
                n_samples=S,
                prior=a.prior,
                lt=not a.no_lt,
                seed=a.seed,
                batch_size=a.batch_size,
                log=lambda m: print(m, file=sys.stderr),
            )
            if tables.get(key) is t:
                continue
            tables[key] = t
            done.add(key)
            if main:  # after every table: a stop loses at most the one being scored
                _keep_finished(partial, key, t)
    if not main:  # under torchrun: every rank scored a share; rank 0 writes
        return 0, done
    save_tables(path, tables.values(), info=info)  # also when every table was kept
    print(f"wrote {path} ({', '.join(tables)})")
    _record_evaluation(lm, tables, a.in_name, path)
    if a.samples_per_set:
        rng = np.random.default_rng(0)
        sets = _kept_samples(Artifacts(lm.path).samples)  # other datasets' images stay
        for name in [a.in_name, *a.ood]:
            imgs = load_dataset(name, "test", data_dir=a.data_dir).images
            sets[name] = imgs[np.sort(rng.choice(len(imgs), a.samples_per_set, replace=False))]
        spath = save_samples(Artifacts(lm.path).samples, sets)
        print(f"wrote {spath}")
    return 0, done


def _kept_samples(path: Path) -> dict[str, np.ndarray]:
    """The images already shipped at ``path``, so that a run over some datasets (``tables --ood
    mnist --samples 64``) replaces theirs and keeps the others'; none if unreadable."""
    if not path.exists():
        return {}
    try:
        return load_samples(path)
    except DataFormatError as e:
        print(f"rewriting {path}: {e}", file=sys.stderr)
        return {}


def _key_score(name: ScoreName) -> bool:
    """The rows of Table 2 kept in a checkpoint's card: the ELBO, LLR>1, LLR>2, every
    importance-weighted LLR>k, the per-example selection of k, input complexity and the second
    stage."""
    fam = name.family
    plain = (Family.ELBO, Family.SELECT_K, Family.IC, Family.SECOND_STAGE)
    return fam in plain or (fam == Family.LLR and (name.iw or name.k <= 2))


def _record_evaluation(lm, tables, in_name: str, path: Path) -> None:
    """Put Table 1 and the key rows of Table 2 into the checkpoint's card."""

    res = evaluate_tables(tables, in_name)
    keep = [r for r in res["table2"] if _key_score(ScoreName.parse(r["score"]))]
    update_card(
        lm.path,
        {
            "evaluation": {
                "score_tables": path.name,
                "protocol": "full test sets, equal-size (paper sec. 5)",
                "table1_bits_per_dim": res["table1"],
                "table2": keep,
            }
        },
    )
    print(f"recorded the evaluation in {lm.path}.json")


def _cmd_score(a: argparse.Namespace) -> int:
    lm = _load(a)
    images, names = load_inputs(a.inputs, colour=lm.model.config.colour)
    path = tables_path(lm.path)
    ref = None
    if path.exists() or a.reference:
        tables = load_tables(path)
        key = a.reference or reference_key(tables, lm.dataset or "fashionmnist")
        if key not in tables:
            raise CLIError(f"no reference table {key!r}; available: {', '.join(tables)}")
        ref = tables[key]
    else:
        print(
            f"no score tables beside {lm.path} ({path.name}): every score, but no p-values or "
            f"verdicts; add the reference with `hvaelab tables --checkpoint {lm.path}`",
            file=sys.stderr,
        )
    res = score_inputs(lm.model, images, ref, fpr=a.fpr, names=names, verdict=a.verdict)
    rows = res.rows()
    if ref is not None:
        print(f"verdict: {describe(res.rule, res.verdict_scores, a.fpr)}")
    for r in rows:
        if ref is None:
            every = "  ".join(f"{s}={r[s]:.1f}" for s in res.scores)
            print(f"{r['input']}: bits/dim={r['bits_per_dim']:.3f}  {every}")
            continue
        shown = [
            *res.llr_verdict,
            *(s for s in (SECOND_STAGE_COLUMN,) if s in (res.p_values or {})),
        ]
        llr = "  ".join(f"{s}={r[s]:.1f} (p={r['p(' + s + ')']:.3g})" for s in shown)
        print(
            f"{r['input']}: {r['verdict']} (decided by {r['decided_by']}, p={r['min_p']:.3g}, "
            f"alpha={a.fpr}/{len(res.verdict_scores)})  bits/dim={r['bits_per_dim']:.3f}  {llr}"
        )
    if a.out:
        write_csv(a.out, rows)
        print(f"wrote {a.out}")
    return 0


def _cmd_second_stage(a: argparse.Namespace) -> int:
    """Fit the second stage on the checkpoint's own training split, and nothing else."""
    ensure_writable(resolve_checkpoint(a.checkpoint), "second-stage")  # before any work or write
    lm = _load(a)
    train = lm.dataset
    if not train:
        raise CLIError(f"{lm.path}.json does not say which dataset the model was trained on")
    cfg = SecondStageConfig(
        n_fit=a.n_fit,
        n_select=a.n_select,
        components=tuple(a.components),
        reg_covar=a.reg_covar,
        seed=a.seed,
    )
    ds = load_dataset(train, "train", data_dir=a.data_dir)
    print(f"fitting the second stage of {lm.name} on {train}/train ({len(ds)} images)")
    stage = fit_second_stage(
        lm.model, ds.images, cfg, batch_size=a.batch_size, progress=lambda m: print(m, flush=True)
    )
    stage.record.update(
        {
            "checkpoint": lm.name,
            "weights_sha256": lm.card.get("weights_sha256"),
            "train_dataset": train,
            "train_split": "train",
            "train_images_md5": ds.md5,
        }
    )
    path = stage.save(Artifacts.of(lm.path).second_stage)
    print(f"wrote {path}; rescore with `hvaelab tables --checkpoint {lm.path}` to use it")
    return 0


def _cmd_correlate(a: argparse.Namespace) -> int:
    device = resolve_device(a.device)
    ma = load_model(a.a, device=device).model
    mb = load_model(a.b, device=device).model if a.b != "random" else _random_like(ma, a.seed)
    results = {}
    for spec in a.datasets:
        name, _, split = spec.partition(":")
        imgs = load_dataset(name, split or "test", data_dir=a.data_dir).images
        idx = np.sort(
            np.random.default_rng(a.seed).choice(len(imgs), min(a.n, len(imgs)), replace=False)
        )
        x01 = to_tensor(imgs[idx]).to(device)
        with torch.no_grad():
            results[spec] = layer_correlations(ma, mb, x01, seed=a.seed)
    layers = list(next(iter(results.values()))["abs_corr"])
    print(f"layer similarity of {a.a} vs {a.b} (n = {a.n} per set)")
    cols = [(spec, m) for spec in results for m in ("abs_corr", "cka")]
    w = max(len(f"{spec} {m}") for spec, m in cols) + 2
    print(f"{'layer':<16}" + "".join(f"{spec + ' ' + m:>{w}}" for spec, m in cols))
    for layer in layers:
        print(f"{layer:<16}" + "".join(f"{results[spec][m][layer]:{w}.3f}" for spec, m in cols))
    if a.out:
        atomic_write(
            a.out, json.dumps({"a": a.a, "b": a.b, "n": a.n, "results": results}, indent=2)
        )
        print(f"wrote {a.out}")
    return 0


def _random_like(model, seed: int):
    """An untrained model of the same architecture, data-dependently initialised."""

    torch.manual_seed(seed)
    rnd = type(model)(model.config).to(next(model.parameters()).device)
    x = torch.rand(256, *model.config.in_shape, device=next(model.parameters()).device) > 0.5
    rnd.initialize(rnd.inputs(x.float(), binarize="none").x)
    return rnd.eval()


def _cmd_data(a: argparse.Namespace) -> int:
    if a.action == "list":
        print(format_inventory(inventory(a.data_dir), a.data_dir))
        return 0
    if a.action == "fetch":
        if not a.names:
            raise CLIError("name the datasets to fetch, e.g. `hvaelab data fetch fashionmnist`")
        for name in a.names:
            for line in fetch(name, a.split, progress=True):
                print(line)
        return 0
    bad = 0
    for name in a.names or list_datasets():
        spec = get_spec(name)
        for split in [a.split] if a.split else list(spec.splits):
            checks = verify_split(spec, split, a.data_dir)
            if not checks:
                print(f"{spec.name} {split}: missing (see `hvaelab data list`)")
            for c in checks:
                where = f"  {c.path}" if c.path is not None else ""
                print(f"{c.dataset} {c.split}: {c.result.upper()}{where}  {c.detail}")
                bad += c.result == "mismatch"
    if bad:
        print(
            f"{bad} file(s) do not match their checksums: delete or replace them", file=sys.stderr
        )
        return 1
    return 0


def _cmd_copy(a: argparse.Namespace) -> int:
    ensure_writable(a.dst, "copy", copy_from=a.src)  # never onto the installed models
    src_sha = read_card(resolve_checkpoint(a.src))["weights_sha256"]
    d = copy_checkpoint(a.src, a.dst, replace=a.replace, dtype=a.dtype)
    files = [p.name for p in Artifacts(d).files().values() if p.is_file()]
    print(f"copied {a.src} to {d}: {', '.join(files)}")
    if read_card(d)["weights_sha256"] != src_sha:  # new bytes: what was computed is not copied
        print(
            f"the weights are stored as {a.dtype}: recompute what depends on them with "
            f"`hvaelab second-stage --checkpoint {d}`, then "
            f"`hvaelab tables --checkpoint {d} --ood ...`"
        )
    return 0


def _cmd_notebooks(a: argparse.Namespace) -> int:
    """Copy the dashboards' notebooks out of the install, to open and edit in JupyterLab."""
    from . import package_files

    out = Path(a.dir)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out} is a file, not a folder")
    sources = package_files.notebooks()
    if not sources:
        raise CLIError(f"no notebooks in {package_files.notebooks_dir()}: reinstall hvaelab")
    there = [out / p.name for p in sources if (out / p.name).exists()]
    if there and not a.force:
        names = ", ".join(p.name for p in there)
        raise CLIError(
            f"{len(there)} of the notebooks are already in {out} ({names}); nothing written: "
            "pass --force to overwrite them"
        )
    out.mkdir(parents=True, exist_ok=True)
    for p in sources:
        atomic_write(out / p.name, p.read_bytes())
    print(f"wrote {len(sources)} notebooks to {out}: {', '.join(p.name for p in sources)}")
    print(f"open them with `jupyter lab {out}`")
    return 0


def _cmd_export_onnx(a: argparse.Namespace) -> int:
    """The detector as OUT.onnx + OUT.onnx.json (hvaelab.onnx_export)."""
    from .onnx_export import export_checkpoint

    try:
        res = export_checkpoint(
            a.checkpoint,
            a.out,
            a.data_dir,
            a.reference_limit,
            a.fpr,
            progress=print,
            exporter=a.exporter,
            reference_data=a.reference_data,
        )
    except ImportError as e:
        need = "export-onnx needs the onnx extra: pip install 'hvaelab[onnx]'"
        raise CLIError(f"{need} ({e})") from e
    print(res.summary())
    return 0


def _cmd_export_site(a: argparse.Namespace) -> int:
    """The static lesson site (hvaelab.app.static_site)."""
    from .app.static_site import export_site

    try:
        files = export_site(
            a.out,
            a.checkpoint,
            progress=print,
            data_dir=a.data_dir,
            reference_limit=a.reference_limit,
            reference_data=a.reference_data,
        )
    except ImportError as e:  # the draw page's model is an ONNX export
        need = "export-site needs the onnx extra: pip install 'hvaelab[onnx]'"
        raise CLIError(f"{need} ({e})") from e
    size = sum(f.stat().st_size for f in files)
    print(
        f"wrote {len(files)} files ({size / 1e6:.1f} MB) to {a.out}. Serve the folder with any "
        f"static file server, e.g. `python -m http.server -d {a.out}`, and open its index.html "
        "(opened as a file, browsers refuse to load its data)."
    )
    return 0


def _cmd_info(a: argparse.Namespace) -> int:
    lm = _load(a)
    print(f"{lm.path}: {lm.model.num_parameters():,} parameters")
    print(json.dumps(lm.card, indent=2))
    return 0


def _cmd_dashboard(a: argparse.Namespace) -> int:
    return dashboard.serve(dashboard.config_from_args(a))


def _add_scoring(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default="fashionmnist", help="checkpoint name or path")
    p.add_argument("--in", dest="in_name", default="fashionmnist", help="in-distribution set")
    p.add_argument("--ood", nargs="+", default=["mnist"], help="OOD datasets (test splits)")
    p.add_argument("--samples", nargs="+", type=int, default=[1], help="importance samples S")
    p.add_argument("--limit", type=int, default=None, help="seeded subset of N examples per set")
    p.add_argument(
        "--iw-limit",
        type=int,
        default=None,
        help="for S > 1 only: a seeded subset of N examples per set (cost grows with S)",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hvaelab", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"hvaelab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a hierarchical VAE (table 4 settings by default)")
    t.add_argument("--channels", type=int, default=None, help="override the preset's channels")
    for f in _TRAIN_FIELDS.values():  # every setting of TrainConfig, with its default and help
        if f.name not in _NOT_OPTIONS:
            _add_field(t, f)
    for action in t._actions:  # with --resume, the run's own plan unless given
        if action.dest == "epochs":
            action.help = (action.help or "") + "; with --resume: the run's own"
            action.default = None
    t.add_argument("--until", type=int, default=None, help="stop after this epoch (resume later)")
    t.add_argument("--out", default=None, help="checkpoint path stem (default checkpoints/DATASET)")
    t.add_argument("--resume", action="store_true", help="continue from OUT's training state")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="Table 1 (bits/dim) and Table 2 (AUROC, AUPRC, FPR80)")
    _add_scoring(e)
    e.add_argument(
        "--prior",
        nargs="+",
        choices=["mean", "sample"],
        default=["mean", "sample"],
        help="latents below k: conditional-prior means and/or samples (both default)",
    )
    e.add_argument("--tables", action="store_true", help="use the stored score tables")
    e.add_argument("--out", default=None, help="output stem for .json/.csv (default results/)")
    _add_common(e)
    e.set_defaults(func=_cmd_evaluate)

    tb = sub.add_parser(
        "tables", help="write the score tables (and image samples) beside a checkpoint"
    )
    _add_scoring(tb)
    tb.add_argument("--prior", choices=["mean", "sample"], default="mean")
    tb.add_argument("--samples-per-set", type=int, default=64, help="images shipped per dataset")
    tb.add_argument(
        "--resume",
        action="store_true",
        help="keep tables already stored with the same settings and continue a stopped table "
        "after its saved rows (NAME.scores.partial.safetensors)",
    )
    tb.add_argument(
        "--no-lt",
        action="store_true",
        help="skip the L<l bounds (appendix E): half the passes per sample, for large S",
    )
    _add_common(tb)
    tb.set_defaults(func=_cmd_tables)

    sc = sub.add_parser("score", help="score images/.npy/IDX files against the reference")
    sc.add_argument("inputs", nargs="+", help="PNG/JPEG files, folders, .npy arrays or IDX files")
    sc.add_argument("--checkpoint", default="fashionmnist", help="checkpoint name or path")
    sc.add_argument("--reference", default=None, help="reference table key, e.g. fashionmnist@S1")
    sc.add_argument("--fpr", type=float, default=0.05, help="in-distribution false-positive rate")
    sc.add_argument(
        "--verdict",
        choices=RULES,
        default="auto",
        help="the verdict's rule (hvaelab.verdict): auto = the second stage where the checkpoint "
        "has one, else llr = the paper's Bonferroni over LLR>k (k below the top active layer)",
    )
    sc.add_argument("--out", default=None, help="write one CSV row per input")
    _add_common(sc)
    sc.set_defaults(func=_cmd_score)

    d = SecondStageConfig()
    ss = sub.add_parser(
        "second-stage",
        help="fit the second stage (beyond the paper) on the checkpoint's training split",
        description="Fits a Gaussian mixture to the HVAE's mean-path statistics of a seeded "
        "subset of the checkpoint's own training split; the number of components is chosen by "
        "the log-likelihood of a disjoint held-out subset of the training split. No test or OOD "
        "data is read. Writes NAME.second-stage.safetensors beside the checkpoint.",
    )
    ss.add_argument("--checkpoint", default="fashionmnist", help="checkpoint name or path")
    ss.add_argument("--n-fit", type=int, default=d.n_fit, help="training images fitted on")
    ss.add_argument(
        "--n-select", type=int, default=d.n_select, help="held-out training images that choose"
    )
    ss.add_argument(
        "--components", type=int, nargs="+", default=list(d.components), help="candidate counts"
    )
    ss.add_argument("--reg-covar", type=float, default=d.reg_covar, help="covariance regulariser")
    ss.add_argument("--seed", type=int, default=d.seed)
    ss.add_argument("--batch-size", type=int, default=256)
    _add_common(ss)
    ss.set_defaults(func=_cmd_second_stage)

    co = sub.add_parser("correlate", help="per-layer similarity of two models (paper fig. 2)")
    co.add_argument("--a", default="fashionmnist", help="first checkpoint")
    co.add_argument("--b", default="mnist-testsplit", help="second checkpoint, or 'random'")
    co.add_argument(
        "--datasets",
        nargs="+",
        default=["fashionmnist", "mnist-testsplit:test"],
        help="NAME[:SPLIT] of the inputs (default split: test)",
    )
    co.add_argument("--n", type=int, default=1000, help="seeded subset of N inputs per set")
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("--out", default=None, help="write the results as JSON")
    _add_common(co)
    co.set_defaults(func=_cmd_correlate)

    dt = sub.add_parser(
        "data",
        help="datasets on this machine: list where they are, fetch them, verify checksums",
        description="list: every registered dataset and split, where it was found or where it "
        "was looked for and the command that gets it; fetch NAME...: download into the per-user "
        "cache, verified; verify [NAME...]: check the checksums of what is present (exit 1 on a "
        "mismatch).",
    )
    dt.add_argument("action", choices=["list", "fetch", "verify"])
    dt.add_argument("names", nargs="*", help="datasets (fetch: required; verify: default all)")
    dt.add_argument("--split", default=None, help="only this split (default: all)")
    dt.add_argument(
        "--data-dir", default=None, help="also look in this folder first (else HVAELAB_DATA, ...)"
    )
    dt.set_defaults(func=_cmd_data)

    cp = sub.add_parser(
        "copy",
        help="copy a checkpoint (weights, card, history, tables, samples, second stage) to a new "
        "name, e.g. a finished run over the shipped one",
    )
    cp.add_argument("src", help="checkpoint name or path")
    cp.add_argument("dst", help="path stem of the copy (dir/NAME)")
    cp.add_argument("--replace", action="store_true", help="replace an existing checkpoint DST")
    cp.add_argument(
        "--dtype",
        choices=list(WEIGHTS_DTYPES),
        default=None,
        help="store the weights in this precision (float16: half the file; the score tables and "
        "second stage are then not copied but recomputed)",
    )
    cp.set_defaults(func=_cmd_copy)

    db = sub.add_parser(
        "dashboard",
        help="serve the dashboards (Voila) on http://127.0.0.1:8866/",
        description="Serves the notebooks as interactive pages with Voila, offline, with "
        "preheated kernels, culling of closed pages' kernels and a cap on visitors' kernels. "
        "Off 127.0.0.1 (e.g. --ip 0.0.0.0 for a class) the pages have no login: anyone who can "
        "reach the address can run the notebooks' code on this machine.",
    )
    dashboard.add_arguments(db)
    db.set_defaults(func=_cmd_dashboard)

    nb = sub.add_parser(
        "notebooks",
        help="copy the dashboards' notebooks into a folder, to edit them in JupyterLab",
        description="Copies the seven notebooks the dashboards serve into DIR (created if "
        "needed); open them with `jupyter lab DIR`. Refuses, writing nothing, when any of them "
        "is already there, unless --force.",
    )
    nb.add_argument("dir", help="the folder to copy them into")
    nb.add_argument("--force", action="store_true", help="overwrite notebooks already in DIR")
    nb.set_defaults(func=_cmd_notebooks)

    ox = sub.add_parser(
        "export-onnx",
        help="the detector as an ONNX graph (opset 18) + OUT.onnx.json, for onnxruntime + numpy",
        description="Writes OUT.onnx: the model's mean path (input: the binarized images "
        "(N, 1, 28, 28), any N; outputs: rec>k, per-layer KL, mean-path LLR>k, latent "
        "reconstructions), weight norm folded, weights inside; and OUT.onnx.json: the "
        "binarization, the outputs, the checkpoint's sha256, the in-distribution reference "
        "(the mean-path scores of the checkpoint's own test split, computed here) and the "
        "second stage, to score and decide with onnxruntime and numpy alone.",
    )
    ox.add_argument("out", help="the .onnx file to write (its sidecar: OUT.onnx.json)")
    ox.add_argument("--checkpoint", default="fashionmnist", help="checkpoint name or path")
    ox.add_argument(
        "--reference-limit",
        type=int,
        default=None,
        help="reference: a seeded subset of N in-distribution test images (default: all)",
    )
    ox.add_argument(
        "--reference-data",
        default=None,
        help="the registered dataset whose test split is the reference (default: the "
        "checkpoint's training set; another name only for a copy or excerpt of it)",
    )
    ox.add_argument("--fpr", type=float, default=0.05, help="the sidecar's default FPR")
    ox.add_argument(
        "--exporter",
        choices=["torchscript", "dynamo"],
        default="torchscript",
        help="torch's ONNX exporter (dynamo: torch.export, the same numbers, slower to export)",
    )
    _add_field(ox, _TRAIN_FIELDS["data_dir"])
    ox.set_defaults(func=_cmd_export_onnx)

    st = sub.add_parser(
        "export-site",
        help="a static lesson site that runs in the browser (served by any static file server)",
        description="Writes DIR: a static site for the checkpoint, served offline by any "
        "static file server (e.g. `python -m http.server -d DIR`); nothing is requested from "
        "another host. Its draw page (the model itself, exported to ONNX with the mean "
        "path of the checkpoint's in-distribution test split as reference, runs in the browser "
        "on every stroke: ONNX Runtime Web, shipped in the site), its explore page (the "
        "densities, ROC curves and Table 2 of every score, k and OOD set of the checkpoint's "
        "score tables, as the Voilà explorer shows them, switched in the browser) and its "
        "learn page (the teaching page's questions, answers on click, and the 2-D toy).",
    )
    st.add_argument("out", help="the folder to write the site into (created if needed)")
    st.add_argument("--checkpoint", default="fashionmnist", help="checkpoint name or path")
    st.add_argument(
        "--reference-limit",
        type=int,
        default=None,
        help="the model's reference: a seeded subset of N in-distribution test images "
        "(default: all)",
    )
    st.add_argument(
        "--reference-data",
        default=None,
        help="the registered dataset whose test split is the reference (default: the "
        "checkpoint's training set; another name only for a copy or excerpt of it)",
    )
    _add_field(st, _TRAIN_FIELDS["data_dir"])
    st.set_defaults(func=_cmd_export_site)

    i = sub.add_parser("info", help="print a checkpoint's card")
    i.add_argument("--checkpoint", default="fashionmnist")
    _add_common(i)
    i.set_defaults(func=_cmd_info)
    return p


# Commands that run as one job over the processes torchrun starts (hvaelab.distributed).
DISTRIBUTED_COMMANDS = ("train", "tables", "evaluate")


def _join_group(args: argparse.Namespace) -> None:
    """Under torchrun: join the process group; only rank 0 prints to stdout."""
    if args.command not in DISTRIBUTED_COMMANDS:
        raise CLIError(
            f"only {', '.join(DISTRIBUTED_COMMANDS)} run under torchrun; run "
            f"`hvaelab {args.command}` as one process"
        )
    ddp.init(resolve_device(args.device))
    if not ddp.current().is_main:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of this process


def _warn_in_one_line(command: str):
    """``warnings.showwarning`` for the command line: ``hvaelab CMD: warning: ...``, one line
    (e.g. a broken second stage beside the checkpoint, which is then left out)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"hvaelab {command}: warning: {text}", file=file or sys.stderr)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warn_in_one_line(args.command)
            if ddp.launched():
                _join_group(args)
            return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which has stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except DataNotFoundError as e:
        print(f"hvaelab {args.command}: error: {e.short()}", file=sys.stderr)
        return 2
    except (CLIError, ValueError, FileNotFoundError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        msg = " ".join(line.strip() for line in str(msg).splitlines() if line.strip())
        print(f"hvaelab {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a failed rename (what was being written is as before)
        print(f"hvaelab {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        ddp.close()


if __name__ == "__main__":
    sys.exit(main())
