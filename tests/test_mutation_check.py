"""The mutation list of scripts/mutation-check stays plantable (issue 37): every snippet occurs
exactly once in the current source, and planting it changes the file. The check itself is a
tool run by hand (it takes half an hour), not part of the suite."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "mutation-check"


def _tool():
    loader = importlib.machinery.SourceFileLoader("mutation_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("mutation_check", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_check"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


TOOL = _tool()
MUTATIONS = TOOL.load_mutations()
AREAS = (
    "scores.py", "bounds.py", "second_stage.py", "complexity.py", "model/biva.py", "pvalues.py",
    "metrics.py", "noise.py", "train.py", "distributed.py", "data/strokes.py",
    "partial_tables.py", "mean_path.py", "model/likelihoods.py",
)  # fmt: skip


def test_the_list_covers_every_area_with_at_least_40_mutations():
    assert len(MUTATIONS) >= 40
    files = {m.file for m in MUTATIONS}
    assert {f"hvaelab/{a}" for a in AREAS} <= files
    for m in MUTATIONS:
        assert m.description and all(t.startswith("tests/") for t in m.tests), m.name


@pytest.mark.parametrize("mut", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_each_snippet_occurs_once_and_planting_it_changes_the_file(mut):
    text = (REPO / mut.file).read_text()
    assert text.count(mut.original) == 1, f"{mut.name}: pattern not found in {mut.file}"
    assert mut.apply(text) != text
    lines = text.splitlines()
    assert mut.original.splitlines()[0] in lines[mut.lines(text)[0] - 1]
    with pytest.raises(ValueError, match="pattern not found"):
        mut.apply(text + mut.original)  # twice: ambiguous
