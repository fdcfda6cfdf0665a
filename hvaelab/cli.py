"""Command line: ``hvaelab train / evaluate / score / tables / info``.

Every command goes through the library's one scoring entry point (:mod:`hvaelab.scores`), so
the numbers printed here are the ones the notebooks and dashboards show.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__


class CLIError(Exception):
    """An error to report to the user in one line, without a traceback."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", default=None, help="folder with the datasets (else HVAELAB_DATA, ...)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")


def _cmd_train(a: argparse.Namespace) -> int:
    from .train import TrainConfig, Trainer

    out = Path(a.out) if a.out else Path("checkpoints") / a.dataset
    overrides = {}
    if a.channels:
        overrides["channels"] = a.channels
    cfg = TrainConfig(
        dataset=a.dataset,
        ood=tuple(a.ood),
        preset=a.preset,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        free_bits=a.free_bits,
        free_bits_constant=a.free_bits_constant,
        free_bits_anneal=a.free_bits_anneal,
        warmup=a.warmup,
        seed=a.seed,
        val_examples=a.val_examples,
        train_examples=a.train_examples,
        device=a.device,
        data_dir=a.data_dir,
        model_overrides=overrides,
    )
    state_file = out.with_name(out.name + ".state.json")
    if a.resume and state_file.exists():
        trainer = Trainer.resume(out, epochs=a.epochs)
        print(f"resuming {out} at epoch {trainer.epoch}/{trainer.cfg.epochs}")
    else:
        if a.resume:
            print(f"no training state at {state_file}: starting a new run")
        trainer = Trainer(cfg)
        print(f"model: {trainer.model.num_parameters():,} parameters on {trainer.device}")
    trainer.run(out, until=a.until)
    print(f"wrote {out}.safetensors and {out}.json (epoch {trainer.epoch}/{trainer.cfg.epochs})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hvaelab", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"hvaelab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a hierarchical VAE (table 4 settings by default)")
    t.add_argument("--dataset", default="fashionmnist", help="registered dataset (train split)")
    t.add_argument("--ood", nargs="*", default=["mnist"], help="OOD sets monitored per epoch")
    t.add_argument(
        "--preset", default="hvae-grey", help="model preset (hvae-grey, hvae-natural, ...)"
    )
    t.add_argument("--channels", type=int, default=None, help="override the preset's channels")
    t.add_argument("--epochs", type=int, default=10, help="planned epochs of the run (paper: 2000)")
    t.add_argument("--until", type=int, default=None, help="stop after this epoch (resume later)")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--free-bits", type=float, default=2.0, help="lambda in nats (0 disables)")
    t.add_argument("--free-bits-constant", type=float, default=None, help="epochs at lambda")
    t.add_argument("--free-bits-anneal", type=float, default=None, help="epochs annealing to 0")
    t.add_argument("--warmup", type=float, default=None, help="epochs of KL warm-up")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-examples", type=int, default=2000, help="per test set, per epoch (0 all)")
    t.add_argument("--train-examples", type=int, default=0, help="use the first N images (0 all)")
    t.add_argument("--out", default=None, help="checkpoint path stem (default checkpoints/DATASET)")
    t.add_argument("--resume", action="store_true", help="continue from OUT's training state")
    _add_common(t)
    t.set_defaults(func=_cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"hvaelab {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
