// The lesson site's draw page: a canvas, and on every stroke end the model's view of it, in the
// visitor's browser (draw.html, written by `hvaelab export-site`).
//
// A plain ES module: `startDrawPage({model: "./", examples: "draw.json"})`. On every stroke end
// (the pointer lifted; undo, clear and "start from test image" alike) it
//
// * rasterizes the strokes exactly as hvaelab/data/strokes.py (preprocess.js: the canvas then
//   shows that raster, so what you see is what is scored) and takes the 28x28 image;
// * scores it with model.js (ONNX Runtime Web; the binarization, the mean-path statistics,
//   sidecar.js's p-values and verdict) and shows the image, the binarized input, the
//   reconstructions for every k, rec>k, the KL of each layer, every LLR>k and the second stage's
//   score with their p-values, and the verdict (the sidecar's rule and voted scores).
//
// While one drawing is being scored, later strokes wait and are scored together (no backlog).
// For tests and benchmarks, `document.body.dataset` carries `revision` (the number of the last
// change whose result every view shows; each change adds 1), `strokes` (how many strokes that
// result has), `strokeEndAt` and `scoredAt` (performance.now() of the last stroke end and of the
// last result shown). `window.hvaelabDraw.replay(strokes)` ends each stroke of a list (JSON as
// strokes.py's Stroke.to_dict) through the same path as the pointer and returns the revision
// that shows them all; `window.hvaelabDraw.strokes()` is the drawing's stroke list.

import { loadModel } from "./model.js";
import { CANVAS_PX, GRID, checkStroke, rasterize, toModelImage } from "./preprocess.js";
import { SECOND_STAGE } from "./sidecar.js";

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "html") e.innerHTML = v;
    else e[k] = v;
  }
  e.append(...children);
  return e;
}

/** A 28x28 canvas showing grey levels 0..255 (`grey(k)` -> the level of pixel k). */
function imageCanvas(grey, cls) {
  const c = el("canvas", { width: GRID, height: GRID, className: cls });
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(GRID, GRID);
  for (let k = 0; k < GRID * GRID; k++) {
    const v = grey(k);
    img.data[4 * k] = img.data[4 * k + 1] = img.data[4 * k + 2] = v;
    img.data[4 * k + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

/** A figure: a 28x28 canvas with a caption (HTML). */
function figure(grey, cls, caption) {
  return el("figure", { className: cls }, [imageCanvas(grey, "img"), el("figcaption", { html: caption })]);
}

/** "LLR>2" -> "LLR<sup>&gt;2</sup>" (the pages' way of writing a score). */
function pretty(name) {
  if (name === SECOND_STAGE) return "second stage";
  const m = /^(.*)>(\d+)$/.exec(name);
  return m ? `${m[1]}<sup>&gt;${m[2]}</sup>` : name;
}

const fmt = (v, d) => (Number.isFinite(v) ? v.toFixed(d) : String(v));

function verdictHtml(report, what) {
  const ood = report.isOod[0];
  const colour = ood ? "#b00" : "#2a7a2a";
  const said = ood ? "OOD" : "in-distribution";
  const k = report.voted.length;
  return (
    `${what}: <b style="color:${colour}">${said}</b> <span style="font-size:12px;color:#444">` +
    `(decided by ${pretty(report.decisive[0])}: smallest p = ${fmt(report.minP[0], 4)} ` +
    `${ood ? "<" : "≥"} ${report.fpr} / ${k} = ${fmt(report.threshold, 4)})</span>`
  );
}

/** Start the page: load the model and the start images, wire the canvas and the controls. */
export async function startDrawPage({ model: modelUrl = "./", examples: examplesUrl = null } = {}) {
  const body = document.body;
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const tools = { width: $("width"), ink: $("ink"), shape: $("shape") };
  const showTools = () => {
    $("width-value").textContent = String(Math.round(Number(tools.width.value)));
    $("ink-value").textContent = Number(tools.ink.value).toFixed(2);
  };
  for (const t of [tools.width, tools.ink]) t.addEventListener("input", showTools);
  showTools();

  let strokes = []; // the drawing: checked strokes, in order
  let base = null; // the start image (Uint8Array(784)) or null
  let raster = null; // the exact raster of base + strokes (Float32Array(280 * 280))
  let current = null; // the stroke being drawn
  let edits = 0; // changes so far (each stroke end, undo, clear, start image)
  let running = false;
  let dirty = false;
  let model = null;

  function paintRaster() {
    const img = ctx.createImageData(CANVAS_PX, CANVAS_PX);
    const r = raster || new Float32Array(CANVAS_PX * CANVAS_PX);
    for (let k = 0; k < r.length; k++) {
      const v = Math.round(255 * r[k]);
      img.data[4 * k] = img.data[4 * k + 1] = img.data[4 * k + 2] = v;
      img.data[4 * k + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function paintCurrent() {
    // a preview of the stroke under the pointer; at its end the exact raster replaces it
    paintRaster();
    if (!current) return;
    const c = Math.round(255 * current.ink);
    ctx.strokeStyle = ctx.fillStyle = `rgb(${c},${c},${c})`;
    ctx.lineWidth = current.width;
    ctx.lineCap = current.shape === "square" ? "square" : "round";
    ctx.lineJoin = current.shape === "square" ? "miter" : "round";
    const pts = current.points;
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (const p of pts.slice(1)) ctx.lineTo(p[0], p[1]);
    if (pts.length === 1) ctx.lineTo(pts[0][0] + 0.01, pts[0][1]);
    ctx.stroke();
  }

  function show(image, { input, outputs, report }) {
    const side = model.sidecar;
    const L = side.checkpoint.n_layers;
    const recNames = side.outputs.rec.columns;
    const figs = [
      figure((k) => image[k], "given", "as drawn<br><small>28×28 grey</small>"),
      figure((k) => 255 * input[k], "seen", "model sees<br><small>binarized</small>"),
    ];
    const rec = outputs.reconstructions;
    for (let j = 0; j <= L; j++) {
      const off = j * GRID * GRID;
      const v = outputs.rec[j];
      const cap = `k = ${j}<br><small>log p(x|z) <span class="stat" data-stat="${recNames[j]}" data-value="${v}">${fmt(v, 1)}</span></small>`;
      figs.push(figure((k) => Math.round(255 * rec[off + k]), "recon", cap));
    }
    $("images").replaceChildren(...figs);

    const kl = side.outputs.kl.columns.map(
      (name, i) =>
        `${name.replace(/^kl/, "layer ")} <span class="stat" data-stat="${name}" data-value="${outputs.kl[i]}">${fmt(outputs.kl[i], 2)}</span>`,
    );
    $("kl").innerHTML = `<small>KL of each layer (nats): ${kl.join(", ")}</small>`;

    const rows = Object.keys(report.scores).map((name) => {
      const v = report.scores[name][0];
      const p = report.pValues[name][0];
      const votes = report.voted.includes(name) ? "votes" : "";
      return (
        `<tr><td style="text-align:left">${pretty(name)}</td>` +
        `<td class="score-value" data-score="${name}" data-value="${v}">${fmt(v, 2)}</td>` +
        `<td class="score-p" data-score="${name}" data-value="${p}">${fmt(p, 3)}</td><td>${votes}</td></tr>`
      );
    });
    $("scores").innerHTML =
      "<table><tr><th>score (mean path)</th><th>nats</th><th>p-value</th><th>verdict</th></tr>" +
      `${rows.join("")}</table>`;

    const v = $("verdict");
    v.innerHTML = verdictHtml(report, "verdict");
    v.append(el("div", { className: "rule", textContent: side.verdict.how }));
    Object.assign(v.dataset, {
      verdict: report.isOod[0] ? "OOD" : "in-distribution",
      decisive: report.decisive[0],
      minP: String(report.minP[0]),
      threshold: String(report.threshold),
    });
  }

  async function update() {
    if (running) {
      dirty = true;
      return;
    }
    running = true;
    try {
      do {
        dirty = false;
        const revision = edits;
        const n = strokes.length;
        $("status").textContent = "scoring…";
        raster = rasterize(strokes, base);
        paintCurrent();
        const image = toModelImage(raster);
        const result = await model.score(image);
        show(image, result);
        $("error").textContent = "";
        body.dataset.strokes = String(n);
        body.dataset.scoredAt = String(performance.now());
        body.dataset.revision = String(revision);
      } while (dirty);
      $("status").textContent = "";
    } catch (e) {
      $("error").textContent = String(e && e.message ? e.message : e);
      $("status").textContent = "";
      console.error(e);
    } finally {
      running = false;
    }
  }

  function changed() {
    edits += 1;
    update();
    return edits;
  }

  /** The stroke-end path: the pointer's and replay's. */
  function endStroke(stroke) {
    strokes.push(checkStroke(stroke));
    body.dataset.strokeEndAt = String(performance.now());
    return changed();
  }

  function point(e) {
    // canvas px from the pointer: inside the border (client*), scaled to the drawing's 280 px
    const r = canvas.getBoundingClientRect();
    const x = e.clientX - r.left - canvas.clientLeft;
    const y = e.clientY - r.top - canvas.clientTop;
    return [(x * CANVAS_PX) / canvas.clientWidth, (y * CANVAS_PX) / canvas.clientHeight];
  }
  canvas.addEventListener("pointerdown", (e) => {
    if (!model) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    current = {
      points: [point(e)],
      width: Number(tools.width.value),
      ink: Number(tools.ink.value),
      shape: tools.shape.value,
    };
    paintCurrent();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!current) return;
    const p = point(e);
    const q = current.points[current.points.length - 1];
    if (Math.abs(p[0] - q[0]) + Math.abs(p[1] - q[1]) < 0.5) return;
    current.points.push(p);
    paintCurrent();
  });
  const finish = () => {
    if (!current) return;
    const stroke = { ...current, points: current.points.map((p) => p.map((c) => Math.round(c * 100) / 100)) };
    current = null;
    endStroke(stroke);
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  $("undo").addEventListener("click", () => {
    if (strokes.length) {
      strokes.pop();
      changed();
    }
  });
  $("clear").addEventListener("click", () => {
    strokes = [];
    base = null;
    changed();
  });

  // "start from a test image": the shipped test images of each set (draw.json), in turn
  const sets = examplesUrl ? (await (await fetch(examplesUrl)).json()).sets : [];
  const next = new Map();
  for (const s of sets) $("start-set").add(new Option(s.label, s.value));
  $("start").disabled = sets.length === 0;
  $("start").addEventListener("click", () => {
    const s = sets.find((x) => x.value === $("start-set").value);
    const i = next.get(s.value) || 0;
    next.set(s.value, (i + 1) % s.images.length);
    base = Uint8Array.from(s.images[i]);
    strokes = [];
    body.dataset.start = `${s.value} ${i}`;
    changed();
  });

  try {
    model = await loadModel(new URL(modelUrl, document.baseURI));
  } catch (e) {
    $("status").textContent = "";
    $("error").textContent = `the model did not load: ${e.message}`;
    throw e;
  }
  window.hvaelabDraw = {
    replay(list) {
      let revision = edits;
      for (const s of typeof list === "string" ? JSON.parse(list) : list) revision = endStroke(s);
      return revision;
    },
    strokes: () => strokes.map((s) => ({ ...s, points: s.points.map((p) => [...p]) })),
  };
  await update(); // the empty canvas: every view shows something from the start
  body.classList.add("site-ready");
}
