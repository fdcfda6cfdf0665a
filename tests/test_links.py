"""Every link of README.md and CONTRIBUTING.md resolves: a relative link names a file or folder
of the repository, and an ``#anchor`` is a heading of the target file, slugged as GitHub slugs
headings (or a MyST ``(label)=`` target). Links to other hosts are not fetched (no network)."""

from __future__ import annotations

import html
import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "CONTRIBUTING.md"]

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _without_code(text: str) -> str:
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def links(text: str) -> list[str]:
    return LINK.findall(_without_code(text))


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed (not
    hyphens or underscores), spaces to hyphens."""
    text = html.unescape(re.sub(r"<[^>]+>", "", heading))
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text
    text = text.replace("`", "").strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_ " or cat[0] in "LN" or cat in ("Mn", "Mc"):
            kept.append("-" if ch == " " else ch)
    return "".join(kept)


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^(```|~~~).*?^\1", "", path.read_text(), flags=re.M | re.S)
    out: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M):
        slug = github_slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    out.update(re.findall(r"^\(([\w-]+)\)=\s*$", text, re.M))  # MyST targets
    return out


def check(document: str) -> list[str]:
    source = ROOT / document
    broken = []
    for target in links(source.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # https:, mailto: ...: another host
        path, _, anchor = target.partition("#")
        dest = (source.parent / unquote(path)).resolve() if path else source
        if not dest.exists() or ROOT not in (dest, *dest.parents):
            broken.append(f"{document}: {target} (no such file in the repository)")
            continue
        if anchor and (dest.is_dir() or unquote(anchor) not in anchors(dest)):
            broken.append(f"{document}: {target} (no heading #{anchor} in {path or document})")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_link_resolves(document):
    found = links((ROOT / document).read_text())
    assert len(found) >= 5, f"{document} links to hardly anything: {found}"
    broken = check(document)
    assert not broken, "\n".join(broken)


def test_slugs_are_githubs():
    assert github_slug("Reproducing the paper") == "reproducing-the-paper"
    assert github_slug("The BIVA: `fashionmnist-biva`") == "the-biva-fashionmnist-biva"
    assert github_slug("Training: CPU, GPU, torchrun") == "training-cpu-gpu-torchrun"
    assert github_slug("LLR<sup>&gt;k</sup> and S = 1") == "llrk-and-s--1"


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    (tmp_path / "a.md").write_text("# Top\n\n## Two words\n")
    (tmp_path / "DOC.md").write_text(
        "[ok](a.md#two-words) [bad](a.md#nope) [gone](b.md) [self](#here)\n\n# Here\n"
        "```\n[in code](nowhere.md)\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert check("DOC.md") == [
        "DOC.md: a.md#nope (no heading #nope in a.md)",
        "DOC.md: b.md (no such file in the repository)",
    ]
