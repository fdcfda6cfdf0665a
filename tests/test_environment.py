"""environment.yml (conda) stays in step with pyproject.toml (pip) and the Makefile's torch pin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# PyPI name -> conda-forge name where they differ.
CONDA_NAMES = {"torch": "pytorch"}
_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_spec(spec: str) -> tuple[str, str]:
    """'voila==0.5.13' -> ('voila', '==0.5.13'); names normalised as PyPI does."""
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(f"cannot parse requirement {spec!r}")
    return _norm(match.group(1)), match.group(2).replace(" ", "")


def parse_environment(text: str) -> dict:
    """Tiny parser for the subset of YAML environment.yml uses (no pyyaml needed).

    Returns {"name": str, "channels": [...], "dependencies": [...], "pip": [...]}.
    """
    out: dict = {"name": None, "channels": [], "dependencies": [], "pip": []}
    section = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if indent == 0:
            key, _, value = item.partition(":")
            section = key
            if key == "name":
                out["name"] = value.strip()
            continue
        if not item.startswith("- "):
            raise ValueError(f"unexpected line in environment.yml: {raw!r}")
        value = item[2:].strip()
        if section == "dependencies" and value == "pip:":
            section = "pip"
        elif section == "pip" and indent <= 2:
            section = "dependencies"
            out[section].append(value)
        elif section in out:
            out[section].append(value)
        else:
            raise ValueError(f"list item outside a known section: {raw!r}")
    return out


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def missing_from_env(pyproject: dict, env: dict) -> list[str]:
    """Runtime and app requirements of pyproject that environment.yml lacks or pins differently."""
    conda = dict(split_spec(d) for d in env["dependencies"])
    wanted = (
        pyproject["project"]["dependencies"] + pyproject["project"]["optional-dependencies"]["app"]
    )
    problems = []
    for requirement in wanted:
        name, constraint = split_spec(requirement)
        conda_name = CONDA_NAMES.get(name, name)
        if conda_name not in conda:
            problems.append(f"{requirement}: no '{conda_name}' in environment.yml")
        elif constraint.startswith("==") and conda[conda_name] != constraint:
            problems.append(f"{requirement}: environment.yml has {conda_name}{conda[conda_name]}")
        elif constraint.startswith(">=") and _version_tuple(
            conda[conda_name] or "0"
        ) < _version_tuple(constraint):
            problems.append(
                f"{requirement}: environment.yml allows {conda_name}{conda[conda_name]}"
            )
    return problems


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env() -> dict:
    return parse_environment((ROOT / "environment.yml").read_text(encoding="utf-8"))


def test_environment_has_every_runtime_and_app_dependency(pyproject, env):
    assert missing_from_env(pyproject, env) == []


def test_check_reports_a_missing_or_differently_pinned_package(pyproject, env):
    doctored = dict(env)
    doctored["dependencies"] = [
        "voila==0.5.12" if d.startswith("voila") else d
        for d in env["dependencies"]
        if not d.startswith(("pytorch", "scikit-learn"))
    ]
    problems = missing_from_env(pyproject, doctored)
    assert any(p.startswith("torch") and "'pytorch'" in p for p in problems), problems
    assert any(p.startswith("scikit-learn") for p in problems), problems
    assert any(p.startswith("voila==0.5.13") for p in problems), problems


def test_environment_is_cpu_only_conda_forge_python_311_with_editable_project(pyproject, env):
    assert env["name"] == "hvaelab"
    assert env["channels"] == ["conda-forge"]
    conda = dict(split_spec(d) for d in env["dependencies"])
    assert "pytorch-cpu" in conda and "pip" in conda
    python = _version_tuple(conda["python"])
    assert python == (3, 11)
    assert python >= _version_tuple(pyproject["project"]["requires-python"])
    assert env["pip"] == ["-e ."]


def test_makefile_torch_pin_satisfies_pyproject(pyproject):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pin = re.search(r"^TORCH_VERSION \?= (\S+)$", makefile, re.MULTILINE)
    assert pin, "Makefile must set TORCH_VERSION ?= X.Y.Z"
    torch_req = next(d for d in pyproject["project"]["dependencies"] if split_spec(d)[0] == "torch")
    assert _version_tuple(pin.group(1)) >= _version_tuple(split_spec(torch_req)[1])


def test_parser_reads_nested_pip_list_and_comments():
    text = "name: x  # comment\nchannels:\n  - conda-forge\ndependencies:\n  - a>=1\n"
    text += "  - pip:\n      - -e .\n      - b\n  - c  # trailing\n"
    assert parse_environment(text) == {
        "name": "x",
        "channels": ["conda-forge"],
        "dependencies": ["a>=1", "c"],
        "pip": ["-e .", "b"],
    }


def test_readme_images_are_in_the_repository_and_small():
    """Every image the README and the dashboards' tour (docs/dashboards.md) show is a PNG in the
    repository, small enough to clone; the tour shows a screenshot of each of the seven pages."""
    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    tour = (root / "docs" / "dashboards.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", tour)
    assert len(set(shown)) >= 7, "the tour shows a screenshot of each dashboard page"
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme) + [f"docs/{rel}" for rel in shown]
    assert len(images) >= 8, "the README shows one picture"
    for rel in images:
        path = root / rel
        assert path.is_file(), f"{rel} is shown but not in the repository"
        assert path.suffix == ".png" and path.stat().st_size < 200_000, rel
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width <= 800, (rel, im.size)
