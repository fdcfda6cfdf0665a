// A plotly figure redrawn in place with Plotly.react: the static traces ("base", sent once) plus
// the traces that follow the selection ("overlay", sent on every change). plotly.js is the copy
// the page already loaded for its other figures (the jupyterlab-plotly extension, offline): no
// second bundle, and no PNG snapshot on every redraw as plotly's mime renderer makes.
async function plotly() {
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

function render({ model, el }) {
  el.classList.add("hvae-live-figure-box");
  const gd = document.createElement("div");
  gd.style.width = "100%";
  el.appendChild(gd);
  let Plotly = null, pending = false;
  const draw = async () => {
    if (pending) return;
    pending = true;
    await Promise.resolve();
    pending = false;
    el.dataset.receivedAt = String(performance.now());
    const base = model.get("base") || {}, overlay = model.get("overlay") || [];
    // the overlay's layout part (shapes, annotations) is redrawn alone by Plotly.react: cheap
    const layout = { ...(base.layout || {}), ...(model.get("overlay_layout") || {}), autosize: true };
    el.style.minHeight = (layout.height || 360) + "px";
    try {
      Plotly = Plotly || (await plotly());
      await Plotly.react(gd, [...(base.data || []), ...overlay], layout, model.get("config") || {});
      el.dataset.revision = String(model.get("revision"));
      el.dataset.drawnAt = String(performance.now());
    } catch (e) {
      el.textContent = "This figure needs plotly's JupyterLab extension: " + e;
    }
  };
  model.on("change:base change:overlay change:overlay_layout change:config", draw);
  // fit the container; a figure whose view was closed or hidden (the model menu rebuilding the
  // page) is left alone: plotly rejects resizing a div that is not displayed
  const fit = new ResizeObserver(() => {
    if (!Plotly || !gd.data || !gd.isConnected || gd.offsetParent === null) return;
    Promise.resolve(Plotly.Plots.resize(gd)).catch(() => {});
  });
  fit.observe(el);
  draw();
  return () => fit.disconnect(); // anywidget calls this when the view is removed
}
export default { render };
