"""One rank of the distributed tests (tests/test_distributed.py), started by ``torchrun``.

    python -m torch.distributed.run --standalone --nproc_per_node 2 \
        tests/distributed_worker.py MODE OUT [hvaelab command line…]

MODE ``steps``: the training steps of :func:`step_plan` on the fixture; rank 0 writes every
step's gradients and the final parameters to OUT. MODE ``cli``: the hvaelab command line given
after OUT (``train``, ``tables``, ``evaluate``), as ``torchrun -m hvaelab`` runs it, with the
test fixture's datasets registered.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

FIXTURE = Path(__file__).resolve().parent / "data"


def step_config():
    from hvaelab.train import TrainConfig

    return TrainConfig(
        dataset="fashionmnist-fixture",
        ood=(),
        preset="hvae-tiny",
        epochs=2,
        batch_size=64,
        lr=1e-3,
        train_examples=165,  # batches of 64, 64 and 37: the last, shorter one splits 19 + 18
        val_examples=50,
        init_examples=64,
        precision="fp32",
        device="cpu",
    )


def step_plan(trainer) -> list[torch.Tensor]:
    """The global batches of the first epoch (the trainer's own permutation)."""
    perm = trainer._permutation()
    B = trainer.cfg.batch_size
    return [perm[i : i + B] for i in range(0, len(perm), B)]


def run_steps(trainer) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Initialise, wrap, then one optimiser step per planned batch; the gradients of each
    step (``step{j}/{name}``) and the parameters after the last."""
    trainer.initialize()
    trainer.wrap()
    trainer.net.train()
    grads = {}
    for j, batch in enumerate(step_plan(trainer)):
        trainer.backward(batch, t=j / 3)
        for name, p in trainer.model.named_parameters():
            grads[f"step{j}/{name}"] = p.grad.detach().clone()
        trainer.opt.step()
    params = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    return grads, params


def main() -> int:
    from safetensors.torch import save_file

    from hvaelab import distributed as ddp
    from hvaelab.data import register_package

    mode, out = sys.argv[1], Path(sys.argv[2])
    register_package(FIXTURE)
    if mode == "cli":
        from hvaelab.cli import main as cli_main

        return cli_main(sys.argv[3:])
    if mode == "steps":
        from hvaelab.train import Trainer

        ddp.init("cpu")
        trainer = Trainer(step_config(), log=lambda _m: None)
        grads, params = run_steps(trainer)
        if ddp.current().is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_file(grads, str(out / "grads.safetensors"))
            save_file(params, str(out / "params.safetensors"))
        ddp.barrier()
        ddp.close()
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main())
