"""``hvaelab export-site DIR``: a lesson site that runs in the visitor's browser, no server.

The site is static files, served by any static file server (``python -m http.server``), offline:
nothing is requested from another host (issue 41). It holds:

* ``draw.html``: a canvas to draw on; on every stroke end the browser itself rasterizes the
  strokes (``js/preprocess.js``), runs the model (``js/model.js``: ``model.onnx`` and its sidecar
  ``model.onnx.json``, written by :func:`hvaelab.onnx_export.export_checkpoint` with the mean
  path of the checkpoint's in-distribution test split as reference, in ONNX Runtime Web, copied
  into ``vendor/onnxruntime-web/``) and shows what the model sees, the reconstructions for every
  k, every mean-path LLR>k and the second stage's score with their p-values, and the verdict
  (``js/draw.js``); "start from a test image" draws over a few shipped test images
  (``draw.json``). These are the mean-path statistics (deterministic), not the sampled bounds;
* ``explore.html``: the likelihood-ratio explorer's densities, ROC curves and Table 2 for every
  score family, k and OOD set of the checkpoint's score tables, switched in the browser by the
  score menu, the k slider and the OOD menu. Every view is the one the Voilà explorer
  (:class:`hvaelab.app.explorer.LikelihoodRatioExplorer`) shows for the same controls: the
  export drives a headless explorer through them and stores what it would send
  (``explore.json``: plotly JSON and Table 2's HTML);
* ``learn.html``: the teaching page's questions, answers revealed on click, the 2-D toy and the
  divergences of eqs. 7-8 (:mod:`hvaelab.app.static_learn`, ``learn.json``);
* ``index.html``, ``favicon.svg``, plotly.js (the Voilà template's partial bundle, with its
  licence).

The explore page's numbers are those of the score tables (sampled bounds, S importance samples),
as on the Voilà pages; the draw page's are the mean path's (one deterministic pass).

The ONNX export (which reads the in-distribution test split through :mod:`hvaelab.data`) runs
before anything is written: a missing dataset or missing vendored runtime leaves ``DIR`` as it was.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..artifacts import atomic_write
from ..package_files import PackageDataError, site_dir, template_dir
from .explorer import FAMILIES_WITHOUT_K, LikelihoodRatioExplorer
from .resources import dataset_label, is_comparison_set, load_shipped_samples
from .site_page import PLOTLY, PLOTLY_LICENSE, page
from .static_learn import LEARN_DATA, LEARN_PAGE, learn_page, learn_views

EXPLORE_DATA = "explore.json"
DRAW_DATA = "draw.json"
MODEL = "model.onnx"  # and its sidecar MODEL + ".json" (hvaelab.onnx_export.sidecar_path)
VENDOR = "vendor/onnxruntime-web"  # under site_dir() and in the site alike (js/model.js)
# ONNX Runtime Web as js/model.js loads it (scripts/fetch_onnxruntime_web.py fetches the two
# binaries; the licence is committed)
VENDOR_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm", "LICENSE")
N_START_IMAGES = 8  # shipped test images per set for "start from a test image"

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


EXPLORE_BODY = """<style>
.explore-view { position: absolute; top: 0; left: 0; right: 0; visibility: hidden; }
.explore-view.shown { position: relative; visibility: visible; }
</style>
<h1>The likelihood-ratio explorer</h1>
<p>Densities of a score on the in-distribution test set and an OOD set, and their ROC curves,
from the checkpoint's score tables (sampled bounds, S = 1), as the Voilà explorer shows them.
The <a href="draw.html">draw</a> page's numbers are the mean-path statistics instead: their
deterministic counterparts (one pass with every latent at its mean), free of Monte Carlo noise,
so their values differ a little. This page runs in your browser: it needs no server once
loaded.</p>
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


MEAN_PATH_NOTE = """<p class="mean-path-note">These numbers are the <b>mean-path
statistics</b> (appendix D): one deterministic pass through the model with every latent at its
mean (the posterior's above k, the conditional prior's for the k lowest layers), so a drawing
always gets the same numbers. The Voilà pages and the <a href="explore.html">explore</a> page
show the <b>sampled bounds</b> instead: L and L<sup>&gt;k</sup> estimated with S importance
samples of the posterior. Both measure the same quantities, LLR<sup>&gt;k</sup> = L &minus;
L<sup>&gt;k</sup>; the mean path takes no expectation over sampled latents, so its numbers differ
from the sampled ones, and its p-values are against the mean-path scores of the in-distribution
test images (not the score tables). The verdict rule is the same: out-of-distribution when the
smallest p-value of the voted scores is below FPR / K (Bonferroni).</p>"""


def draw_body() -> str:
    """The draw page's HTML (js/draw.js fills in the views)."""
    return f"""<h1>Draw an input and watch every k decide</h1>
<div class="draw">
<div class="draw-left">
  <canvas id="canvas" width="280" height="280"></canvas>
  <div class="controls tools">
    <button id="undo" title="take back the last stroke">undo</button>
    <button id="clear" title="an empty canvas">clear</button>
    <label>size <input id="width" type="range" min="5" max="60" step="1" value="20"
      title="brush size (canvas px; 10 = one model pixel)">
      <output id="width-value"></output></label>
    <label>ink <input id="ink" type="range" min="0" max="1" step="any" value="1"
      title="ink: 1 = white, 0 = eraser"> <output id="ink-value"></output></label>
    <select id="shape" title="brush shape"><option>round</option><option>square</option></select>
  </div>
  <div class="controls"><select id="start-set"></select>
    <button id="start" title="put a shipped test image of the chosen set on the canvas">start
    from test image</button></div>
  <p class="note">What the model sees: the 280×280 canvas (white ink on black, like the
  training images) is averaged over 10×10 blocks to a 28×28 image with grey levels in [0, 1]
  (as on the Voilà draw page, bit for bit); this model then binarizes it (each pixel black or white,
  drawn with its grey level as probability, the same draw for the same image). Both are shown
  on the right.</p>
  <div id="status">loading the model…</div>
  <div id="error"></div>
</div>
<div class="draw-right">
  <div id="images" class="images"></div>
  <div class="caption">Reconstruction from k: the latents above k from q(z|x), the k lowest
  from the conditional prior, all at their means (figs. 1, 3); under each, log p(x|z) in
  nats (rec<sup>&gt;k</sup>).</div>
  <div id="kl"></div>
  <div id="scores"></div>
  <div id="verdict"></div>
  {MEAN_PATH_NOTE}
</div>
</div>
<p><a href="index.html">back</a></p>"""


DRAW_SCRIPT = f"""<style>
.draw {{ display: flex; flex-wrap: wrap; gap: 24px; }}
.draw-left {{ width: 300px; }}
.draw-right {{ flex: 1 1 500px; min-width: 0; }}
#canvas {{ width: 280px; height: 280px; touch-action: none; cursor: crosshair;
  border: 1px solid #888; background: #000; display: block; }}
.tools {{ gap: 8px; font-size: 12px; }}
.tools input[type=range] {{ width: 70px; }}
.note, .caption, .mean-path-note {{ font-size: 12px; color: #444; }}
.images {{ display: flex; flex-wrap: wrap; gap: 6px; }}
.images figure {{ margin: 0; width: 90px; text-align: center; font-size: 11px; color: #444; }}
#verdict .rule {{ font-size: 12px; color: #444; }}
.images canvas {{ width: 84px; height: 84px; image-rendering: pixelated;
  border: 1px solid #ccc; display: block; }}
#verdict {{ font-size: 16px; margin: 8px 0 2px 0; }}
#error {{ color: #b00; font-size: 12px; }}
#status {{ color: #1f77b4; font-size: 12px; min-height: 1.2em; }}
</style>
<script type="module">
import {{ startDrawPage }} from "./js/draw.js";
startDrawPage({{ model: "./", examples: "{DRAW_DATA}" }});
</script>"""


def vendor_files() -> list[Path]:
    """The vendored ONNX Runtime Web the site ships (``site_dir()/vendor/onnxruntime-web``), or
    :class:`~hvaelab.package_files.PackageDataError` naming the script that fetches it."""
    folder = site_dir() / VENDOR
    missing = [name for name in VENDOR_FILES if not (folder / name).is_file()]
    if missing:
        raise PackageDataError(
            f"ONNX Runtime Web is missing from {folder} ({', '.join(missing)}): run "
            "`python scripts/fetch_onnxruntime_web.py` (make test runs it) and export again."
        )
    return [folder / name for name in VENDOR_FILES]


def export_model(
    checkpoint: str,
    data_dir: str | None = None,
    reference_limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    reference_data: str | None = None,
) -> dict[str, bytes]:
    """``{MODEL: graph, MODEL + ".json": sidecar}``: :func:`hvaelab.onnx_export.export_checkpoint`
    (reference: the mean path of the checkpoint's in-distribution test split, ``reference_limit``
    of them, read through :mod:`hvaelab.data`), written in a temporary folder and read back."""
    from ..onnx_export import export_checkpoint

    with tempfile.TemporaryDirectory(prefix="hvaelab-site-") as tmp:
        res = export_checkpoint(
            checkpoint,
            Path(tmp) / MODEL,
            data_dir,
            reference_limit,
            0.05,
            progress,
            reference_data=reference_data,
        )
        if progress:
            progress(res.summary())
        return {
            MODEL: res.onnx_path.read_bytes(),
            res.sidecar_path.name: res.sidecar_path.read_bytes(),
        }


def draw_examples(checkpoint: str, sets: list[dict]) -> dict:
    """The draw page's start images: the first :data:`N_START_IMAGES` shipped test images of
    each set in ``sets`` (``{value, label}``, real datasets only) that the checkpoint's samples
    hold, as ``{"sets": [{value, label, images: [[784 uint8]]}]}``."""
    samples = load_shipped_samples(checkpoint)
    out = []
    for s in sets:
        if s["value"] in samples and is_comparison_set(s["value"]):
            imgs = samples[s["value"]][:N_START_IMAGES]
            out.append({**s, "images": [img.reshape(-1).tolist() for img in imgs]})
    return {"sets": out}


def _index(checkpoint: str) -> str:
    body = f"""<h1>Hierarchical VAEs know what they don't know</h1>
<p>A lesson site for the model <b>{html.escape(checkpoint)}</b>, exported by hvaelab. It runs
in your browser: serve this folder with any static file server (for instance
<code>python -m http.server</code>); opened as a file, browsers refuse to load its data.</p>
<ul><li><a href="draw.html">draw</a>: draw an input and watch every k decide (the model runs in
your browser)</li>
<li><a href="explore.html">explore</a>: densities and ROC curves of every score and k</li>
<li><a href="learn.html">learn</a>: the lesson's questions, answered on click, and the 2-D toy</li>
</ul>"""
    return page("hvaelab", body)


def export_site(
    out: str | Path,
    checkpoint: str,
    progress: Callable[[str], None] | None = None,
    data_dir: str | None = None,
    reference_limit: int | None = None,
    reference_data: str | None = None,
) -> list[Path]:
    """Write the site for ``checkpoint`` into the folder ``out`` (created; files there with
    the site's names are replaced, each atomically). Returns the files written.

    ``data_dir``, ``reference_limit``: where to look for the in-distribution test split first,
    and how many of its images (a seeded subset; default all) make the model's reference
    (:func:`export_model`; ``reference_data``: another registered name for those images, see
    :func:`hvaelab.onnx_export.export_checkpoint`). Everything is computed before the first
    file is written."""
    out = Path(out)
    vendor = vendor_files()
    model = export_model(checkpoint, data_dir, reference_limit, progress, reference_data)
    views = explore_views(checkpoint, progress)
    examples = draw_examples(checkpoint, [views["in"], *views["ood"]])
    learn = learn_views(checkpoint, progress)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def write(name: str, data: str | bytes) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        written.append(path)

    for name, data in model.items():
        write(name, data)
    for src in vendor:
        write(f"{VENDOR}/{src.name}", src.read_bytes())
    write(EXPLORE_DATA, json.dumps(views, separators=(",", ":")))
    write(DRAW_DATA, json.dumps(examples, separators=(",", ":")))
    write("explore.html", page("explore", EXPLORE_BODY, EXPLORE_SCRIPT))
    write("draw.html", page("draw", draw_body(), DRAW_SCRIPT))
    write(LEARN_DATA, json.dumps(learn, separators=(",", ":")))
    write(LEARN_PAGE, learn_page())
    write("index.html", _index(checkpoint))
    write("favicon.svg", FAVICON)
    static = template_dir() / "static"
    for name in (PLOTLY, PLOTLY_LICENSE):
        write(name, (static / name).read_text(encoding="utf-8"))
    for src in sorted((site_dir() / "js").glob("*.js")):
        write(f"js/{src.name}", src.read_text(encoding="utf-8"))
    return written


__all__ = [
    "DRAW_DATA",
    "EXPLORE_DATA",
    "MODEL",
    "draw_examples",
    "explore_views",
    "export_model",
    "export_site",
    "vendor_files",
]
