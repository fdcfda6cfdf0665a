"""Training: the ELBO with free bits and KL warm-up (table 4), exact resume, live OOD monitor.

The objective per example is ``log p(x|z) - beta * max(KL, lambda)`` where KL is the
single-sample KL summed over all layers (free bits "shared among all z_i", Kingma et al. 2016),
``beta`` warms up linearly from 0 to 1 and ``lambda`` is constant, then annealed linearly to 0.
The paper spends 200 epochs on each phase within 2,000; a run of N epochs scales the phases by
N / 2000 unless they are given explicitly.

Every random draw of training is keyed (:mod:`hvaelab.noise`): the dynamic binarization and the
reparameterisation noise of an example depend on (seed, epoch, the example's index) only, and
each epoch's permutation on the seed and the epoch. So under ``torchrun`` (see
:mod:`hvaelab.distributed`) a run sharded over W ranks sees exactly the pixels and noise of a
single process, and a run may resume at another world size.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from . import distributed as ddp
from .artifacts import Artifacts, read_history, staged, write_csv
from .bounds import bits_per_dim, bound_samples
from .checkpoint import load_checkpoint, load_state, save_checkpoint, save_state
from .config import HVAEConfig, get_preset, preset_kind
from .data import load_dataset, to_tensor
from .device import PRECISIONS, hardware, resolve_device, resolve_precision
from .metrics import auroc
from .model import HierarchicalVAE, build_model, eval_mode, model_inputs, model_kind
from .noise import keyed_noise, keyed_uniform, train_keys
from .score_names import ScoreName


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A setting with its default and its help text (the command line's: ``hvaelab train``)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    """Settings of a training run (defaults: table 4 of the paper)."""

    dataset: str = _opt("fashionmnist", "registered dataset; trains on its 'train' split")
    ood: tuple[str, ...] = _opt(("mnist",), "OOD sets monitored each epoch on their 'test' split")
    preset: str = _opt(
        "hvae-grey", "model preset (hvae-grey, -natural, -tiny; biva-grey, -natural, -tiny)"
    )
    epochs: int = _opt(10, "planned epochs of the run (the paper: 2000)")
    batch_size: int = _opt(128, "batch size (table 4)")
    lr: float = _opt(3e-4, "Adam learning rate (table 4)")
    free_bits: float = _opt(2.0, "free bits lambda in nats, shared by all layers (0 disables)")
    free_bits_constant: float | None = _opt(None, "epochs at lambda (default 200 * epochs/2000)")
    free_bits_anneal: float | None = _opt(None, "epochs annealing lambda to 0 (default as above)")
    warmup: float | None = _opt(None, "epochs of KL warm-up 0 -> 1 (default 200 * epochs/2000)")
    seed: int = _opt(0, "seeds initialisation, shuffling, binarization and sampling")
    val_examples: int = _opt(2000, "test examples of each set evaluated per epoch (0: all)")
    init_examples: int = _opt(512, "batch size of the data-dependent initialisation")
    train_examples: int = _opt(0, "use only the first N training images (0: all)")
    device: str = _opt("auto", "cpu, cuda or auto (CUDA when available)")
    precision: str = _opt("auto", "bf16 autocast where the hardware has it (auto)", PRECISIONS)
    compile: bool = _opt(False, "torch.compile the training step (CUDA graphs on a GPU)")
    data_dir: str | None = _opt(None, "folder with the datasets (else HVAELAB_DATA, ...)")
    model_overrides: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "HVAEConfig fields to override (e.g. channels)"}
    )

    def phases(self) -> tuple[float, float, float]:
        """(free-bits constant, free-bits anneal, warm-up) in epochs."""
        scale = self.epochs / 2000 * 200
        fc = scale if self.free_bits_constant is None else self.free_bits_constant
        fa = scale if self.free_bits_anneal is None else self.free_bits_anneal
        wu = scale if self.warmup is None else self.warmup
        return fc, fa, wu

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ood"] = list(self.ood)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["ood"] = tuple(d.get("ood", ()))
        return cls(**d)


def beta_at(t: float, warmup: float) -> float:
    """KL weight after t epochs: linear warm-up from 0 to 1 over ``warmup`` epochs."""
    return 1.0 if warmup <= 0 else min(1.0, t / warmup)


def free_bits_at(t: float, lam: float, constant: float, anneal: float) -> float:
    """Free-bits threshold after t epochs: lam for ``constant`` epochs, then linearly to 0."""
    if t < constant:
        return lam
    if anneal <= 0:
        return 0.0
    return lam * max(0.0, 1.0 - (t - constant) / anneal)


MONITORED = (ScoreName.elbo(), ScoreName.llr(1))  # AUROCs logged per OOD set and epoch


@torch.no_grad()
def monitor(
    model: HierarchicalVAE, batches: dict[str, torch.Tensor], batch_size: int = 256
) -> dict:
    """ELBO (nats, bits/dim) per dataset and AUROC of -ELBO and LLR>1 of each OOD set."""
    res: dict[str, Any] = {}
    scores: dict[str, dict[str, np.ndarray]] = {}
    D = math.prod(model.config.in_shape)
    for name, x in batches.items():
        el, l1 = [], []
        with eval_mode(model):
            for i in range(0, len(x), batch_size):
                b = bound_samples(model, x[i : i + batch_size], ks=[0, 1], n_samples=1)
                el.append(b.gt[0][:, 0].cpu())
                l1.append(b.gt[1][:, 0].cpu())
        elbo, lgt1 = torch.cat(el).numpy(), torch.cat(l1).numpy()
        scores[name] = {n.slug: n.values({"elbo": elbo, "L>1": lgt1}) for n in MONITORED}
        res[f"{name}/elbo"] = float(elbo.mean())
        res[f"{name}/bpd"] = float(bits_per_dim(elbo.mean(), D))
    names = list(batches)
    for ood in names[1:]:
        for n in MONITORED:
            res[f"{ood}/auroc_{n.slug}"] = auroc(scores[names[0]][n.slug], scores[ood][n.slug])
    return res


class Trainer:
    """Owns the model, optimiser, data and schedules of one run; resumes exactly."""

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.dist = ddp.current()  # world 1 unless launched by torchrun (hvaelab.distributed)
        self.cfg = cfg
        self.log = log if self.dist.is_main else _quiet  # rank 0 alone logs
        self.device = ddp.device_of(resolve_device(cfg.device))
        self.precision = resolve_precision(cfg.precision, self.device)  # "fp32" or "bf16"
        self.model_cfg: HVAEConfig = get_preset(cfg.preset, **cfg.model_overrides)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        train = load_dataset(cfg.dataset, "train", data_dir=cfg.data_dir)
        images = train.images[: cfg.train_examples] if cfg.train_examples else train.images
        self.train_md5 = train.md5
        # The whole training set lives on the device; batches are sliced there (no host copies).
        self.x_train = to_tensor(images).to(self.device)
        if tuple(self.x_train.shape[1:]) != tuple(self.model_cfg.in_shape):
            kind = "colour 32x32" if self.x_train.shape[1] == 3 else "grey 28x28"
            raise ValueError(
                f"{cfg.dataset} holds {kind} images {tuple(self.x_train.shape[1:])}, but the "
                f"preset {cfg.preset!r} takes {tuple(self.model_cfg.in_shape)}: use "
                f"{'hvae-natural' if self.x_train.shape[1] == 3 else 'hvae-grey or hvae-tiny'}"
            )
        self._check_shards()
        self.model = build_model(preset_kind(cfg.preset), self.model_cfg).to(self.device)
        self.net: torch.nn.Module = self.model  # DistributedDataParallel(model) under torchrun
        self.val = self._val_sets() if self.dist.is_main else {}  # rank 0 alone monitors
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = []
        self.wall = 0.0
        self.restarts: list[dict[str, Any]] = []  # resumes without optimiser state
        self.resumes: list[dict[str, Any]] = []  # every resume: where it continued, and how
        self._loss = self._step_loss
        if cfg.compile:  # inductor on the CPU; CUDA graphs on a GPU
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._loss = torch.compile(self._step_loss, mode=mode)

    def _val_sets(self) -> dict[str, torch.Tensor]:
        out = {}
        names = [self.cfg.dataset, *self.cfg.ood]
        for name in names:
            ds = load_dataset(name, "test", data_dir=self.cfg.data_dir)
            imgs = ds.images
            n = self.cfg.val_examples
            if n and len(imgs) > n:
                idx = np.random.default_rng(0).choice(len(imgs), n, replace=False)
                imgs = imgs[np.sort(idx)]
            out[name] = model_inputs(self.model, imgs, "fixed").x  # binarized if Bernoulli
        return out

    def _check_shards(self) -> None:
        n, B, W = len(self.x_train), self.cfg.batch_size, self.dist.world_size
        if W > 1 and (B < W or 0 < n % B < W):
            raise ValueError(
                f"{W} processes cannot each take a share of every batch: batch size {B}, last "
                f"batch {n % B} of {n} examples; use a batch size >= {W} that leaves a last "
                f"batch of 0 or >= {W} examples"
            )

    def initialize(self) -> None:
        """Data-dependent initialisation (table 4) on a seeded batch of binarized training
        images, in float32, before the model is wrapped. Under torchrun only rank 0 computes
        it; DistributedDataParallel broadcasts rank 0's parameters when it wraps the model."""
        n = min(self.cfg.init_examples, len(self.x_train))
        idx = torch.randperm(len(self.x_train), generator=self.gen, device=self.device)[:n]
        if self.dist.is_main:  # every rank draws idx: the shuffling stream stays in step
            self.model.initialize(self._prepare(idx, epoch=-1))

    def wrap(self) -> None:
        """Wrap the model in DistributedDataParallel when several processes train it.

        DDP's all-reduce averages gradients over ranks; the loss is scaled so that the result is
        the gradient of the global batch's mean objective. The model has no batch norm (weight
        normalisation with data-dependent init, table 4), so a rank's forward pass depends only
        on its own examples and DDP has no buffers to keep in sync."""
        if self.dist.active and self.net is self.model:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)

    def _prepare(self, idx: torch.Tensor, epoch: int | None = None) -> torch.Tensor:
        """Training examples ``idx`` in model space: dynamic binarization (Bernoulli models),
        a fresh draw every epoch, keyed by (seed, epoch, example index)."""
        x01 = self.x_train[idx]
        if self.model_cfg.likelihood != "bernoulli":
            return model_inputs(self.model, x01, "none", trusted=True).x
        e = self.epoch if epoch is None else epoch
        keys = train_keys("binarize", self.cfg.seed, e, idx)
        u = keyed_uniform(keys, tuple(x01.shape[1:]), x01.device, x01.dtype)
        return model_inputs(self.model, (u < x01).to(x01.dtype), "none", trusted=True).x

    def _permutation(self) -> torch.Tensor:
        """This epoch's order of the training set, keyed by (seed, epoch)."""
        (key,) = train_keys("shuffle", self.cfg.seed, self.epoch, [0])
        g = torch.Generator().manual_seed(key)
        return torch.randperm(len(self.x_train), generator=g).to(self.device)

    def _latent_noise(self, idx: torch.Tensor) -> dict[int, torch.Tensor]:
        """Reparameterisation noise of examples ``idx`` in this epoch, keyed like _prepare."""
        keys = train_keys("latent", self.cfg.seed, self.epoch, idx)
        shapes = {i: self.model.shapes[i] for i in range(1, self.model.n_layers + 1)}
        return keyed_noise(keys, shapes, device=self.device)

    def _step_loss(
        self,
        x: torch.Tensor,
        eps: dict[int, torch.Tensor],
        beta: torch.Tensor,
        lam: torch.Tensor,
        scale: torch.Tensor,
    ):
        """The training objective of this rank's share of a batch (eq. 1 with KL warm-up beta
        and free bits lam, applied per example) and the share's summed ELBO. ``scale`` is
        world size / global batch size: DDP averages the ranks' gradients, so the result is the
        gradient of the global batch's mean (the last, shorter batch too). The forward pass runs
        under bf16 autocast when the run's precision is bf16; the Gaussian heads, log p(x|z),
        the KL terms and the loss are float32, as are the parameters and the optimiser."""
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.net(x, eps=eps)
        loss = -(out.log_px - beta * torch.clamp(out.kl, min=lam)).sum() * scale
        return loss, out.bound.detach().sum()

    def _scalar(self, v: float) -> torch.Tensor:
        """A schedule value as a tensor: a compiled step then takes every value without
        recompiling (a Python float would be baked into the graph)."""
        return torch.tensor(v, dtype=torch.float32, device=self.device)

    def backward(self, batch: torch.Tensor, t: float) -> torch.Tensor:
        """Gradients of the mean objective of the global ``batch`` (training-set indices) at
        time ``t`` (epochs) into the parameters' ``.grad``; this rank computes its share
        ``batch[rank::W]``. Returns the share's summed ELBO."""
        cfg, W = self.cfg, self.dist.world_size
        fc, fa, wu = cfg.phases()
        beta, lam = beta_at(t, wu), free_bits_at(t, cfg.free_bits, fc, fa)
        mine = batch[self.dist.rank :: W]
        x, eps = self._prepare(mine), self._latent_noise(mine)
        scale = self._scalar(W / len(batch))
        loss, elbo_sum = self._loss(x, eps, self._scalar(beta), self._scalar(lam), scale)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return elbo_sum

    def train_epoch(self) -> dict[str, float]:
        cfg = self.cfg
        self.wrap()
        self.net.train()
        n = len(self.x_train)
        steps = math.ceil(n / cfg.batch_size)
        fc, fa, wu = cfg.phases()
        perm = self._permutation()  # the same on every rank
        tot_elbo = torch.zeros((), device=self.device)
        desc = f"epoch {self.epoch + 1}/{cfg.epochs}"
        # images/s and the epoch's ETA, counted in global images; rank 0 alone shows it
        bar = tqdm(total=n, desc=desc, unit="img", leave=False, disable=not self.dist.is_main)
        t0 = time.perf_counter()
        for j in range(steps):
            t = self.epoch + j / steps
            batch = perm[j * cfg.batch_size : (j + 1) * cfg.batch_size]
            tot_elbo += self.backward(batch, t)
            self.opt.step()
            self.step += 1
            bar.update(len(batch))
            if j % 20 == 0 or j == steps - 1:  # this rank's running mean
                done = min((j + 1) * cfg.batch_size, n) / self.dist.world_size
                bar.set_postfix(
                    elbo=f"{(tot_elbo / done).item():.2f}", beta=f"{beta_at(t, wu):.2f}"
                )
        bar.close()
        ddp.all_reduce_sum(tot_elbo)
        self.epoch += 1
        secs = time.perf_counter() - t0
        self.wall += secs
        t = self.epoch - 1 / steps
        return {
            "train/elbo": (tot_elbo / n).item(),
            "seconds": secs,
            "beta": beta_at(t, wu),
            "lambda": free_bits_at(t, cfg.free_bits, fc, fa),
            "world_size": self.dist.world_size,
        }

    def run(self, out: Path, until: int | None = None) -> dict[str, Any]:
        """Train up to ``until`` epochs (default: all), checkpointing after every epoch."""
        until = self.cfg.epochs if until is None else min(until, self.cfg.epochs)
        if self.epoch == 0 and self.step == 0:
            self.initialize()
        while self.epoch < until:
            rec = {"epoch": self.epoch + 1, **self.train_epoch()}
            if self.dist.is_main:
                rec.update(monitor(self.model, self.val))
            rec["train/bpd"] = float(
                bits_per_dim(rec["train/elbo"], math.prod(self.model_cfg.in_shape))
            )
            self.history.append(rec)
            self.log(_format_record(rec))
            self.save(out)
        ddp.barrier()  # no rank leaves before rank 0 has written the last checkpoint
        return self.history[-1] if self.history else {}

    # --------------------------------------------------------------------- persistence
    def card(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {
            "kind": model_kind(self.model),
            "model_config": self.model_cfg.to_dict(),
            "train_config": self.cfg.to_dict(),
            "epochs_done": self.epoch,
            "steps_done": self.step,
            "schedule_epochs": dict(
                zip(
                    ("free_bits_constant", "free_bits_anneal", "warmup"),
                    self.cfg.phases(),
                    strict=True,
                )
            ),
            "data": {
                "train": {
                    "name": self.cfg.dataset,
                    "split": "train",
                    "md5": self.train_md5,
                    "examples": len(self.x_train),
                }
            },
            "hardware": hardware(self.device),
            "distributed": self.dist.describe(),  # of the latest segment; per epoch: history
            "precision": self.precision,
            "compile": self.cfg.compile,
            "restarts": self.restarts,
            "resumes": self.resumes,
            "wall_seconds": round(self.wall, 1),
            "n_parameters": self.model.num_parameters(),
            "metrics": {k: v for k, v in last.items() if "/" in k},
            "hvaelab_version": __version__,
        }

    def save(self, out: Path) -> None:
        """Write the checkpoint, history and training state (rank 0 only): the five files
        change together or not at all (:func:`hvaelab.artifacts.staged`)."""
        if not self.dist.is_main:
            return
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        rng = {"torch": torch.get_rng_state(), "gen": self.gen.get_state().cpu()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        with staged():
            save_checkpoint(out, state, self.card())
            if self.history:
                write_csv(Artifacts(out).history, self.history)
            save_state(
                out,
                {"optimizer": self.opt.state_dict(), "rng": rng},
                {
                    "epoch": self.epoch,
                    "step": self.step,
                    "wall": self.wall,
                    "history": self.history,
                    "train_config": self.cfg.to_dict(),
                },
            )

    @classmethod
    def resume(
        cls,
        out: Path,
        epochs: int | None = None,
        log: Callable[[str], None] = print,
        **overrides: Any,
    ) -> Trainer:
        """Rebuild a run from its checkpoint and training state; ``overrides`` may change how
        it runs (``precision``, ``compile``, ``device``, ``data_dir``), not what it learns.

        With the training state (``NAME.state.*``) the resume is exact: optimiser moments,
        epoch and step (shuffling, binarization and noise are keyed by seed, epoch and example,
        so any world size continues the same sequence). Without it (a fresh machine holding
        only the weights and the card) the run continues from the weights with a fresh
        optimiser, the same epoch count, schedules and data order, and the restart is recorded
        in the card's ``restarts``.
        """
        art = Artifacts(Path(out))
        tensors, card = load_checkpoint(out)
        exact = art.state_card.exists() and art.state_weights.exists()  # half a state: restart
        if exact:
            obj, extra = load_state(out)
            cfg = TrainConfig.from_dict(extra["train_config"])
        else:
            cfg = TrainConfig.from_dict(card["train_config"])
        if epochs is not None and epochs != cfg.epochs:
            raise ValueError(
                f"this run was planned for {cfg.epochs} epochs and its schedules depend on it; "
                f"resume it with the same --epochs (got {epochs})"
            )
        bad = set(overrides) - RESUME_OVERRIDES
        if bad:
            raise ValueError(f"a resumed run can change only {sorted(RESUME_OVERRIDES)}, not {bad}")
        cfg = dataclasses.replace(cfg, **overrides)
        self = cls(cfg, log=log)
        self.model.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})
        self.restarts = list(card.get("restarts", []))
        self.resumes = list(card.get("resumes", []))
        if exact:
            self.opt.load_state_dict(obj["optimizer"])  # moments move to the model's device
            torch.set_rng_state(obj["rng"]["torch"])
            gen = obj["rng"]["gen"]
            # The generator only drew the initialisation batch (training noise is keyed), so a
            # run that moves between a GPU and the CPU, whose generator states differ in size,
            # loses nothing when the new device's generator keeps its own state.
            if gen.numel() == self.gen.get_state().numel():
                self.gen.set_state(gen.to(self.gen.get_state().device))
            if "cuda" in obj["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(obj["rng"]["cuda"], self.device)
            self.epoch, self.step, self.wall = extra["epoch"], extra["step"], extra["wall"]
            self.history = list(extra["history"])
            self._record_resume(card, exact=True)
            return self
        self.epoch, self.step = int(card["epochs_done"]), int(card["steps_done"])
        self.wall = float(card.get("wall_seconds", 0.0))
        self.history = read_history(art.history)
        # Shuffling, binarization and noise are keyed by (seed, epoch): they continue as planned.
        self.restarts.append(
            {
                "epoch": self.epoch,
                "step": self.step,
                "what": "no training state: continued from the weights with a fresh optimiser",
                "precision": self.precision,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        self.log(
            f"no training state beside {art.stem}: continuing from its weights at epoch "
            f"{self.epoch}/{cfg.epochs} with a fresh optimiser (recorded in the card)"
        )
        self._record_resume(card, exact=False)
        return self

    def _record_resume(self, card: dict[str, Any], exact: bool) -> None:
        """Note in the card where the run continued: the card's ``hardware`` and ``precision``
        describe the latest segment only, so a run that moved (say from a GPU to the CPU)
        keeps where each earlier segment ran."""
        self.resumes.append(
            {
                "epoch": self.epoch,
                "exact": exact,
                "before": {"hardware": card.get("hardware"), "precision": card.get("precision")},
                "now": {"hardware": hardware(self.device), "precision": self.precision},
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )


RESUME_OVERRIDES = {"precision", "compile", "device", "data_dir"}


def _quiet(msg: str) -> None:
    """The log of ranks other than 0."""


def _format_record(rec: dict[str, Any]) -> str:
    parts = [
        f"epoch {rec['epoch']}",
        f"{rec['seconds']:.0f}s",
        f"train elbo {rec['train/elbo']:.2f}",
    ]
    for k, v in rec.items():
        if k.endswith("/bpd") or "auroc" in k:
            parts.append(f"{k} {v:.3f}")
    return " | ".join(parts)


def train(cfg: TrainConfig, out: Path, resume: bool = False, until: int | None = None) -> Trainer:
    """Train (or resume) a run and write ``out``.safetensors/.json (+ training state)."""
    out = Path(out)
    if resume and Artifacts(out).card.exists():  # with or without the training state
        trainer = Trainer.resume(out, epochs=cfg.epochs)
    else:
        trainer = Trainer(cfg)
    trainer.run(out, until=until)
    return trainer


__all__ = ["TrainConfig", "Trainer", "train", "beta_at", "free_bits_at", "monitor"]
