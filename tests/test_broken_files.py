"""Broken files beside a checkpoint (issue 37, part 2): a truncated weights file, score tables,
image samples, second stage or training history, or a foreign JSON card.

What needs the file says so in one line naming it and what restores it (the command that writes
it again, or the reinstall of the shipped models); what does not need it still works; the
command line says the same; nothing is overwritten. A copy of the dashboards' checkpoint in a
temporary folder is damaged, never the repository's ``checkpoints/``. The pages' side is
tests/e2e/test_e2e_faults.py.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from test_cli import run_cli

from hvaelab.app import resources
from hvaelab.app.resources import MissingResourceError

NAME = "fashionmnist"
REINSTALL = "pip install --force-reinstall hvaelab-models"
# damaged file -> (what restores it, the loaders that need it)
CASES = {
    ".safetensors": (REINSTALL, {"load_checkpoint"}),
    ".json": (REINSTALL, {"load_checkpoint", "checkpoint_card"}),
    ".scores.safetensors": ("hvaelab tables --checkpoint", {"load_score_tables"}),
    ".samples.safetensors": ("--samples-per-set", {"load_shipped_samples"}),
    ".history.csv": (REINSTALL, {"load_history"}),
    ".second-stage.safetensors": ("hvaelab second-stage --checkpoint", set()),
}
LOADERS = (
    "checkpoint_card",
    "load_checkpoint",
    "load_score_tables",
    "load_shipped_samples",
    "load_history",
)


def damage(folder: Path, suffix: str) -> Path:
    path = folder / f"{NAME}{suffix}"
    if suffix == ".json":  # a foreign JSON file in the card's place
        path.write_text(json.dumps({"name": "something else", "version": 3}))
    else:  # cut in the middle, as a full disk or an interrupted copy leaves it
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


def state(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.fixture
def broken(request, app_checkpoints, tmp_path, monkeypatch):
    """A copy of the dashboards' checkpoint with one file damaged, found through
    $HVAELAB_CHECKPOINTS; yields (the damaged file, the folder's state after the damage)."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for f in app_checkpoints.glob(f"{NAME}.*"):
        shutil.copy(f, folder / f.name)
    path = damage(folder, request.param)
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(folder))
    resources.clear_caches()
    yield path, state(folder)
    resources.clear_caches()


@pytest.mark.parametrize("broken", list(CASES), indirect=True, ids=list(CASES))
def test_only_what_needs_a_broken_file_fails_in_one_line_that_names_it_and_its_fix(broken):
    path, before = broken
    fix, needs = CASES[path.name.removeprefix(NAME)]
    for loader in LOADERS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if loader not in needs:
                getattr(resources, loader)(NAME)  # the rest of the page works
                said = " ".join(str(w.message) for w in caught)
                if path.name.endswith(".second-stage.safetensors") and loader == "load_checkpoint":
                    # the model loads without its second stage, and says why
                    assert path.name in said and fix in said and "\n" not in said, said
                continue
            with pytest.raises(MissingResourceError) as err:
                getattr(resources, loader)(NAME)
        message = str(err.value)
        assert "\n" not in message and "Traceback" not in message, message
        assert path.name in message and fix in message, message
    assert state(path.parent) == before  # nothing was rewritten


@pytest.mark.parametrize(
    "broken", [".safetensors", ".json", ".scores.safetensors"], indirect=True, ids=str
)
def test_the_command_line_says_the_same(broken):
    path, before = broken
    fix, _ = CASES[path.name.removeprefix(NAME)]
    rc, _, err = run_cli("evaluate", "--tables", "--checkpoint", NAME, "--out", path.parent / "e")
    assert rc == 2 and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("hvaelab evaluate: error: ")
    assert path.name in line and fix in line, line
    assert state(path.parent) == before


@pytest.mark.parametrize("broken", [".second-stage.safetensors"], indirect=True, ids=str)
def test_a_broken_second_stage_is_left_out_and_the_command_line_says_so_in_one_line(broken):
    path, before = broken
    rc, out, err = run_cli("info", "--checkpoint", NAME)
    assert rc == 0 and NAME in out  # the checkpoint works without it
    [line] = err.strip().splitlines()
    assert line.startswith("hvaelab info: warning: ignoring the second stage: "), line
    assert path.name in line and "hvaelab second-stage --checkpoint" in line, line
    assert state(path.parent) == before


@pytest.mark.parametrize("broken", [".second-stage.safetensors"], indirect=True, ids=str)
def test_the_pages_say_when_a_broken_second_stage_leaves_the_verdict_to_the_paper(broken):
    """The upload page and the draw page's inspector name the file and its fix; the verdict
    falls back to the paper's likelihood ratios (the reference table still has the second
    stage's column)."""

    from hvaelab.app.draw_view import DrawView
    from hvaelab.app.upload_view import UploadScorer

    path, before = broken
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = resources.second_stage_problem(NAME)
        up = UploadScorer(NAME)
        draw = DrawView(NAME)
    assert problem and path.name in problem and "hvaelab second-stage --checkpoint" in problem
    assert "\n" not in problem
    assert path.name in up.notice.value and path.name in draw.inspector.notice.value
    up.score_files([("white.png", _white_png())])
    assert up.result.scores.rule == "llr" and up.result.scores.is_ood[0]
    assert draw.selection.report.scores.rule == "llr"
    assert state(path.parent) == before


def _white_png() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
