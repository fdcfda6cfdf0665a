"""The partial plotly.js bundle of the Voila pages (scripts/build-plotly-bundle): present, of the
plotly.js version the installed plotly ships, built from hvaelab/app/js/plotly_bundle.js, and
holding every trace type that hvaelab's figures use (a missing type would draw nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import plotly.graph_objects as go
import plotly.offline
from plotly.basedatatypes import BaseTraceType

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "share" / "jupyter" / "voila" / "templates" / "hvaelab" / "static"
BUNDLE = STATIC / "plotly-hvaelab.min.js"
ENTRY = REPO / "hvaelab" / "app" / "js" / "plotly_bundle.js"
TEMPLATE = REPO / "share" / "jupyter" / "voila" / "templates" / "hvaelab" / "index.html.j2"
TRACE_CLASSES = {name: getattr(go, name) for name in go.__all__}  # lazily imported by plotly
TRACE_TYPES = {
    cls().type: name
    for name, cls in TRACE_CLASSES.items()
    if isinstance(cls, type) and issubclass(cls, BaseTraceType) and cls is not BaseTraceType
}


def header() -> dict[str, object]:
    head = BUNDLE.read_text(encoding="utf-8")[:600]
    version = re.search(r"plotly\.js (\S+) \(MIT", head)
    traces = re.search(r"\* traces: ([a-z0-9 ]+)", head)
    assert version and traces, f"{BUNDLE} has no build header:\n{head}"
    return {"version": version.group(1), "traces": set(traces.group(1).split())}


def used_trace_types(root: Path = REPO / "hvaelab") -> set[str]:
    """Trace types in the source under ``root``: ``go.<Trace>(`` calls and ``"type": "<trace>"``
    dicts."""
    found: set[str] = set()
    by_class = {name: t for t, name in TRACE_TYPES.items()}
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= {by_class[c] for c in re.findall(r"\bgo\.([A-Z]\w*)\(", text) if c in by_class}
        found |= {
            t for t in re.findall(r"""["']type["']\s*:\s*["'](\w+)["']""", text) if t in TRACE_TYPES
        }
    return found


def test_bundle_and_licence_are_shipped():
    assert BUNDLE.stat().st_size > 100_000
    assert "MIT" in (STATIC / "plotly-LICENSE.txt").read_text(encoding="utf-8")
    assert "static/plotly-hvaelab.min.js" in TEMPLATE.read_text(encoding="utf-8")


def test_bundle_is_the_plotly_js_version_of_the_installed_plotly():
    assert header()["version"] == plotly.offline.get_plotlyjs_version()


def test_bundle_was_built_from_the_entry():
    registered = set(re.findall(r"plotly\.js/lib/([a-z0-9]+)", ENTRY.read_text(encoding="utf-8")))
    assert header()["traces"] == (registered - {"core"}) | {"scatter"}


def test_every_trace_type_hvaelab_draws_is_in_the_bundle():
    used = used_trace_types()
    assert {"scatter", "bar", "image"} <= used  # the scan finds what the pages are known to use
    missing = used - header()["traces"]
    assert not missing, (
        f"trace types {sorted(missing)} are drawn but not in {BUNDLE.name}: register them in "
        f"{ENTRY.relative_to(REPO)} and run scripts/build-plotly-bundle"
    )


def test_the_scan_sees_a_trace_type_outside_the_bundle(tmp_path):
    """The scan is what guards the bundle: a figure with a WebGL scatter would be caught."""
    assert "scattergl" in TRACE_TYPES and "scattergl" not in header()["traces"]
    fake = tmp_path / "hvaelab"
    fake.mkdir()
    (fake / "fig.py").write_text("fig.add_trace(go.Scattergl(x=[1]))\nt = {'type': 'violin'}\n")
    assert used_trace_types(fake) == {"scattergl", "violin"}
