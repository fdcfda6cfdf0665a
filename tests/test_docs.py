"""The documentation holds to the code and the shipped checkpoints.

- Every measured number on docs/reproducing.md (and in the README's headline table) is
  recomputed from the score tables shipped in checkpoints/ and must agree to the digits shown;
  the paper's numbers beside them must be the paper's (tables 1 and 2). A decimal number in the
  page's prose must be one of the checked numbers.
- The API reference documents every public name (each module's ``__all__``) of every module.
- The site builds offline with warnings as errors (a broken reference fails), and the built
  HTML requests nothing from another host (scripts, styles, images, fonts: all local; MathJax
  from the local copy).
- The README stays a front door (at most 200 lines) and the architecture page names every
  module.
"""

from __future__ import annotations

import functools
import html.parser
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHECKPOINTS = ROOT / "checkpoints"

# The paper's numbers, FashionMNIST in and MNIST out (Havtorn et al., 2021): table 2 (AUROC,
# AUPRC, FPR80) and table 1 (bits/dim: log p(x), L>1, L>2), and three quoted in the prose:
# likelihood regret's AUROC (table 2), the input-complexity and LLR>2 AUROCs on CIFAR10/SVHN.
PAPER_TABLE2 = {
    "-ELBO": (0.268, 0.363, 0.882),
    "-L>1": (0.593, 0.591, 0.658),
    "-L>2": (0.712, 0.750, 0.548),
    "LLR>1": (0.964, 0.961, 0.036),
    "LLR_250>1": (0.984, 0.984, 0.013),
}
PAPER_TABLE1 = {"fashionmnist": (0.420, 0.476, 0.579), "mnist": (0.317, 0.601, 0.881)}
PAPER_PROSE = {"0.988", "0.833", "0.811"}

NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")


# ------------------------------------------------------------------ the shipped tables
@functools.cache
def _tables(checkpoint: str):
    from hvaelab.scores import load_tables

    return load_tables(CHECKPOINTS / f"{checkpoint}.scores.safetensors")


@functools.cache
def _evaluated(checkpoint: str, samples: int, ood: str) -> dict:
    from hvaelab.evaluate import evaluate_tables

    tables = _tables(checkpoint)
    keys = (f"fashionmnist@S{samples}", f"{ood}@S{samples}")
    res = evaluate_tables({k: tables[k] for k in keys}, "fashionmnist")
    return {
        "table2": {r["score"]: r for r in res["table2"] if r["ood"] == ood},
        "table1": {r["dataset"]: r for r in res["table1"]},
    }


def table2(checkpoint: str, samples: int, score: str, ood: str = "mnist") -> tuple:
    row = _evaluated(checkpoint, samples, ood)["table2"][score]
    return row["auroc"], row["auprc"], row["fpr80"]


def bits_per_dim(checkpoint: str, samples: int, dataset: str, bound: str) -> float:
    return _evaluated(checkpoint, samples, "mnist")["table1"][dataset][bound]


def agrees(shown: str, value: float) -> bool:
    """``value`` rounds to ``shown`` (at the digits shown; a tie may go either way)."""
    decimals = len(shown.partition(".")[2])
    return abs(float(shown) - value) <= 0.5 * 10.0**-decimals + 1e-9


# ------------------------------------------------------------------ reading the page
def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _plain(cell: str) -> str:
    """A label or header as text: HTML tags and emphasis gone, ``&gt;`` as >."""
    cell = re.sub(r"<sup>(.*?)</sup>", r"\1", cell)
    cell = re.sub(r"<sub>(.*?)</sub>", r"_\1", cell)
    cell = re.sub(r"<[^>]+>", "", cell).replace("&gt;", ">").replace("&lt;", "<")
    return cell.replace("**", "").replace("`", "").strip()


def checked_tables(text: str) -> dict[str, tuple[list[str], list[list[str]]]]:
    """{id: (header, rows)} of every table after a ``<!-- checked: id -->`` marker."""
    out = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"<!-- checked: ([\w-]+) -->", line)
        if not m:
            continue
        header = _cells(lines[i + 1])
        rows = []
        for row in lines[i + 3 :]:
            if not row.startswith("|"):
                break
            rows.append(_cells(row))
        out[m.group(1)] = (header, rows)
    return out


def numbers(cell: str) -> list[str]:
    return NUMBER.findall(cell.replace("**", ""))


class Checker:
    """Collects every number it checks, and what disagreed."""

    def __init__(self) -> None:
        self.checked: set[str] = set()
        self.wrong: list[str] = []
        self.count = 0

    def __call__(self, where: str, shown: str, value: float) -> None:
        self.count += 1
        self.checked.add(shown)
        if not agrees(shown, value):
            self.wrong.append(f"{where}: page shows {shown}, the tables give {value:.6f}")


TABLE2_ROWS = {  # row label -> (samples, score name, paper row or None)
    "−ELBO = −L>0, S = 1": (1, "-ELBO", "-ELBO"),
    "−L>1, S = 1": (1, "-L>1", "-L>1"),
    "−L>2, S = 1": (1, "-L>2", "-L>2"),
    "LLR>1, S = 1": (1, "LLR>1", "LLR>1"),
    "LLR>2, S = 1": (1, "LLR>2", None),
    "per-example selection of k, S = 1": (1, "LLR select-k", None),
    "LLR_S>1 (eq. 10), S = 64; paper: S = 250": (64, "LLR_S>1 iw-elbo", "LLR_250>1"),
    "LLR_S>2 (eq. 10), S = 64": (64, "LLR_S>2 iw-elbo", None),
    "LLR>2_<1 (eq. 21), S = 16, first 1,000 + 1,000 images": (16, "LLR>2<1", None),
}
TABLE1_ROWS = {  # row label -> (samples, dataset) or ("paper", dataset)
    "HVAE, FashionMNIST, S = 1 (ELBO)": (1, "fashionmnist"),
    "HVAE, MNIST, S = 1 (ELBO)": (1, "mnist"),
    "HVAE, FashionMNIST, S = 64 (importance-weighted)": (64, "fashionmnist"),
    "HVAE, MNIST, S = 64 (importance-weighted)": (64, "mnist"),
    "paper: HVAE, FashionMNIST (S = 250)": ("paper", "fashionmnist"),
    "paper: HVAE, MNIST (S = 250)": ("paper", "mnist"),
}
BIVA_ROWS = {
    "−ELBO": ["-ELBO"],
    "LLR>1": ["LLR>1"],
    "LLR>2": ["LLR>2"],
    "LLR>3": ["LLR>3"],
    "LLR>4": ["LLR>4"],
    "LLR>5": ["LLR>5"],
    "LLR>6": ["LLR>6"],
    "LLR>7": ["LLR>7"],
    "LLR>8": ["LLR>8"],
    "LLR>9": ["LLR>9"],
    "LLR>10": ["LLR>10"],
    "per-example selection of k": ["LLR select-k"],
    "IC (input complexity)": ["IC"],
    "second stage": ["second-stage"],
}
SIX_SETS = {
    "MNIST": "mnist",
    "FashionMNIST inverted": "fashionmnist-inverted",
    "MNIST inverted": "mnist-inverted",
    "uniform noise": "noise-uniform",
    "Bernoulli noise": "noise-bernoulli",
    "constant": "constant",
}
SIX_ROWS = {
    "−ELBO": "-ELBO",
    "LLR>1": "LLR>1",
    "LLR>2": "LLR>2",
    "LLR>3": "LLR>3",
    "per-example selection of k": "LLR select-k",
    "IC (input complexity)": "IC",
    "second stage": "second-stage",
}


def _bound(header: str) -> list[str]:
    h = _plain(header).replace(" (ELBO)", "")
    if h == "log p(x)":
        return ["log p(x)"]
    if h == "L>5 … L>10":
        return [f"L>{k}" for k in range(5, 11)]
    assert re.fullmatch(r"L>\d+", h), header
    return [h]


def check_reproducing_page(check: Checker) -> set[str]:
    text = (DOCS / "reproducing.md").read_text()
    tables = checked_tables(text)
    assert set(tables) == {"table2", "table1", "biva", "biva-bpd", "biva-kl", "six-sets"}

    header, rows = tables["table2"]
    assert [_plain(h) for h in header[1:4]] == ["AUROC", "AUPRC", "FPR80"]
    assert all(_plain(h).startswith("paper") for h in header[4:7])
    assert {_plain(r[0]) for r in rows} == set(TABLE2_ROWS)
    for r in rows:
        samples, score, paper = TABLE2_ROWS[_plain(r[0])]
        for shown, value in zip(r[1:4], table2("fashionmnist", samples, score), strict=True):
            check(f"table 2, {score}, S = {samples}", shown, value)
        if paper is None:
            assert not any(r[4:7]), r
        else:
            for shown, value in zip(r[4:7], PAPER_TABLE2[paper], strict=True):
                check(f"table 2, paper, {paper}", shown, value)

    header, rows = tables["table1"]
    bounds = [_bound(h)[0] for h in header[1:]]
    assert {_plain(r[0]) for r in rows} == set(TABLE1_ROWS)
    for r in rows:
        samples, dataset = TABLE1_ROWS[_plain(r[0])]
        for cell, bound in zip(r[1:], bounds, strict=True):
            if samples == "paper":
                i = bounds.index(bound)
                if i < 3:
                    check(f"table 1, paper, {dataset}", cell, PAPER_TABLE1[dataset][i])
                else:
                    assert not cell, r
            else:
                value = bits_per_dim("fashionmnist", samples, dataset, bound)
                check(f"table 1, {dataset}, S = {samples}, {bound}", cell, value)

    header, rows = tables["biva"]
    columns = [re.search(r"`([\w-]+)`", h).group(1) for h in header[1:]]
    assert columns == ["fashionmnist", "fashionmnist-biva"]
    assert {_plain(r[0]) for r in rows} == set(BIVA_ROWS)
    for r in rows:
        for cell, checkpoint in zip(r[1:], columns, strict=True):
            shown = numbers(cell)
            if not shown:
                continue
            assert len(shown) == 3, cell
            for score in BIVA_ROWS[_plain(r[0])]:
                for s, value in zip(shown, table2(checkpoint, 1, score), strict=True):
                    check(f"BIVA table, {checkpoint}, {score}", s, value)

    header, rows = tables["biva-bpd"]
    for r in rows:
        dataset = {"BIVA, FashionMNIST": "fashionmnist", "BIVA, MNIST": "mnist"}[_plain(r[0])]
        for cell, h in zip(r[1:], header[1:], strict=True):
            for bound in _bound(h):
                value = bits_per_dim("fashionmnist-biva", 1, dataset, bound)
                check(f"BIVA bits/dim, {dataset}, {bound}", cell, value)

    header, rows = tables["biva-kl"]
    (row,) = rows
    kl_table = _tables("fashionmnist-biva")["fashionmnist@S1"]
    for cell, h in zip(row[1:], header[1:], strict=True):
        layer = int(re.search(r"\d+", _plain(h)).group())
        check(f"BIVA KL z{layer}", cell, float(np.mean(kl_table.columns[f"kl{layer}"])))

    header, rows = tables["six-sets"]
    sets = [SIX_SETS[_plain(h)] for h in header[1:]]
    assert {_plain(r[0]) for r in rows} == set(SIX_ROWS)
    for r in rows:
        score = SIX_ROWS[_plain(r[0])]
        for cell, ood in zip(r[1:], sets, strict=True):
            check(
                f"six sets, {score}, {ood}", _plain(cell), table2("fashionmnist", 1, score, ood)[0]
            )

    # prose: outside the tables, comments and code, every decimal number is a checked one
    prose = "\n".join(line for line in text.splitlines() if not line.startswith(("|", "<!--")))
    prose = re.sub(r"`[^`]*`", "", prose)
    return set(NUMBER.findall(prose))


def test_every_number_on_the_reproducing_page_is_the_shipped_tables():
    check = Checker()
    prose = check_reproducing_page(check)
    assert not check.wrong, "\n".join(check.wrong)
    assert check.count >= 150, check.count
    unchecked = prose - check.checked - PAPER_PROSE
    assert not unchecked, f"numbers in the prose that no table on the page checks: {unchecked}"


def test_the_readme_headline_numbers_are_the_shipped_tables():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Against the paper") :]
    section = section[: section.index("\n## ", 3)]
    rows = {_plain(r[0]): r for r in map(_cells, section.splitlines()) if r and r[0]}
    expect = {
        "−ELBO (the likelihood)": (table2("fashionmnist", 1, "-ELBO")[0], 0.268),
        "LLR>1, S = 1": (table2("fashionmnist", 1, "LLR>1")[0], 0.964),
        "LLR_S>1, importance-weighted": (table2("fashionmnist", 64, "LLR_S>1 iw-elbo")[0], 0.984),
        "bits/dim of the FashionMNIST test set": (
            bits_per_dim("fashionmnist", 64, "fashionmnist", "log p(x)"),
            0.420,
        ),
    }
    assert set(expect) <= set(rows), rows.keys()
    check = Checker()
    for label, (ours, paper) in expect.items():
        check(f"README, {label}", numbers(rows[label][1])[0], ours)
        check(f"README, {label}, paper", numbers(rows[label][2])[0], paper)
    assert not check.wrong, "\n".join(check.wrong)


def test_the_number_checker_rounds_to_the_digits_shown():
    assert agrees("0.958", 0.95761) and agrees("0.0015", 0.00149) and agrees("1.03", 1.0264)
    assert not agrees("0.958", 0.9586) and not agrees("0.99", 0.9849)


# ------------------------------------------------------------------ the API reference
def _modules() -> list[str]:
    out = []
    for path in sorted((ROOT / "hvaelab").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue  # running it is the command line; cli is documented
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def test_every_module_is_in_the_api_reference():
    """The API pages list their modules by package (``.. api-modules::``, expanded by
    docs/conf.py): together they cover every module of hvaelab."""
    sys.path.insert(0, str(DOCS))
    try:
        conf = importlib.import_module("conf")
    finally:
        sys.path.remove(str(DOCS))
    pages = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.rst"))
    packages = re.findall(r"^\.\. api-modules:: (\S+)$", pages, re.M)
    documented = [m for p in packages for m in conf.api_modules(p)]
    assert len(documented) == len(set(documented))
    assert set(documented) == set(_modules()), set(_modules()) ^ set(documented)


def test_the_architecture_page_names_every_module():
    page = (DOCS / "developer" / "architecture.md").read_text()
    missing = []
    for path in sorted((ROOT / "hvaelab").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        if f"`{path.name}`" not in page and f"`{path.stem}`" not in page:
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"the architecture page does not say what these modules hold: {missing}"


def test_the_readme_is_a_front_door():
    """At most 200 lines. (The distributions keep docs/package-description.md as their long
    description: the README's relative links and picture cannot resolve on a package index;
    tests/test_distribution.py runs ``twine check`` on it.)"""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, len(lines)


# ------------------------------------------------------------------ the built site
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(DOCS), str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-6000:]
    return out


class _Requests(html.parser.HTMLParser):
    """Every URL a page makes the browser fetch: scripts, styles, icons, images, frames."""

    FETCHED = {"script": "src", "img": "src", "iframe": "src", "source": "src", "embed": "src",
               "audio": "src", "video": "src", "object": "data", "link": "href"}  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in self.FETCHED and a.get(self.FETCHED[tag]):
            if tag == "link" and a.get("rel") in ("next", "prev", "index", "search", "top"):
                return  # navigation, not fetched
            self.urls.append(a[self.FETCHED[tag]])
        if a.get("srcset"):
            self.urls.extend(u.split()[0] for u in a["srcset"].split(","))
        if a.get("style"):
            self.urls.extend(re.findall(r"url\(['\"]?([^'\")]+)", a["style"]))


def _remote(url: str) -> bool:
    return bool(re.match(r"(?i)([a-z][a-z0-9+.-]*:)?//", url)) and not url.startswith("data:")


@pytest.mark.docs
def test_the_site_builds_and_requests_nothing_from_another_host(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 15
    remote = []
    for page in pages:
        parser = _Requests()
        text = page.read_text()
        parser.feed(text)
        remote += [f"{page.relative_to(site)}: {u}" for u in parser.urls if _remote(u)]
        imports = re.findall(r"@import\s+url\(([^)]+)", text)
        remote += [f"{page.relative_to(site)}: {u}" for u in imports if _remote(u)]
    for css in site.rglob("*.css"):
        for u in re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"])([^'\")]+)", css.read_text()):
            if _remote(u):
                remote.append(f"{css.relative_to(site)}: {u}")
    assert not remote, "the site requests from another host:\n" + "\n".join(remote)
    # math is rendered by the local MathJax
    math = (site / "math.html").read_text()
    assert 'src="_static/mathjax/tex-chtml.js' in math, "math.html does not load the local MathJax"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    # the roles of the docstrings were rendered, none is left raw
    raw = [p.name for p in pages if re.search(r":(func|class|meth|mod|attr|data):`", p.read_text())]
    assert not raw, f"raw Sphinx roles in {raw}"


@pytest.mark.docs
def test_the_api_reference_documents_every_public_name(site):
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    objects = {name for items in inventory.values() for name in items}
    missing = []
    for module_name in _modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            home = getattr(obj, "__module__", None) if callable(obj) else None
            qual = getattr(obj, "__qualname__", name) if home else name
            where = f"{home}.{qual}" if home and home.startswith("hvaelab") else None
            if f"{module_name}.{name}" not in objects and where not in objects:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"public names missing from the API reference: {missing}"
