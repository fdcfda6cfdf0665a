const PX = 280, GRID = 28;

function hull(pts) {  // convex hull (monotone chain) of [[x, y], ...]
  pts = pts.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [], upper = [];
  for (const p of pts) {
    while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], p) <= 0) lower.pop();
    lower.push(p);
  }
  for (const p of pts.slice().reverse()) {
    while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], p) <= 0) upper.pop();
    upper.push(p);
  }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

function grey(v) { const c = Math.round(255 * v); return `rgb(${c},${c},${c})`; }

function paint(ctx, s) {
  const pts = s.points, w = s.width, h = w / 2;
  ctx.fillStyle = ctx.strokeStyle = grey(s.ink);
  if (s.shape === "square") {
    if (pts.length === 1) { ctx.fillRect(pts[0][0] - h, pts[0][1] - h, w, w); return; }
    for (let i = 1; i < pts.length; i++) {
      const [a, b] = [pts[i - 1], pts[i]], corners = [];
      for (const p of [a, b]) for (const dx of [-h, h]) for (const dy of [-h, h]) corners.push([p[0] + dx, p[1] + dy]);
      const poly = hull(corners);
      ctx.beginPath(); ctx.moveTo(poly[0][0], poly[0][1]);
      for (const q of poly.slice(1)) ctx.lineTo(q[0], q[1]);
      ctx.closePath(); ctx.fill();
    }
    return;
  }
  if (pts.length === 1) { ctx.beginPath(); ctx.arc(pts[0][0], pts[0][1], h, 0, 2 * Math.PI); ctx.fill(); return; }
  ctx.lineWidth = w; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(pts[0][0], pts[0][1]);
  for (const p of pts.slice(1)) ctx.lineTo(p[0], p[1]);
  ctx.stroke();
}

function render({ model, el }) {
  el.classList.add("hvae-canvas");
  const canvas = document.createElement("canvas");
  canvas.width = PX; canvas.height = PX;
  canvas.className = "hvae-canvas-surface";
  canvas.style.cssText = "width:280px;height:280px;touch-action:none;cursor:crosshair;" +
    "border:1px solid #888;background:#000;display:block";
  const ctx = canvas.getContext("2d");

  const bar = document.createElement("div");
  bar.className = "hvae-canvas-tools";
  bar.style.cssText = "display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-top:4px;font-size:12px;max-width:280px";
  const mk = (tag, cls, props) => { const e = document.createElement(tag); e.className = cls; Object.assign(e, props || {}); return e; };
  // ipywidgets' own button look (jupyter-button), so the tools match the page's other buttons
  const undo = mk("button", "hvae-canvas-undo jupyter-button widget-button", { textContent: "undo", title: "take back the last stroke" });
  const clear = mk("button", "hvae-canvas-clear jupyter-button widget-button", { textContent: "clear", title: "an empty canvas" });
  for (const b of [undo, clear]) b.style.cssText = "width:auto;height:24px;padding:0 10px;line-height:22px";
  const size = mk("input", "hvae-canvas-width", { type: "range", min: 5, max: 60, step: 1, title: "brush size (canvas px; 10 = one model pixel)" });
  const ink = mk("input", "hvae-canvas-ink", { type: "range", min: 0, max: 1, step: "any", title: "ink: 1 = white, 0 = eraser" });
  const shape = mk("select", "hvae-canvas-shape", { title: "brush shape" });
  for (const s of ["round", "square"]) shape.appendChild(mk("option", "", { value: s, textContent: s }));
  const state = mk("span", "hvae-canvas-state", {});
  state.style.color = "#1f77b4";
  // each slider shows its value beside it
  const sizeValue = mk("span", "hvae-canvas-width-value", {}), inkValue = mk("span", "hvae-canvas-ink-value", {});
  for (const v of [sizeValue, inkValue]) v.style.cssText = "min-width:2.2em;font-variant-numeric:tabular-nums";
  const label = (t, e, v) => { const l = mk("label", "", {}); l.style.cssText = "display:flex;gap:3px;align-items:center"; l.append(t, e, v); return l; };
  bar.append(undo, clear, label("size", size, sizeValue), label("ink", ink, inkValue), shape, state);
  const showValues = () => { sizeValue.textContent = String(Math.round(Number(size.value))); inkValue.textContent = Number(ink.value).toFixed(2); };
  el.append(canvas, bar);

  let local = (model.get("strokes") || []).slice();
  let revision = model.get("revision");
  let sent = model.get("done_revision"), busy = false, timer = null, current = null;

  function syncTools() {
    size.value = model.get("width"); ink.value = model.get("ink"); shape.value = model.get("shape");
    showValues();
  }
  function redraw() {
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, PX, PX);
    const base = model.get("base") || [];
    if (base.length === GRID * GRID) {
      const off = document.createElement("canvas"); off.width = off.height = GRID;
      const octx = off.getContext("2d"), img = octx.createImageData(GRID, GRID);
      for (let i = 0; i < base.length; i++) {
        img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = base[i]; img.data[4 * i + 3] = 255;
      }
      octx.putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = false; ctx.drawImage(off, 0, 0, PX, PX);
    }
    for (const s of local) paint(ctx, s);
    if (current) paint(ctx, current);
  }
  function showState() {
    const done = model.get("done_revision");
    el.dataset.revision = String(revision);
    el.dataset.answeredRevision = String(done); // the kernel's answer is here: the views in the window show it
    state.textContent = done < revision ? "scoring…" : "";
    // done: every view shows it, also the figures outside the window, which are redrawn a frame
    // later (live_figure.js's late draws)
    const mark = () => {
      if (!(Number(el.dataset.doneRevision) >= done)) el.dataset.doneRevision = String(done);
    };
    const late = window.hvaelabLateDraws;
    if (late && late.n > 0) late.settled().then(mark);
    else mark();
  }
  function send() {
    if (busy || revision <= model.get("done_revision")) return;
    busy = true; sent = revision;
    model.set({ strokes: local.slice(), revision: revision });
    model.save_changes();
    clearTimeout(timer);
    timer = setTimeout(() => { busy = false; state.textContent = "no answer from the kernel"; }, 30000);
    showState();
  }
  function changed() { revision += 1; showState(); send(); }

  function point(e) {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * PX / r.width, (e.clientY - r.top) * PX / r.height];
  }
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault(); canvas.setPointerCapture(e.pointerId);
    current = { points: [point(e)], width: Number(model.get("width")), ink: Number(model.get("ink")), shape: model.get("shape") };
    redraw();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!current) return;
    const p = point(e), q = current.points[current.points.length - 1];
    if (Math.abs(p[0] - q[0]) + Math.abs(p[1] - q[1]) < 0.5) return;
    current.points.push(p); redraw();
  });
  const finish = () => {
    if (!current) return;
    const points = current.points.map((p) => [Math.round(p[0] * 100) / 100, Math.round(p[1] * 100) / 100]);
    el.dataset.strokeEndAt = String(performance.now());  // for benchmarks/dashboard_bench.py
    local.push({ ...current, points: points }); current = null; redraw(); changed();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  undo.addEventListener("click", () => { if (local.length) { local.pop(); redraw(); changed(); } });
  clear.addEventListener("click", () => {
    local = []; model.set({ base: [] }); redraw(); changed();
  });
  const tool = (name, el_, conv) => el_.addEventListener("input", () => { showValues(); model.set(name, conv(el_.value)); model.save_changes(); });
  tool("width", size, Number); tool("ink", ink, Number); tool("shape", shape, String);
  shape.addEventListener("change", () => { model.set("shape", shape.value); model.save_changes(); });

  model.on("change:done_revision", () => {
    el.dataset.doneAt = String(performance.now());  // for benchmarks/dashboard_bench.py
    if (model.get("done_revision") >= sent) { busy = false; clearTimeout(timer); }
    showState(); send();
  });
  model.on("change:revision", () => {  // the kernel loaded or cleared a drawing
    const r = model.get("revision");
    if (r > revision) { revision = r; local = (model.get("strokes") || []).slice(); redraw(); showState(); }
  });
  model.on("change:base", redraw);
  model.on("change:width change:ink change:shape", syncTools);
  syncTools(); redraw(); showState();
}
export default { render };
