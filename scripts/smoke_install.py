"""Install hvaelab as a new user would, far from this checkout, and use it (CI runs this).

    .venv/bin/python scripts/smoke_install.py [--keep] [--skip-browser]

1. builds the distributions (``python -m build``: hvaelab's sdist + wheel, and the models'
   ``packaging/hvaelab-models``) into ``dist/``;
2. makes a fresh virtual environment in an empty temporary folder and installs PyTorch's CPU
   build first (``torch==2.13.0``, as ``make setup`` does), then the two wheels with the ``app``
   and ``models`` extras;
3. from that empty folder, with ``HOME`` an empty folder and every ``XDG_*``, ``JUPYTER_*`` and
   ``HVAELAB_*`` variable unset, and nothing of the checkout on ``sys.path``: ``hvaelab info``,
   ``hvaelab score`` of a PNG and of a ``.npy``, ``HVAEDetector.from_checkpoint("fashionmnist")``
   on a few images from Python, and ``hvaelab notebooks``;
4. serves the installed package's pages with its own ``hvaelab dashboard`` and drives all seven in
   Chromium with the browser tests of ``tests/e2e`` (Playwright from this development
   environment): working widgets, no console error, no request to another host.

Prints the time of each step and the time from the empty environment to the first verdict.
Exit status 0 when everything worked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
TORCH = "torch==2.13.0"  # the CPU build, installed first (Makefile: TORCH_VERSION)
CLEARED_PREFIXES = ("XDG_", "JUPYTER_", "HVAELAB_")
CLEARED = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
# The browser tests that drive the seven pages of an installed server (tests/e2e):
# the tree lists all seven; explorer, reconstructions, upload: a widget's change reaches the
# kernel and comes back; correlations, teaching, training: their figures are drawn; draw: a
# test image replayed on the canvas is scored.
E2E_TESTS = [
    "tests/e2e/test_e2e_dashboards.py::test_tree_lists_every_dashboard",
    "tests/e2e/test_e2e_dashboards.py::test_explorer_k_slider_updates_density_and_roc",
    "tests/e2e/test_e2e_dashboards.py::test_reconstruction_k_slider_changes_grid",
    "tests/e2e/test_e2e_dashboards.py::test_upload_scores_images_and_rejects_non_images",
    "tests/e2e/test_e2e_dashboards.py::test_other_pages_render_offline_and_clean",
    "tests/e2e/test_e2e_dashboards.py::test_figures_are_drawn_by_the_templates_plotly_bundle",
    "tests/e2e/test_e2e_draw.py::test_start_from_a_test_image",
]

PYTHON_CHECK = r"""
import json, sys
from pathlib import Path
import numpy as np
import hvaelab
from hvaelab import package_files
from hvaelab.artifacts import Artifacts
from hvaelab.checkpoint import resolve_checkpoint
from hvaelab.data import load_samples
from hvaelab.detector import HVAEDetector

site = Path(sys.argv[1]).resolve()
inside = lambda p: Path(p).resolve().is_relative_to(site)
assert inside(hvaelab.__file__), hvaelab.__file__
assert package_files.checkout_root() is None
for p in (package_files.notebooks_dir(), package_files.template_dir(),
          resolve_checkpoint("fashionmnist")):
    assert inside(p), f"{p} is outside the installed environment {site}"
assert len(package_files.notebooks()) == 7
detector = HVAEDetector.from_checkpoint("fashionmnist")
samples = load_samples(Artifacts.of(resolve_checkpoint("fashionmnist")).samples)
x = np.concatenate([samples["fashionmnist"][:4], samples["mnist"][:4]])
print("HVAEDetector.from_checkpoint('fashionmnist') on 4 FashionMNIST + 4 MNIST test images:")
print("  LLR>1:", [round(float(s), 1) for s in detector.predict(x)])
print("  verdict (True = OOD):", [bool(v) for v in detector.verdict(x)])
rates = {n: float(detector.verdict(samples[n]).float().mean()) for n in ("fashionmnist", "mnist")}
print("  flagged OOD among the 64 shipped samples of each set:", rates)
assert rates["mnist"] > 0.5 > 0.25 > rates["fashionmnist"], rates
print(json.dumps({"hvaelab": hvaelab.__version__, "file": hvaelab.__file__}))
"""


def say(message: str) -> None:
    print(f"[smoke] {message}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    shown = [a if len(str(a)) < 120 else str(a)[:40].strip() + " ..." for a in cmd]
    say("$ " + " ".join(map(str, shown)))
    done = subprocess.run(cmd, text=True, capture_output=True, **kw)
    out = (done.stdout + done.stderr).strip()
    if out:
        print("\n".join("    " + line for line in out.splitlines()[-40:]), flush=True)
    if done.returncode != 0:
        raise SystemExit(f"[smoke] FAILED (exit {done.returncode}): {' '.join(map(str, cmd))}")
    return done


def build() -> list[Path]:
    shutil.rmtree(DIST, ignore_errors=True)
    run([sys.executable, "-m", "build", "--outdir", str(DIST), str(REPO)])
    run(
        [
            sys.executable,
            "-m",
            "build",
            "--outdir",
            str(DIST),
            str(REPO / "packaging" / "hvaelab-models"),
        ]
    )
    files = sorted(DIST.iterdir())
    run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)])
    for f in files:
        say(f"{f.name}: {f.stat().st_size / 2**20:.2f} MiB")
    return files


def clean_env(home: Path, venv: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CLEARED and not k.startswith(CLEARED_PREFIXES)
    }
    dev_bin = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != dev_bin]
    env |= {"HOME": str(home), "PATH": os.pathsep.join([str(venv / "bin"), *path])}
    return env


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--skip-browser", action="store_true", help="no dashboard in Chromium")
    a = p.parse_args()
    t0 = time.monotonic()
    files = build()
    wheels = {f.name.split("-")[0]: f for f in files if f.suffix == ".whl"}
    t_build = time.monotonic() - t0

    root = Path(tempfile.mkdtemp(prefix="hvaelab-smoke-"))
    home, work, venv = root / "home", root / "work", root / "venv"
    home.mkdir(), work.mkdir()
    env = clean_env(home, venv)
    py, hv = venv / "bin" / "python", venv / "bin" / "hvaelab"
    try:
        t1 = time.monotonic()
        run([sys.executable, "-m", "venv", str(venv)], cwd=work, env=env)
        run([str(py), "-m", "pip", "install", "--quiet", TORCH], cwd=work, env=env)
        run(
            [
                str(py), "-m", "pip", "install", "--quiet",
                str(wheels["hvaelab_models"]),
                f"{wheels['hvaelab']}[app,models]",
            ],
            cwd=work, env=env,
        )  # fmt: skip
        t_install = time.monotonic() - t1
        site = run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=work, env=env,
        ).stdout.strip()  # fmt: skip

        run([str(hv), "info", "--checkpoint", "fashionmnist"], cwd=work, env=env)
        import numpy as np
        from PIL import Image  # the dev environment writes the inputs; the install reads them

        digit = np.zeros((28, 28), np.uint8)
        digit[4:24, 12:16] = 255  # a "1"
        Image.fromarray(digit).save(work / "one.png")
        np.save(work / "shirts.npy", np.full((3, 28, 28), 90, np.uint8))
        run([str(hv), "score", "--checkpoint", "fashionmnist", "one.png"], cwd=work, env=env)
        t_first = time.monotonic() - t1
        run([str(hv), "score", "--checkpoint", "fashionmnist", "shirts.npy"], cwd=work, env=env)
        run([str(py), "-c", PYTHON_CHECK, site], cwd=work, env=env)
        run([str(hv), "notebooks", "my-notebooks"], cwd=work, env=env)
        copied = sorted(p.name for p in (work / "my-notebooks").glob("*.ipynb"))
        assert len(copied) == 7, copied
        t_cli = time.monotonic() - t1 - t_install

        t2 = time.monotonic()
        if not a.skip_browser:
            server = [
                "env", "-i", "-C", str(work), f"HOME={home}", f"PATH={env['PATH']}",
                "LANG=C.UTF-8", str(hv),
            ]  # fmt: skip
            run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *E2E_TESTS],
                cwd=REPO,
                env={**os.environ, "HVAELAB_E2E_COMMAND": json.dumps(server)},
            )
        t_browser = time.monotonic() - t2
    finally:
        if a.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    say(
        f"passed: build {t_build:.0f} s, install {t_install:.0f} s, commands {t_cli:.0f} s, "
        f"browser {t_browser:.0f} s, total {time.monotonic() - t0:.0f} s; from the empty "
        f"environment to the first verdict: {t_first:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
