"""``hvaelab export-site DIR``: a lesson site that runs in the visitor's browser, no server.

The site is static files, served by any static file server (``python -m http.server``), offline:
nothing is requested from another host. It holds, so far (issue 41, in progress):

* ``explore.html``: the likelihood-ratio explorer's densities, ROC curves and Table 2 for every
  score family, k and OOD set of the checkpoint's score tables, switched in the browser by the
  score menu, the k slider and the OOD menu. Every view is the one the Voilà explorer
  (:class:`hvaelab.app.explorer.LikelihoodRatioExplorer`) shows for the same controls: the
  export drives a headless explorer through them and stores what it would send
  (``explore.json``: plotly JSON and Table 2's HTML);
* ``learn.html``: the teaching page's questions, answers revealed on click, the 2-D toy and the
  divergences of eqs. 7-8 (:mod:`hvaelab.app.static_learn`, ``learn.json``);
* ``index.html``, ``favicon.svg``, plotly.js (the Voilà template's partial bundle, with its
  licence) and the browser's preprocessing (``js/preprocess.js``, for the drawing page to come).

The numbers are those of the score tables (sampled bounds, S importance samples), as on the
Voilà pages.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from ..artifacts import atomic_write
from ..package_files import site_dir, template_dir
from .explorer import FAMILIES_WITHOUT_K, LikelihoodRatioExplorer
from .resources import dataset_label

PLOTLY = "plotly-hvaelab.min.js"
PLOTLY_LICENSE = "plotly-LICENSE.txt"
EXPLORE_DATA = "explore.json"

FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#1f77b4"/>'
    '<path d="M3 12 L6 5 L9 10 L13 3" stroke="#fff" stroke-width="1.6" fill="none"/></svg>'
)


def explore_views(checkpoint: str, progress: Callable[[str], None] | None = None) -> dict:
    """Every view of the explorer for ``checkpoint``'s tables, S = 1: ``{"families": [{value,
    label, k}], "k_max", "ood": [{value, label}], "in": {value, label}, "views": {"OOD|FAMILY|K":
    {"density", "roc", "table", "info"}}, "start": {ood, family, k}}`` (K is 1 for a family
    without k; ``start``: the controls the Voilà explorer opens with)."""
    base = LikelihoodRatioExplorer(checkpoint)
    in_name = base.in_select.value
    oods = [v for _, v in base.ood_select.options]
    out: dict = {
        "checkpoint": checkpoint,
        "in": {"value": in_name, "label": dataset_label(in_name)},
        "ood": [{"value": o, "label": dataset_label(o)} for o in oods],
        "k_max": base.n_layers,
        # the controls the page opens with: the Voilà explorer's
        "start": {"ood": base.ood_select.value, "family": base.score_select.value, "k": 1},
        "families": [],
        "views": {},
    }
    families = [(label, value) for label, value in base.score_select.options]
    for label, value in families:
        has_k = value not in FAMILIES_WITHOUT_K
        out["families"].append({"value": value, "label": label, "k": has_k})
    for ood in oods:
        ex = (
            base
            if ood == base.ood_select.value
            else LikelihoodRatioExplorer(checkpoint, in_name=in_name, ood_name=ood)
        )
        for _label, family in families:
            ex.score_select.value = family  # each control redraws the explorer (refresh)
            for k in range(1, base.n_layers + 1) if family not in FAMILIES_WITHOUT_K else (1,):
                ex.k_slider.value = k
                out["views"][f"{ood}|{family}|{k}"] = {
                    "density": ex.density.spec,
                    "roc": ex.roc.spec,
                    "table": ex.table.value,
                    "info": ex.info.value,
                }
        if progress:
            progress(f"explore: {dataset_label(ood)} done")
    return out


def _page(title: str, body: str, script: str = "") -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · hvaelab</title>
<link rel="icon" href="favicon.svg" type="image/svg+xml">
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 12px; }}
.controls {{ display: flex; flex-wrap: wrap; gap: 18px; align-items: center; margin: 8px 0; }}
.figures {{ display: flex; flex-wrap: wrap; }}
.figures > div {{ flex: 1 1 480px; min-width: 0; }}
.figures > div {{ position: relative; }}
.explore-view {{ position: absolute; top: 0; left: 0; right: 0; visibility: hidden; }}
.explore-view.shown {{ position: relative; visibility: visible; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
</style>
</head>
<body>
{body}
{script}
</body>
</html>
"""


EXPLORE_BODY = """<h1>The likelihood-ratio explorer</h1>
<p>Densities of a score on the in-distribution test set and an OOD set, and their ROC curves,
from the checkpoint's score tables (sampled bounds, S = 1), as the Voilà explorer shows them.
This page runs in your browser: it needs no server once loaded.</p>
<div class="controls">
  <label>score <select id="family"></select></label>
  <label>k <input id="k" type="range" min="1" step="1"> <output id="k-value"></output></label>
  <label>OOD data <select id="ood"></select></label>
</div>
<div id="info"></div>
<div class="figures"><div id="density"></div><div id="roc"></div></div>
<div id="table"></div>
<p><a href="index.html">back</a></p>"""

EXPLORE_SCRIPT = f"""<script src="{PLOTLY}"></script>
<script type="module">
// Each view (OOD set, score, k) is drawn once into figures of its own, kept (at most KEEP views)
// and shown by making them visible: a move back to a view seen before costs no redraw. The
// neighbours of the shown view along k are drawn ahead while the browser is idle, so that a k
// move finds its view drawn.
const data = await (await fetch("{EXPLORE_DATA}")).json();
const Plotly = window.hvaelabPlotly;
const family = document.getElementById("family"), k = document.getElementById("k");
const ood = document.getElementById("ood"), kValue = document.getElementById("k-value");
for (const f of data.families) family.add(new Option(f.label, f.value));
for (const o of data.ood) ood.add(new Option(o.label, o.value));
k.max = data.k_max;
family.value = data.start.family;
ood.value = data.start.ood;
k.value = data.start.k;
const config = {{ displaylogo: false, responsive: true }};
const FIGURES = ["density", "roc"];
const KEEP = 24;
const drawn = new Map(); // view key -> {{density, roc}}: its figures' divs, in order of use
function keyOf(oodValue, familyValue, kv) {{
  const fam = data.families.find((f) => f.value === familyValue);
  return `${{oodValue}}|${{familyValue}}|${{fam.k ? kv : 1}}`;
}}
function draw(key) {{
  let divs = drawn.get(key);
  if (divs) {{
    drawn.delete(key);  // most recently used last
  }} else {{
    divs = {{}};
    for (const id of FIGURES) {{
      const div = document.createElement("div");
      div.className = "explore-view";
      div.dataset.key = key;
      document.getElementById(id).appendChild(div);
      const fig = data.views[key][id];
      const layout = {{ ...fig.layout, autosize: true }};
      delete layout.width;
      Plotly.newPlot(div, fig.data, layout, config);
      divs[id] = div;
    }}
    for (const [old, its] of drawn) {{  // forget the least recently used, never the shown
      if (drawn.size < KEEP) break;
      if (its.density.classList.contains("shown")) continue;
      for (const div of Object.values(its)) {{ Plotly.purge(div); div.remove(); }}
      drawn.delete(old);
    }}
  }}
  drawn.set(key, divs);
  return divs;
}}
let ahead = [];
function drawAhead() {{
  const key = ahead.shift();
  if (key === undefined) return;
  if (!drawn.has(key)) draw(key);
  requestIdleCallback(drawAhead);
}}
function show() {{
  const fam = data.families.find((f) => f.value === family.value);
  k.disabled = !fam.k;
  kValue.textContent = fam.k ? k.value : "-";
  const key = keyOf(ood.value, family.value, k.value);
  const divs = draw(key);
  for (const id of FIGURES) {{
    const box = document.getElementById(id);
    for (const div of box.querySelectorAll(":scope > .shown")) div.classList.remove("shown");
    divs[id].classList.add("shown");
    box.prepend(divs[id]);
    // a window resized while this view was hidden: fit it now
    const gd = divs[id];
    if (Math.abs(gd.clientWidth - gd._fullLayout.width) > 1) Plotly.Plots.resize(gd);
  }}
  const view = data.views[key];
  document.getElementById("table").innerHTML = view.table;
  document.getElementById("info").innerHTML = view.info;
  document.body.dataset.view = key;
  if (fam.k) {{
    const kv = Number(k.value);
    ahead = [kv + 1, kv - 1, kv + 2, kv - 2].filter((j) => j >= 1 && j <= data.k_max)
      .map((j) => keyOf(ood.value, family.value, j));
    requestIdleCallback(drawAhead);
  }}
}}
for (const el of [family, k, ood]) el.addEventListener("input", show);
show();
document.body.classList.add("site-ready");
</script>"""


def _index(checkpoint: str) -> str:
    body = f"""<h1>Hierarchical VAEs know what they don't know</h1>
<p>A lesson site for the model <b>{html.escape(checkpoint)}</b>, exported by hvaelab. It runs
in your browser: serve this folder with any static file server (for instance
<code>python -m http.server</code>); opened as a file, browsers refuse to load its data.</p>
<ul><li><a href="explore.html">explore</a>: densities and ROC curves of every score and k</li>
<li><a href="learn.html">learn</a>: the lesson's questions, answered on click, and the 2-D toy</li>
</ul>"""
    return _page("hvaelab", body)


def export_site(
    out: str | Path, checkpoint: str, progress: Callable[[str], None] | None = None
) -> list[Path]:
    """Write the site for ``checkpoint`` into the folder ``out`` (created; files there with
    the site's names are replaced, each atomically). Returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    views = explore_views(checkpoint, progress)
    written = []

    def write(name: str, text: str) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        written.append(path)

    write(EXPLORE_DATA, json.dumps(views, separators=(",", ":")))
    write("explore.html", _page("explore", EXPLORE_BODY, EXPLORE_SCRIPT))
    from .static_learn import write_learn  # it builds its page with _page: imported here

    written += write_learn(out, checkpoint, progress)
    write("index.html", _index(checkpoint))
    write("favicon.svg", FAVICON)
    static = template_dir() / "static"
    for name in (PLOTLY, PLOTLY_LICENSE):
        write(name, (static / name).read_text(encoding="utf-8"))
    for src in sorted((site_dir() / "js").glob("*.js")):
        write(f"js/{src.name}", src.read_text(encoding="utf-8"))
    return written


__all__ = ["EXPLORE_DATA", "explore_views", "export_site"]
