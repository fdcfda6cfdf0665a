// A plotly figure redrawn in place with Plotly.react: the figure ("base") plus, for the linked
// views of a drawing, the traces that follow the selection ("overlay", sent on every change).
// plotly.js is the copy the page loads once: under Voila the template's partial bundle
// (window.hvaelabPlotlyBundle), else the one of plotly's JupyterLab extension (offline). A new
// figure is drawn into the same div: no new plot, no PNG snapshot as plotly's mime renderer
// makes on every update.
async function plotly() {
  if (window.hvaelabPlotlyBundle) {
    const bundled = await window.hvaelabPlotlyBundle;
    if (bundled) return bundled;
  }
  const container = window._JUPYTERLAB && window._JUPYTERLAB["jupyterlab-plotly"];
  if (!container) throw new Error("the jupyterlab-plotly extension is not loaded on this page");
  const Rendered = (await container.get("./mimeExtension"))().RenderedPlotly;
  if (!Rendered.Plotly) {
    // nothing has drawn a plotly figure yet: load plotly.js the way the extension does
    const probe = new Rendered({ mimeType: "application/vnd.plotly.v1+json", sanitizer: {}, resolver: null, linkHandler: null, latexTypesetter: null });
    const done = Rendered.loadingPlotly;
    probe.renderModel({ data: { "application/vnd.plotly.v1+json": { data: [], layout: {} } }, metadata: {}, setData: () => {} }).catch(() => {});
    await done;
  }
  return Rendered.Plotly;
}

// A redraw of a figure outside the window waits for the next frame (issue 38): the views in
// the window show a move's answer first, and the figures below the fold follow in a task of
// their own. Such late redraws are counted in window.hvaelabLateDraws, so that what waits for
// "every view" (the canvas's done revision, the layout probe) can wait for them too.
function lateDraws() {
  if (!window.hvaelabLateDraws) {
    const late = { n: 0, waiters: [] };
    late.settled = () => (late.n === 0 ? Promise.resolve() : new Promise((r) => late.waiters.push(r)));
    late.start = () => { late.n += 1; };
    late.end = () => {
      late.n -= 1;
      if (late.n > 0) return;
      const waiters = late.waiters;
      late.waiters = [];
      waiters.forEach((w) => w());
    };
    window.hvaelabLateDraws = late;
  }
  return window.hvaelabLateDraws;
}

function inView(el) {
  if (el.offsetParent === null) return false;
  const r = el.getBoundingClientRect();
  return r.bottom > 0 && r.top < window.innerHeight && (r.width > 0 || r.height > 0);
}

const afterNextFrame = () =>
  new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

// A figure whose model reaches the page without a view (a question's answer, built while the
// student reads and shown on the reveal) would be plotly's first draw of its trace types: on the
// teaching page the toy's first draw took 270-390 ms, 100-130 ms of it plotly.js's own code run
// for the first time (issue 38). So once the page is idle, a copy of such a figure cut to 3
// points a trace is drawn off screen and removed: the reveal then draws with warm code. It goes
// through the Voila template's queue, behind the page's own figures and any answer to a move.
const WARM_POINTS = 3;
// the figures ("base") a view has drawn or is drawing (anywidget hands initialize and render
// proxies of the model, not the model: the figure object is what they share)
const viewed = new WeakSet();

function cut(trace) {
  const out = { ...trace };
  for (const key of ["x", "y", "z", "text", "customdata"]) {
    if (out[key] && typeof out[key].length === "number" && typeof out[key] !== "string") {
      out[key] = Array.from(out[key]).slice(0, WARM_POINTS);
    }
  }
  if (out.marker && Array.isArray(out.marker.color)) {
    out.marker = { ...out.marker, color: out.marker.color.slice(0, WARM_POINTS) };
  }
  return out;
}

async function warm(base, config) {
  const Plotly = await plotly();
  const node = document.createElement("div");
  node.className = "hvae-warm-up";
  node.setAttribute("aria-hidden", "true");
  const layout = { ...(base.layout || {}) };
  // above the page (out of the window: the queue draws it when idle)
  node.style.cssText = `position:absolute; left:0; top:-10000px; width:800px; height:${layout.height || 360}px`;
  document.body.appendChild(node);
  const draw = () => Plotly.newPlot(node, (base.data || []).map(cut), layout, config);
  window.hvaelabWarmUps = (window.hvaelabWarmUps || 0) + 1; // counted: the tests read it
  try {
    if (window.hvaelabQueueDraw) await window.hvaelabQueueDraw(node, draw, { idle: true });
    else await draw();
  } finally {
    Plotly.purge(node);
    node.remove();
  }
}

function initialize({ model }) {
  const later = (f) => (window.requestIdleCallback ? requestIdleCallback(f, { timeout: 5000 }) : setTimeout(f, 1000));
  // a view usually follows its model at once: wait for the page to settle, then look
  setTimeout(() => later(() => {
    const base = model.get("base");
    if (base && !viewed.has(base) && (base.data || []).length) {
      warm(base, model.get("config") || {}).catch(() => {});
    }
  }), 2000);
}

function render({ model, el }) {
  el.classList.add("hvae-live-figure-box");
  const gd = document.createElement("div");
  gd.style.width = "100%";
  el.appendChild(gd);
  let Plotly = null, pending = false, drawn = false, ticket = 0;
  const draw = async () => {
    if (pending) return;
    pending = true;
    // counted at once (before any await), so that a done revision arriving next waits for it
    const late = drawn && !inView(el) ? lateDraws() : null;
    if (late) late.start();
    try {
      await Promise.resolve();
      pending = false;
      const mine = ++ticket; // a newer draw makes a waiting late one pointless
      el.dataset.receivedAt = String(performance.now());
      const base = model.get("base") || {}, overlay = model.get("overlay") || [];
      viewed.add(base); // each figure a view draws (a move sends a new one): not warmed up
      // the overlay's layout part (shapes, annotations) is redrawn alone by Plotly.react: cheap
      const layout = { ...(base.layout || {}), ...(model.get("overlay_layout") || {}) };
      layout.height = layout.height || 360;
      if (layout.width == null) layout.autosize = true;
      el.style.minHeight = layout.height + "px";
      const react = () => Plotly.react(gd, [...(base.data || []), ...overlay], layout, model.get("config") || {});
      Plotly = Plotly || (await plotly());
      // a page's figures arrive together: the first draws go through the Voila template's queue
      // (one figure per task, those in the window first) so that the page keeps answering
      if (!drawn && window.hvaelabQueueDraw) await window.hvaelabQueueDraw(el, react);
      else if (late) {
        await afterNextFrame();
        if (mine !== ticket) return; // a newer state is on its way
        await react();
      } else await react();
      drawn = true;
      el.dataset.revision = String(model.get("revision"));
      el.dataset.drawnAt = String(performance.now());
    } catch (e) {
      el.textContent = "This figure could not be drawn (plotly.js not loaded on this page): " + e;
    } finally {
      if (late) late.end();
    }
  };
  model.on("change:base change:overlay change:overlay_layout change:config", draw);
  // fit the container; a figure whose view was closed or hidden (the model menu rebuilding the
  // page) is left alone: plotly rejects resizing a div that is not displayed
  const fit = new ResizeObserver(() => {
    if (!Plotly || !gd.data || !gd._fullLayout || !gd.isConnected || gd.offsetParent === null) return;
    if (gd.layout && gd.layout.width != null) return; // a fixed width (image mosaics)
    Promise.resolve(Plotly.Plots.resize(gd)).catch(() => {});
  });
  fit.observe(el);
  draw();
  return () => fit.disconnect(); // anywidget calls this when the view is removed
}
export default { initialize, render };
