"""Run several ``hvaelab train`` jobs side by side on one GPU within a wall-clock budget.

For time-boxed GPU sessions (a lent machine, a short cluster allocation): each job is first
probed for a few training steps while all the others are probed too (so the timing includes
their contention), jobs without a fixed epoch count get as many epochs as fit the time left,
every job stops at the deadline (an epoch that was cut short is lost; finished epochs are
checkpointed, so ``hvaelab train --resume`` continues them elsewhere), and each run is packed
into ``$OUT/NAME.tar.partN`` pieces of at most 15 MiB. Runs whose ``group`` matches are trained
in competition and only the one with the best *in-distribution* validation ELBO is packed.

    python scripts/device_train.py jobs.json SECONDS

``jobs.json`` maps a run name to ``{"args": [...hvaelab train arguments...], "epochs": N or
null, "range": [min, max], "same_as": NAME, "group": NAME}``; ``--out`` is set to gpu/NAME.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path

PART = 15 * 2**20


def probe(args: list[str], n_steps: int = 30) -> dict:
    """Seconds per training step and per validation pass of one job's configuration."""
    import torch

    from hvaelab.cli import build_parser, train_config_from_args
    from hvaelab.train import Trainer, monitor

    cfg = train_config_from_args(build_parser().parse_args(["train", *args]))
    tr = Trainer(cfg, log=lambda s: None)
    tr.initialize()
    perm, B = tr._permutation(), cfg.batch_size
    full = max(1, len(tr.x_train) // B)  # full batches; the probe cycles through them
    sync = torch.cuda.synchronize if tr.device.type == "cuda" else (lambda: None)

    def step(j: int) -> None:
        i = j % full
        tr.backward(perm[i * B : (i + 1) * B], 0.5)
        tr.opt.step()

    for j in range(5):
        step(j)
    sync()
    t0 = time.perf_counter()
    for j in range(5, 5 + n_steps):
        step(j)
    sync()
    s = (time.perf_counter() - t0) / n_steps
    t1 = time.perf_counter()
    monitor(tr.model, tr.val)
    sync()
    return {
        "s_per_step": s,
        "steps_per_epoch": math.ceil(len(tr.x_train) / B),
        "val_s": time.perf_counter() - t1,
        "device": str(tr.device),
        "precision": tr.precision,
    }


def last_val(name: str) -> tuple[int, float]:
    """(epochs done, last in-distribution validation ELBO) of a run; (0, -inf) if none."""
    from hvaelab.artifacts import Artifacts, read_history

    art = Artifacts(Path("gpu") / name)
    rows = read_history(art.history)
    if not rows or not art.card.is_file():
        return (0, -math.inf)
    dataset = json.loads(art.card.read_text())["train_config"]["dataset"]
    v = rows[-1].get(f"{dataset}/elbo", math.nan)
    return (len(rows), v) if math.isfinite(v) else (0, -math.inf)


def main(jobs_file: str, seconds: float) -> int:
    from hvaelab.artifacts import Artifacts

    t_start = time.time()
    deadline = t_start + seconds
    jobs = json.load(open(jobs_file))
    out = os.environ.get("OUT", "out")
    os.makedirs(out, exist_ok=True)
    os.makedirs("gpu", exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    procs = {
        n: subprocess.Popen(
            [sys.executable, __file__, "--probe", json.dumps(j["args"])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for n, j in jobs.items()
    }
    res = {}
    for n, p in procs.items():
        text = p.communicate()[0]
        line = [x for x in text.splitlines() if x.startswith("PROBE ")]
        res[n] = json.loads(line[-1][6:]) if line else {"ok": False, "error": text[-3000:]}
        print(n, json.dumps(res[n])[:3000], flush=True)
    left = deadline - time.time()
    print(f"probes done after {time.time() - t_start:.0f} s; {left:.0f} s left", flush=True)
    if not any(r.get("ok") for r in res.values()):
        print("every probe failed", flush=True)
        return 1
    runs, chosen = {}, {}
    for n, j in jobs.items():
        r = res[n]
        if not r.get("ok"):
            continue
        epoch_s = r["steps_per_epoch"] * r["s_per_step"] + r["val_s"] + 1.0
        epochs = j.get("epochs") or chosen.get(j.get("same_as", ""))
        if not epochs:
            lo, hi = j.get("range", [1, 1000])
            epochs = max(lo, min(hi, int(0.8 * (left - 25) / epoch_s)))
        chosen[n] = epochs
        print(f"{n}: {epoch_s:.1f} s/epoch -> {epochs} epochs", flush=True)
        cmd = [sys.executable, "-m", "hvaelab", "train", *j["args"], "--epochs", str(epochs)]
        cmd += ["--out", f"gpu/{n}"]
        log = open(f"gpu/{n}.log", "w")
        runs[n] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    while time.time() < deadline and any(p.poll() is None for p in runs.values()):
        time.sleep(2)
    for n, p in runs.items():
        if p.poll() is None:
            p.terminate()
            print(f"{n}: stopped at the deadline", flush=True)
    for p in runs.values():
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
    groups: dict[str, list[str]] = {}
    for n in runs:
        groups.setdefault(jobs[n].get("group", n), []).append(n)
    for members in groups.values():
        best = max(members, key=last_val)
        if len(members) > 1:
            print("validation:", {m: last_val(m) for m in members}, "-> packed", best, flush=True)
        art = Artifacts(Path("gpu") / best)
        files = [art.weights, art.card, art.history, art.state_card, art.state_weights]
        files = [str(f) for f in files if f.is_file()]
        if runs[best].returncode == 0 or sum(map(os.path.getsize, files)) > PART:
            # the optimiser state: not needed once finished, or too big to come back
            files = [f for f in files if f != str(art.state_weights)]
        with tarfile.open(f"gpu/{best}.tar", "w") as t:
            for f in files:
                t.add(f, arcname=os.path.basename(f))
        data = open(f"gpu/{best}.tar", "rb").read()
        for i in range(max(1, math.ceil(len(data) / PART))):
            with open(f"{out}/{best}.tar.part{i}", "wb") as f:
                f.write(data[i * PART : (i + 1) * PART])
        print(best, "rc", runs[best].returncode, [os.path.basename(f) for f in files], flush=True)
    with tarfile.open(f"{out}/logs.tar.gz", "w:gz") as t:
        for n in runs:
            for f in (f"gpu/{n}.log", f"gpu/{n}.history.csv"):
                if os.path.exists(f):
                    t.add(f, arcname=os.path.basename(f))
    for n in runs:
        print(n, "last epoch:", last_val(n), flush=True)
    print(f"done after {time.time() - t_start:.0f} s: {sorted(os.listdir(out))}", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--probe":
        try:
            r = {"ok": True, **probe(json.loads(sys.argv[2]))}
        except Exception:
            r = {"ok": False, "error": traceback.format_exc()}
        print("PROBE " + json.dumps(r), flush=True)
    else:
        sys.exit(main(sys.argv[1], float(sys.argv[2])))
