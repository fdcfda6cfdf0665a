"""The training engine: bf16 autocast with float32 heads, losses, parameters and optimiser; a
compiled step equal to the eager one; restarts without the optimiser state; fp32 scoring."""

from __future__ import annotations

import json

import pytest
import torch

from hvaelab.checkpoint import load_checkpoint
from hvaelab.device import bf16_native, hardware, resolve_precision
from hvaelab.model.distributions import GaussianHead
from hvaelab.model.layers import WNConv2d
from hvaelab.scores import score_tensor
from hvaelab.train import TrainConfig, Trainer


def _quiet(_: str) -> None:
    pass


def _cfg(datasets, **kw) -> TrainConfig:
    base = dict(
        dataset=datasets.fashionmnist,
        preset="hvae-tiny",
        epochs=3,
        train_examples=128,
        val_examples=32,
        batch_size=32,
        init_examples=32,
        ood=(),
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def _record_dtypes(model):
    """Output dtypes of every convolution and every Gaussian head, while hooked."""
    seen = {"conv": set(), "head": set()}
    hooks = [
        m.register_forward_hook(lambda _m, _i, y: seen["conv"].add(y.dtype))
        for m in model.modules()
        if isinstance(m, WNConv2d)
    ]
    hooks += [
        m.register_forward_hook(lambda _m, _i, g: seen["head"].update({g.mean.dtype, g.var.dtype}))
        for m in model.modules()
        if isinstance(m, GaussianHead)
    ]
    return seen, hooks


def test_precision_resolves_by_hardware():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if bf16_native(cpu) else "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", cpu)
    info = hardware(cpu)
    assert info["device"] == "cpu" and info["bf16_native"] == bf16_native(cpu)


def _batch(tr: Trainer, n: int):
    """The first n training examples as the training step sees them: (x, eps, scale)."""
    idx = torch.arange(n)
    return tr._prepare(idx), tr._latent_noise(idx), tr._scalar(1 / n)


def test_bf16_step_keeps_heads_losses_parameters_and_optimiser_in_float32(datasets):
    tr = Trainer(_cfg(datasets, precision="bf16"), log=_quiet)
    assert tr.precision == "bf16"
    seen, hooks = _record_dtypes(tr.model)
    tr.initialize()  # the data-dependent initialisation runs in float32
    assert seen["conv"] == {torch.float32} and seen["head"] == {torch.float32}
    seen["conv"].clear(), seen["head"].clear()
    x, eps, scale = _batch(tr, 32)
    with torch.autocast("cpu", torch.bfloat16):
        out = tr.model(x)
    assert torch.bfloat16 in seen["conv"]  # autocast is on: the convolutions run in bf16
    assert seen["head"] == {torch.float32}  # ... but the Gaussian heads are cast back
    assert out.log_px.dtype == out.kl.dtype == out.bound.dtype == torch.float32
    assert all(layer.kl.dtype == torch.float32 for layer in out.layers)
    loss, elbo = tr._loss(x, eps, tr._scalar(0.5), tr._scalar(1.0), scale)
    assert loss.dtype == elbo.dtype == torch.float32 and torch.isfinite(loss)
    tr.opt.zero_grad()
    loss.backward()
    tr.opt.step()
    for h in hooks:
        h.remove()
    assert {p.dtype for p in tr.model.parameters()} == {torch.float32}
    assert {p.grad.dtype for p in tr.model.parameters() if p.grad is not None} == {torch.float32}
    states = tr.opt.state_dict()["state"].values()
    assert {s["exp_avg"].dtype for s in states} == {s["exp_avg_sq"].dtype for s in states}
    assert {s["exp_avg"].dtype for s in states} == {torch.float32}


def test_fp32_step_runs_no_bf16_and_scoring_stays_fp32_under_autocast(datasets):
    tr = Trainer(_cfg(datasets, precision="fp32"), log=_quiet)
    tr.initialize()
    seen, hooks = _record_dtypes(tr.model)
    x, eps, scale = _batch(tr, 8)
    tr._loss(x, eps, tr._scalar(1.0), tr._scalar(0.0), scale)
    assert seen["conv"] == {torch.float32}
    imgs = tr.x_train[:6]
    plain = score_tensor(tr.model, imgs)
    seen["conv"].clear()
    with torch.autocast("cpu", torch.bfloat16):  # a caller's autocast does not reach scoring
        inside = score_tensor(tr.model, imgs)
    for h in hooks:
        h.remove()
    assert seen["conv"] == {torch.float32}
    assert all(torch.equal(torch.as_tensor(plain.columns[c]), torch.as_tensor(v))
               for c, v in inside.columns.items())  # fmt: skip


@pytest.mark.slow
def test_compiled_step_gives_the_eager_loss_and_gradients(datasets):
    import torch._dynamo

    torch._dynamo.reset()
    # fp32: compiling must keep the math; in bf16 (the "auto" choice on a CPU with native bf16)
    # fused and unfused kernels round differently, by ~1e-4 of the loss
    tr = Trainer(_cfg(datasets, compile=True, precision="fp32"), log=_quiet)
    tr.initialize()
    x, eps, scale = _batch(tr, 32)  # the step's noise is keyed: the same for both
    params = [p for p in tr.model.parameters() if p.requires_grad]
    assert tr._loss is not tr._step_loss
    for beta, lam in ((0.3, 1.0), (0.9, 0.0)):  # another schedule value: no recompile needed
        b, l_ = tr._scalar(beta), tr._scalar(lam)
        eager, eager_elbo = tr._step_loss(x, eps, b, l_, scale)
        g_eager = torch.autograd.grad(eager, params)
        compiled, compiled_elbo = tr._loss(x, eps, b, l_, scale)
        g_comp = torch.autograd.grad(compiled, params)
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(compiled_elbo, eager_elbo, rtol=1e-4, atol=1e-2)
        for a, g in zip(g_comp, g_eager, strict=True):
            torch.testing.assert_close(a, g, rtol=1e-3, atol=1e-3)
    torch._dynamo.reset()


def test_resume_without_optimiser_state_continues_from_the_weights(tmp_path, datasets):
    out = tmp_path / "run"
    first = Trainer(_cfg(datasets), log=_quiet)
    first.run(out, until=1)
    weights, card = load_checkpoint(out)
    for f in (tmp_path / "run.state.json", tmp_path / "run.state.safetensors"):
        f.unlink()  # a fresh machine: only the committed weights, card and history
    logs: list[str] = []
    again = Trainer.resume(out, log=logs.append, precision="bf16")
    assert "no training state" in logs[0] and "fresh optimiser" in logs[0]
    assert (again.epoch, again.step) == (1, first.step) and again.precision == "bf16"
    assert again.opt.state_dict()["state"] == {}  # a fresh optimiser
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in weights.items())
    assert [h["epoch"] for h in again.history] == [1]
    assert again.cfg.phases() == first.cfg.phases()
    again.run(out)
    card = json.loads((tmp_path / "run.json").read_text())
    assert card["epochs_done"] == 3 and card["steps_done"] == 3 * first.step
    assert card["precision"] == "bf16" and card["compile"] is False
    (restart,) = card["restarts"]
    assert restart["epoch"] == 1 and restart["step"] == first.step
    assert "fresh optimiser" in restart["what"] and restart["precision"] == "bf16"
    hist = (tmp_path / "run.history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in hist[1:]] == ["1", "2", "3"]
    # with the state present again the resume is exact, and the restart stays on record
    with pytest.raises(ValueError, match="can change only"):
        Trainer.resume(out, lr=1.0)
    exact = Trainer.resume(out, log=_quiet, precision="fp32")
    assert exact.opt.state_dict()["state"] and len(exact.restarts) == 1


def test_cli_resume_without_state_and_another_precision(tmp_path, datasets, capsys):
    from hvaelab.cli import main

    argv = ["train", "--preset", "hvae-tiny", "--dataset", datasets.fashionmnist, "--ood"]
    argv += ["--epochs", "2", "--train-examples", "64", "--val-examples", "16"]
    argv += ["--batch-size", "32", "--init-examples", "32", "--device", "cpu"]
    argv += ["--out", str(tmp_path / "run")]
    assert main([*argv, "--until", "1"]) == 0
    auto = "bf16" if bf16_native(torch.device("cpu")) else "fp32"  # what "auto" picks here
    assert f"precision {auto}" in capsys.readouterr().out
    (tmp_path / "run.state.json").unlink()
    assert main([*argv, "--resume", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "no training state beside" in out and "resuming" in out and "epoch 2 |" in out
    card = json.loads((tmp_path / "run.json").read_text())
    assert card["epochs_done"] == 2 and len(card["restarts"]) == 1
    assert card["hardware"]["name"] and "bf16_native" in card["hardware"]


def test_a_run_resumes_on_a_device_whose_generator_state_differs(tmp_path, datasets):
    """A run trained on a GPU continues on the CPU: a CUDA generator's state (16 bytes) does
    not fit the CPU's (5056); it drew only the initialisation batch, so the resume stays exact
    and the card keeps where each segment ran."""
    from hvaelab.checkpoint import load_state, save_state

    out = tmp_path / "run"
    Trainer(_cfg(datasets), log=_quiet).run(out, until=1)
    obj, extra = load_state(out)
    obj["rng"]["gen"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA Philox state
    save_state(out, obj, extra)
    card = json.loads((tmp_path / "run.json").read_text())
    card["hardware"] = {"device": "cuda", "name": "NVIDIA H200"}
    (tmp_path / "run.json").write_text(json.dumps(card))
    again = Trainer.resume(out, log=_quiet)
    assert again.opt.state_dict()["state"] and again.restarts == []  # exact: moments kept
    again.run(out)
    reference = Trainer(_cfg(datasets), log=_quiet)
    reference.run(tmp_path / "ref")
    for k, v in reference.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[k], v), k
    card = json.loads((tmp_path / "run.json").read_text())
    (resume,) = card["resumes"]
    assert resume["epoch"] == 1 and resume["exact"] is True
    assert resume["before"]["hardware"]["name"] == "NVIDIA H200"
    assert resume["now"]["hardware"]["device"] == "cpu" and card["hardware"]["device"] == "cpu"
