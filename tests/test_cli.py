"""The command line, run in-process: train / resume / tables / evaluate / score / info."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hvaelab.app import resources
from hvaelab.cli import main
from hvaelab.data import load_dataset, load_samples
from hvaelab.evaluate import evaluate_tables
from hvaelab.scores import load_tables, tables_path

TRAIN = [
    "train",
    "--preset",
    "hvae-tiny",
    "--epochs",
    "2",
    "--train-examples",
    "256",
    "--val-examples",
    "64",
    "--batch-size",
    "64",
    "--device",
    "cpu",
]


def IN_OOD(datasets) -> list[str]:  # noqa: N802 - reads like the options it returns
    return ["--in", datasets.fashionmnist, "--ood", datasets.mnist]


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``hvaelab ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(rc: int, err: str, command: str, *needles: str) -> None:
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hvaelab {command}: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def run(tmp_path_factory, datasets):
    """A tiny run trained for 1 of 2 epochs, resumed to 2, then its score tables written."""
    d = tmp_path_factory.mktemp("cli")
    stem = d / "run"
    data = ["--dataset", datasets.fashionmnist, "--ood", datasets.mnist]
    logs = {"train": run_cli(*TRAIN, *data, "--until", "1", "--out", stem)}
    logs["card1"] = json.loads(stem.with_name("run.json").read_text())
    logs["resume"] = run_cli(*TRAIN, *data, "--resume", "--out", stem)
    logs["tables"] = run_cli(
        "tables",
        "--checkpoint",
        stem,
        *IN_OOD(datasets),
        "--limit",
        "64",
        "--samples",
        "1",
        "2",
        "--samples-per-set",
        "4",
    )
    return stem, logs


def test_train_writes_a_checkpoint(run, datasets):
    stem, logs = run
    rc, out, _ = logs["train"]
    assert rc == 0
    assert "parameters on cpu" in out
    assert "epoch 1 |" in out and "train elbo" in out and f"{datasets.mnist}/auroc_llr1" in out
    assert f"wrote {stem}.safetensors and {stem}.json (epoch 1/2)" in out
    assert logs["card1"]["epochs_done"] == 1
    assert logs["card1"]["train_config"]["train_examples"] == 256


def test_resume_continues_the_run(run):
    stem, logs = run
    rc, out, _ = logs["resume"]
    assert rc == 0
    assert f"resuming {stem} at epoch 1/2" in out
    assert "epoch 2 |" in out and "epoch 1 |" not in out
    assert "(epoch 2/2)" in out
    card = json.loads(stem.with_name("run.json").read_text())
    assert card["epochs_done"] == 2 and card["steps_done"] == 2 * 4
    with open(stem.with_name("run.history.csv"), newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2]


def test_resume_with_other_epochs_is_refused(run):
    stem, _ = run
    argv = [a if a != "2" else "5" for a in TRAIN]  # --epochs 5
    rc, _, err = run_cli(*argv, "--resume", "--out", stem)
    assert_one_line_error(rc, err, "train", "planned for 2 epochs", "--epochs")
    assert json.loads(stem.with_name("run.json").read_text())["epochs_done"] == 2


def test_resume_without_epochs_follows_the_runs_own_plan(run):
    stem, _ = run
    i = TRAIN.index("--epochs")
    rc, out, err = run_cli(*TRAIN[:i], *TRAIN[i + 2 :], "--resume", "--out", stem)
    assert rc == 0, err
    assert f"resuming {stem} at epoch 2/2" in out and "(epoch 2/2)" in out
    assert json.loads(stem.with_name("run.json").read_text())["epochs_done"] == 2


def test_tables_writes_scores_and_samples(run, datasets):
    stem, logs = run
    fm, mn = datasets.fashionmnist, datasets.mnist
    rc, out, _ = logs["tables"]
    assert rc == 0 and f"wrote {stem}.scores.safetensors" in out
    tables = load_tables(stem.with_name("run.scores.safetensors"))
    assert set(tables) == {f"{fm}@S1", f"{mn}@S1", f"{fm}@S2", f"{mn}@S2"}
    for key, t in tables.items():
        assert len(t) == 64 and t.n_samples == int(key[-1]) and t.meta["prior"] == "mean"
    samples = load_samples(stem.with_name("run.samples.safetensors"))
    assert {k: v.shape for k, v in samples.items()} == {
        fm: (4, 28, 28),
        mn: (4, 28, 28),
    }


def test_tables_over_other_datasets_keeps_the_shipped_images_of_the_first(run, tmp_path, datasets):
    """A later run over other OOD sets (say S = 64 on MNIST only) replaces the images of the sets
    it scores and keeps the others', instead of shipping fewer sets than before."""
    stem, _ = run
    fm, mn = datasets.fashionmnist, datasets.mnist
    for f in stem.parent.glob("run.*"):
        shutil.copy(f, tmp_path / f.name)
    copy = tmp_path / "run"
    before = load_samples(tmp_path / "run.samples.safetensors")
    argv = ["tables", "--checkpoint", copy, "--in", fm, "--ood", "constant", "--limit", "8"]
    rc, _, err = run_cli(*argv, "--samples", "1", "--samples-per-set", "4")
    assert rc == 0, err
    after = load_samples(tmp_path / "run.samples.safetensors")
    assert set(after) == {fm, mn, "constant"}
    assert np.array_equal(after[mn], before[mn])  # not scored this time: kept as it was
    assert after["constant"].shape == (4, 28, 28)


def test_tables_resume_keeps_what_is_done_and_no_lt_drops_the_lower_bounds(run, tmp_path, datasets):
    stem, _ = run
    fm, mn = datasets.fashionmnist, datasets.mnist
    for f in stem.parent.glob("run.*"):  # a copy: other tests read the run's own tables
        shutil.copy(f, tmp_path / f.name)
    copy = tmp_path / "run"
    before = load_tables(tables_path(copy))
    argv = ["tables", "--checkpoint", copy, *IN_OOD(datasets), "--limit", "64"]
    argv += ["--samples-per-set", "0"]
    rc, out, err = run_cli(*argv, "--samples", "1", "2", "--resume")
    assert rc == 0, err
    for key in (f"{fm}@S1", f"{mn}@S1", f"{fm}@S2", f"{mn}@S2"):
        assert f"keeping {key}: already scored with these settings" in err
    assert "scoring" not in err.replace("already scored", "")
    after = load_tables(tables_path(copy))
    for key, t in before.items():
        for col, v in t.columns.items():
            assert np.array_equal(after[key].columns[col], v), (key, col)

    rc, _, err = run_cli(*argv, "--samples", "2", "--resume", "--no-lt")
    assert rc == 0, err
    assert f"scoring {fm}@S2 again: the stored table differs in lt" in err
    after = load_tables(tables_path(copy))
    assert set(after) == set(before)  # S = 1, not asked for, stays as it was
    for key in (f"{fm}@S2", f"{mn}@S2"):
        assert not any(c.startswith("L<") for c in after[key].columns)
        assert np.array_equal(after[key].columns["L>1_iw"], before[key].columns["L>1_iw"])
    assert "L<1" in after[f"{fm}@S1"].columns
    assert not Path(f"{copy}.scores.partial.safetensors").exists()
    ev = ["evaluate", "--checkpoint", copy, *IN_OOD(datasets), "--tables", "--out", tmp_path / "e"]
    rc, out, _ = run_cli(*ev)
    assert rc == 0 and f"OOD: {mn}   S = 2" in out and "LLR_S>1" in out


def test_copy_gives_the_same_checkpoint_and_its_files_under_a_new_name(run, tmp_path, datasets):
    stem, _ = run
    dst = tmp_path / "ship" / "shipped"
    rc, out, err = run_cli("copy", stem, dst)
    assert rc == 0, err
    assert out.startswith(f"copied {stem} to {dst}: shipped.safetensors, shipped.json")
    assert (
        dst.with_name("shipped.safetensors").read_bytes()
        == Path(f"{stem}.safetensors").read_bytes()
    )
    card, src_card = (json.loads(Path(f"{p}.json").read_text()) for p in (dst, stem))
    assert card["weights_file"] == "shipped.safetensors"
    assert card["evaluation"]["score_tables"] == "shipped.scores.safetensors"
    changed = {k for k in card if card[k] != src_card[k]}
    assert changed == {"weights_file", "evaluation"}
    for suffix in (".history.csv", ".scores.safetensors", ".samples.safetensors"):
        assert Path(f"{dst}{suffix}").read_bytes() == Path(f"{stem}{suffix}").read_bytes()
    assert Path(f"{stem}.state.json").exists() and not Path(f"{dst}.state.json").exists()
    # the tables still belong to the weights: a resumed `tables` keeps them all
    argv = ["tables", "--checkpoint", dst, *IN_OOD(datasets), "--limit", "64", "--resume"]
    rc, _, err = run_cli(*argv, "--samples-per-set", "0")
    assert rc == 0 and err.count("keeping") == 2 and "again" not in err, err

    before = Path(f"{dst}.json").read_bytes()
    rc, _, err = run_cli("copy", stem, dst)
    assert_one_line_error(rc, err, "copy", "already exists", "--replace")
    assert Path(f"{dst}.json").read_bytes() == before

    stale = Path(f"{dst}.second-stage.safetensors")  # a file for other weights at DST
    stale.write_bytes(b"a second stage of the old weights")
    rc, _, err = run_cli("copy", stem, dst, "--replace")
    assert rc == 0, err
    assert not stale.exists()  # the source has none: nothing at DST disagrees with the weights


def test_a_float16_copy_loads_as_float32_and_scores_as_the_original(run, tmp_path, datasets):
    from hvaelab.checkpoint import load_model
    from hvaelab.scores import dataset_images, score_tensor

    stem, _ = run
    dst = tmp_path / "half"
    rc, out, err = run_cli("copy", stem, dst, "--dtype", "float16")
    assert rc == 0, err
    assert f"`hvaelab second-stage --checkpoint {dst}`" in out and "tables" in out
    assert not Path(f"{dst}.scores.safetensors").exists()  # computed from the old weights
    half, full = load_model(dst), load_model(stem)
    assert {p.dtype for p in half.model.parameters()} == {torch.float32}
    b = half.model.state_dict()
    for name, a in full.model.state_dict().items():
        assert torch.equal(b[name], a.half().float()), name  # float16 rounding, nothing else
    images, _ = dataset_images(datasets.fashionmnist, limit=32)
    ta, tb = (score_tensor(m.model, images) for m in (full, half))
    for col in ("elbo", "L>1", "L>2", "L<1"):  # float16 keeps 11 bits: 5e-4 relative a weight
        diff = np.abs(ta.columns[col] - tb.columns[col])
        assert diff.max() < 5e-3 * np.abs(ta.columns[col]).mean(), (col, diff.max())


def test_copy_refuses_a_damaged_source_and_writes_nothing(run, tmp_path):
    stem, _ = run
    for f in ("run.json", "run.safetensors"):
        shutil.copy(stem.with_name(f), tmp_path / f)
    (tmp_path / "run.safetensors").write_bytes(b"not the weights")
    rc, _, err = run_cli("copy", tmp_path / "run", tmp_path / "copy")
    assert_one_line_error(rc, err, "copy", "sha256")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.safetensors"]


def test_installed_checkpoints_are_read_only(
    run, tmp_path, datasets, installed_models, monkeypatch
):
    """tables, second-stage and copy onto an installed checkpoint (hvaelab-models) stop before
    writing anything and print the command that makes a writable copy, which works."""
    stem, _ = run
    for f in stem.parent.glob("run.*"):
        if ".state." not in f.name:
            shutil.copy(f, installed_models / f.name)
    before = {p.name: p.read_bytes() for p in installed_models.iterdir()}
    assert {"run.json", "run.safetensors", "run.scores.safetensors"} <= set(before)
    monkeypatch.chdir(tmp_path)
    then = "`hvaelab {} --checkpoint ./checkpoints/run`"
    for command, argv, copy in (
        ("tables", ["--checkpoint", "run", *IN_OOD(datasets), "--limit", "8"], "run"),
        ("second-stage", ["--checkpoint", "run", "--n-fit", "64", "--n-select", "32"], "run"),
        ("copy", [stem, installed_models / "run", "--replace"], stem),
    ):
        rc, _, err = run_cli(command, *argv)
        needles = ("installed checkpoint", "read-only", f"`hvaelab copy {copy} ./checkpoints/run`")
        assert_one_line_error(rc, err, command, *needles)
        if command != "copy":
            assert then.format(command) in err
        assert {p.name: p.read_bytes() for p in installed_models.iterdir()} == before, command

    rc, out, err = run_cli("copy", "run", "./checkpoints/run")  # what the message says to run
    assert rc == 0, err
    copy = tmp_path / "checkpoints" / "run"
    for suffix in (".safetensors", ".scores.safetensors", ".samples.safetensors"):
        assert Path(f"{copy}{suffix}").read_bytes() == before[f"run{suffix}"]
    argv = ["tables", "--checkpoint", "./checkpoints/run", *IN_OOD(datasets), "--limit", "8"]
    rc, _, err = run_cli(*argv, "--samples", "1", "--samples-per-set", "0")
    assert rc == 0, err  # the copy is writable
    assert Path(f"{copy}.scores.safetensors").read_bytes() != before["run.scores.safetensors"]
    assert {p.name: p.read_bytes() for p in installed_models.iterdir()} == before


def test_notebooks_copies_the_seven_and_overwrites_only_with_force(tmp_path):
    from hvaelab import package_files

    sources = package_files.notebooks()
    assert len(sources) == 7
    out = tmp_path / "mine" / "notebooks"  # created, parents too
    rc, stdout, err = run_cli("notebooks", out)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in sources]
    for p in sources:
        assert (out / p.name).read_bytes() == p.read_bytes()
    assert f"wrote 7 notebooks to {out}" in stdout and f"jupyter lab {out}" in stdout

    edited, removed = out / sources[0].name, out / sources[1].name
    edited.write_text("my edits")
    removed.unlink()
    rc, _, err = run_cli("notebooks", out)
    assert_one_line_error(rc, err, "notebooks", sources[0].name, "--force", "nothing written")
    assert edited.read_text() == "my edits" and not removed.exists()

    rc, _, err = run_cli("notebooks", out, "--force")
    assert rc == 0, err
    for p in sources:
        assert (out / p.name).read_bytes() == p.read_bytes()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_evaluate_from_stored_tables(run, tmp_path, datasets):
    stem, _ = run
    fm, mn = datasets.fashionmnist, datasets.mnist
    rc, out, _ = run_cli(
        "evaluate", "--checkpoint", stem, *IN_OOD(datasets), "--tables", "--out", tmp_path / "ev"
    )
    assert rc == 0
    assert "== run: conditional prior below k = mean ==" in out
    assert f"OOD: {mn}   S = 1   (prior below k: mean, n = 64 + 64)" in out
    assert f"OOD: {mn}   S = 2" in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith(f"OOD: {mn}   S = 1"))
    assert lines[head + 1].split() == ["score", "auroc", "auprc", "fpr80"]
    assert lines[head + 2].split()[0] == "-ELBO"
    # every printed row of the block is what evaluate_tables computes from the stored tables
    tables = load_tables(stem.with_name("run.scores.safetensors"))
    want = {
        r["score"]: r
        for r in evaluate_tables(tables, fm)["table2"]
        if r["ood"] == mn and r["S"] == 1
    }
    block = lines[head + 2 : head + 2 + len(want)]
    printed = [line.rsplit(maxsplit=3) for line in block]  # "LLR select-k" has a space
    assert [p[0].strip() for p in printed] == list(want)
    for name, *values in printed:
        for v, col in zip(values, ("auroc", "auprc", "fpr80"), strict=True):
            assert v == f"{want[name.strip()][col]:.3f}", (name, col)
    # and the -ELBO AUROC is that of the stored ELBO columns, counted pair by pair: the
    # probability that an MNIST image has the higher -ELBO (ties count 1/2)
    s_in = -tables[f"{fm}@S1"].columns["elbo"][None, :]
    s_ood = -tables[f"{mn}@S1"].columns["elbo"][:, None]
    pairs = np.mean(s_ood > s_in) + 0.5 * np.mean(s_ood == s_in)
    assert want["-ELBO"]["auroc"] == pytest.approx(pairs, abs=1e-9)
    assert any(line.split()[:2] == ["LLR", "select-k"] for line in lines)
    assert any(line.split()[:2] == ["LLR_S", "select-k"] for line in lines)
    assert f"{fm} (S=1)" in out and "log p(x)" in out
    res = json.loads((tmp_path / "ev.json").read_text())
    assert res["in"] == fm and list(res["by_prior"]) == ["mean"]
    with open(tmp_path / "ev.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res["table2"]) > 0
    assert {r["S"] for r in rows} == {"1", "2"} and {r["ood"] for r in rows} == {mn}


def test_evaluate_computes_both_prior_variants(run, tmp_path, datasets):
    stem, _ = run
    rc, out, err = run_cli(
        "evaluate",
        "--checkpoint",
        stem,
        *IN_OOD(datasets),
        "--limit",
        "64",
        "--samples",
        "1",
        "--prior",
        "mean",
        "sample",
        "--out",
        tmp_path / "both",
    )
    assert rc == 0, err
    assert "conditional prior below k = mean" in out
    assert "conditional prior below k = sample" in out
    assert "(prior below k: mean, n = 64 + 64)" in out
    assert "(prior below k: sample, n = 64 + 64)" in out
    res = json.loads((tmp_path / "both.json").read_text())
    assert list(res["by_prior"]) == ["mean", "sample"]
    priors = {r["prior"] for r in res["table2"]}
    assert priors == {"mean", "sample"}
    by = {(r["prior"], r["score"]): r["auroc"] for r in res["table2"]}
    assert by[("mean", "-ELBO")] == by[("sample", "-ELBO")]  # the ELBO has no prior below k
    assert by[("mean", "LLR>3")] != by[("sample", "LLR>3")]


def _png(path: Path, value: int, size: int = 28, mode: str = "L") -> Path:
    Image.new(mode, (size, size), value if mode == "L" else (value,) * 3).save(path)
    return path


def test_score_a_png_a_folder_and_an_npy(run, tmp_path, datasets):
    stem, _ = run
    white = _png(tmp_path / "white.png", 255, size=56, mode="RGB")
    folder = tmp_path / "imgs"
    folder.mkdir()
    _png(folder / "a.png", 0)
    _png(folder / "b.png", 128)
    # an example of the reference table itself (score_dataset's seeded subset of 64 test images)
    test = load_dataset(datasets.fashionmnist, "test").images
    member = np.sort(np.random.default_rng(0).choice(len(test), 64, replace=False))[0]
    Image.fromarray(test[member]).save(folder / "c.png")
    (folder / "notes.txt").write_text("not an image")  # skipped in folders
    arr = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "three.npy", arr)
    csv_out = tmp_path / "scores.csv"
    rc, out, err = run_cli(
        "score",
        white,
        folder,
        tmp_path / "three.npy",
        "--checkpoint",
        stem,
        "--out",
        csv_out,
    )
    assert rc == 0, err
    lines = out.splitlines()
    # no second stage: the paper's rule, over the k below the top active layer (all 3 active)
    assert lines.pop(0).startswith("verdict: the paper's likelihood ratios LLR>1, LLR>2 (")
    lines = [line for line in lines if not line.startswith("wrote")]
    names = ["white.png", "imgs/a.png", "imgs/b.png", "imgs/c.png"]
    names += [f"three.npy[{i}]" for i in range(3)]
    assert [line.split(":")[0] for line in lines] == names
    for line in lines:
        assert ("OOD (decided by LLR>" in line) or ("in-distribution (decided by LLR>" in line)
        assert "alpha=0.05/2" in line and "bits/dim=" in line and "LLR>2=" in line
        assert "LLR>3=" not in line  # k = L takes every latent from the prior: not voted
    # a reference example is never more extreme than itself: p >= 2/65 > 0.05/3 for every k
    # (white and noise are flagged by a trained model, see
    # test_score_flags_white_and_noise_against_the_shipped_reference; this 2-epoch model's
    # LLR>k do not single them out yet)
    said = {line.split(":")[0]: line.split(": ", 1)[1] for line in lines}
    assert said["imgs/c.png"].startswith("in-distribution (decided by LLR>")
    with open(csv_out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["input"] for r in rows] == names
    assert {r["verdict"] for r in rows} <= {"OOD", "in-distribution"}
    member = rows[names.index("imgs/c.png")]
    assert member["verdict"] == "in-distribution" and float(member["min_p"]) >= 2 / 65
    for r in rows:  # the verdict is the Bonferroni test of the smallest LLR>k p-value
        ps = {s: float(r[f"p({s})"]) for s in ("LLR>1", "LLR>2")}
        assert all(0 < p <= 1 for p in ps.values())
        assert float(r["min_p"]) == min(ps.values()) == ps[r["decided_by"]]
        assert r["verdict"] == ("OOD" if min(ps.values()) < 0.05 / 2 else "in-distribution")

    rc, out, _ = run_cli(
        "score", white, "--checkpoint", stem, "--reference", f"{datasets.fashionmnist}@S2"
    )
    assert rc == 0 and "LLR_S>1 iw-both=" in out


def test_score_errors_are_one_line_without_traceback(run, tmp_path, datasets):
    stem, _ = run
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    rc, out, err = run_cli("score", text, "--checkpoint", stem)
    assert_one_line_error(rc, err, "score", "notes.png", "not an image file")
    assert out == ""

    rc, _, err = run_cli("score", tmp_path / "missing.png", "--checkpoint", stem)
    assert_one_line_error(rc, err, "score", "missing.png", "no such file or folder")

    png = _png(tmp_path / "ok.png", 10)
    rc, _, err = run_cli("score", png, "--checkpoint", tmp_path / "no-such-run")
    assert_one_line_error(rc, err, "score", "no-such-run", "not found")

    rc, _, err = run_cli("score", png, "--checkpoint", stem, "--reference", "cifar@S1")
    assert_one_line_error(rc, err, "score", "cifar@S1", f"{datasets.fashionmnist}@S1")

    rc, _, err = run_cli("score", png, "--checkpoint", stem, "--fpr", "2")
    assert_one_line_error(rc, err, "score", "fpr must be in (0, 1)")


def test_info_prints_the_card(run, datasets):
    stem, _ = run
    rc, out, _ = run_cli("info", "--checkpoint", stem)
    assert rc == 0
    first, rest = out.split("\n", 1)
    assert first.startswith(f"{stem}: ") and first.endswith(" parameters")
    card = json.loads(rest)
    assert card["epochs_done"] == 2 and card["model_config"]["name"] == "hvae-tiny"
    assert card["data"]["train"]["name"] == datasets.fashionmnist
    assert f"{card['n_parameters']:,}" in first

    rc, _, err = run_cli("info", "--checkpoint", stem.with_name("nope"))
    assert_one_line_error(rc, err, "info", "not found")


def test_module_entry_point_help():
    proc = subprocess.run(
        [sys.executable, "-m", "hvaelab.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for cmd in ("train", "evaluate", "tables", "score", "info"):
        assert cmd in proc.stdout


def test_score_without_score_tables_gives_every_score_and_no_verdict(run, tmp_path):
    """A checkpoint with no tables beside it: every score, empty p-value and verdict columns,
    and one line saying how to add the reference."""
    stem, _ = run
    bare = tmp_path / "bare"
    bare.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(stem.with_name("run" + suffix), bare / ("run" + suffix))
    png = _png(tmp_path / "mid.png", 128)
    csv_out = tmp_path / "bare.csv"
    rc, out, err = run_cli("score", png, "--checkpoint", bare / "run", "--out", csv_out)
    assert rc == 0, err
    assert err.strip().splitlines() == [
        f"no score tables beside {bare / 'run'} (run.scores.safetensors): every score, but no "
        f"p-values or verdicts; add the reference with `hvaelab tables --checkpoint {bare / 'run'}`"
    ]
    line = out.splitlines()[0]
    assert line.startswith("mid.png: bits/dim=")
    for name in ("-ELBO=", "-L>1=", "LLR>1=", "LLR>3=", "-L<1=", "LLR>2<1="):
        assert name in line, name
    assert "OOD" not in line and "in-distribution" not in line and "p=" not in line
    with open(csv_out, newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["verdict"] == "" and row["decided_by"] == "" and row["min_p"] == ""
    assert row["p(LLR>1)"] == "" and float(row["LLR>1"]) == pytest.approx(
        float(line.split("LLR>1=")[1].split()[0]), abs=0.06
    )
    assert not (bare / "run.scores.safetensors").exists()  # nothing written beside it
    rc, _, err = run_cli("score", png, "--checkpoint", bare / "run", "--reference", "x@S1")
    assert_one_line_error(rc, err, "score", "no score tables at", "hvaelab tables")


def test_samples_belong_to_their_checkpoint(run, tmp_path, datasets):
    """`hvaelab tables` for a second checkpoint in the same folder leaves the first one's
    samples (and tables) alone."""
    stem, _ = run
    folder = stem.parent
    for suffix in (".json", ".safetensors"):
        shutil.copy(folder / f"run{suffix}", folder / f"twin{suffix}")
    before = {k: v.copy() for k, v in load_samples(folder / "run.samples.safetensors").items()}
    rc, out, err = run_cli(
        "tables", "--checkpoint", folder / "twin", *IN_OOD(datasets),
        "--limit", "8", "--samples-per-set", "2",
    )  # fmt: skip
    assert rc == 0, err
    assert f"wrote {folder / 'twin.samples.safetensors'}" in out
    twin = load_samples(folder / "twin.samples.safetensors")
    assert {k: v.shape[0] for k, v in twin.items()} == {k: 2 for k in before}
    after = load_samples(folder / "run.samples.safetensors")
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[k], before[k]) for k in before)
    assert len(next(iter(load_tables(folder / "run.scores.safetensors").values()))) == 64


def test_train_options_take_their_defaults_and_help_from_train_config(capsys):
    """Every TrainConfig setting is a `hvaelab train` option with the same default; no
    default is written twice."""
    import dataclasses

    from hvaelab.cli import build_parser, train_config_from_args
    from hvaelab.train import TrainConfig

    parser = build_parser()
    args = parser.parse_args(["train"])
    assert train_config_from_args(args) == TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "model_overrides":
            continue
        assert hasattr(args, f.name), f"TrainConfig.{f.name} is not an option"
        assert f.metadata["help"], f"TrainConfig.{f.name} has no help text"
    assert args.epochs is None  # resolved to the default, or with --resume to the run's plan
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert "--init-examples" in text and "(default: 512)" in text and "(default: mnist)" in text
    args = parser.parse_args(["train", "--lr", "1e-3", "--ood", "a", "b", "--warmup", "2"])
    assert (args.lr, args.ood, args.warmup) == (1e-3, ["a", "b"], 2.0)


def test_score_flags_white_and_noise_against_the_shipped_reference(app_checkpoints, tmp_path):
    """The FashionMNIST checkpoint the dashboards use, against its reference table: an all-white
    image and uniform noise are OOD, a FashionMNIST test image (a shipped sample) is not."""
    white = _png(tmp_path / "white.png", 255)
    noise = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "noise.npy", noise)
    garment = resources.load_shipped_samples()["fashionmnist"][0]
    Image.fromarray(garment).save(tmp_path / "garment.png")
    inputs = [white, tmp_path / "noise.npy", tmp_path / "garment.png"]
    ck = app_checkpoints / "fashionmnist"
    # the default verdict is the strongest the checkpoint has: its second stage
    for rule, decider in (
        ("auto", "second-stage"),
        ("second-stage", "second-stage"),
        ("llr", "LLR>"),
    ):
        rc, out, err = run_cli("score", *inputs, "--checkpoint", ck, "--verdict", rule)
        assert rc == 0, err
        said = dict(line.split(": ", 1) for line in out.splitlines())
        assert said.pop("verdict").startswith(
            "second stage" if decider == "second-stage" else "the paper's likelihood ratios"
        )
        noises = [f"noise.npy[{i}]" for i in range(3)]
        assert list(said) == ["white.png", *noises, "garment.png"]
        for name in ("white.png", *noises):
            assert said[name].startswith(f"OOD (decided by {decider}"), (rule, name, said[name])
        assert said["garment.png"].startswith(f"in-distribution (decided by {decider}"), said
