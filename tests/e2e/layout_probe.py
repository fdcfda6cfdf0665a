"""Measure, inside a browser page, whether any widget, figure or label overflows its container.

One JavaScript probe (:data:`PROBE_JS`, run by :func:`probe_layout`) walks the rendered outputs
(Voilà: ``#rendered_cells``; JupyterLab: every ``.jp-OutputArea-output``) and reports, in CSS px:

- ``overflow``: a widget box (``.jupyter-widgets``, ``.widget-*``, ``.lm-Widget``), a plotly figure
  (``.js-plotly-plot``, ``.plot-container``, ``svg.main-svg``), a canvas or an image whose right
  (or left) edge is past its container's inner edge by more than ``tol`` px;
- ``clipped``: the same boxes past the visible area (the window, and every ancestor of the
  output that clips or scrolls horizontally); only the outermost such box is reported;
- ``scroll``: a horizontal scrollbar (the page's, an ancestor's, or a scrolling widget's), or a
  box hiding part of its content with ``overflow-x: hidden``;
- ``label``: a button, label, slider readout or dropdown whose text is cut (``scrollWidth >
  clientWidth``; a dropdown: its chosen option's text wider than the select's text area);
- ``overlap``: a control (widget, button, select, input) whose box is overlapped by a sibling;
- ``figure-width``: a plotly figure without a fixed width (meant to fill its container) drawn at
  another width than its container's;
- ``figure-height``: a plotly figure whose own box is less tall than the figure (it is cut, or
  spills over what follows: plotly's ``responsive`` config does that to a figure in a
  notebook output once it is resized);
- ``title``: a plotly title, axis title or annotation whose text is outside the figure's svg;
- ``legend``: a plotly legend whose box covers a data point of a trace (a curve's vertex, a
  marker) or an annotation (a p-value label).

Shared by ``tests/e2e/test_e2e_layout.py`` and ``benchmarks/layout_probe.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

VOILA_ROOTS = "#rendered_cells"
LAB_ROOTS = ".jp-OutputArea-output"
SIZES = ((1280, 800), (1920, 1080))
TOLERANCE_PX = 1.0

PROBE_JS = r"""
(opts) => {
  const TOL = opts.tol;
  const BOXES = '.jupyter-widgets, [class*="widget-"], .lm-Widget, .js-plotly-plot, ' +
    '.plot-container, svg.main-svg, canvas, img';
  const TEXTS = 'button, .widget-label, .widget-label-basic, label, .widget-readout';
  const CONTROLS = '.jupyter-widgets, .widget-label, button, select, input, textarea';
  const TITLES = '.g-gtitle text, .g-xtitle text, .g-ytitle text, .annotation-text';
  const found = [], seen = new Map();  // element -> the kinds reported for it
  const css = (el) => getComputedStyle(el);
  const shown = (el) => el.isConnected && el.getClientRects().length > 0 &&
    el.checkVisibility({visibilityProperty: true});
  const round = (x) => Math.round(x * 10) / 10;
  // the outermost outputs only (JupyterLab nests output areas in Output widgets)
  const all = Array.from(document.querySelectorAll(opts.roots)).filter((el) => shown(el));
  const roots = all.filter((r) => !all.some((o) => o !== r && o.contains(r)));

  const token = (el) => {
    const cls = Array.from(el.classList);
    const widget = cls.filter((c) => c.startsWith('widget-'));
    const hvae = cls.filter((c) => c.startsWith('hvae-'));
    const pick = hvae.find((c) => c !== 'hvae-figure') || hvae[0] || widget[widget.length - 1] ||
      cls.find((c) => /^(js-plotly-plot|plot-container|svg-container|main-svg|gtitle|g-|jp-)/
        .test(c)) || cls.find((c) => c !== 'lm-Widget' && c !== 'jupyter-widgets') || cls[0];
    const id = el.id && !/^[0-9a-f-]{20,}$/i.test(el.id) ? el.id : '';  // not generated ids
    let t = el.tagName.toLowerCase() + (id ? '#' + id : pick ? '.' + pick : '');
    const p = el.parentElement;
    if (p) {
      const same = Array.from(p.children).filter(
        (s) => s.tagName === el.tagName && (!pick || s.classList.contains(pick)));
      if (same.length > 1) t += `:nth(${same.indexOf(el) + 1})`;
    }
    return t;
  };
  const path = (el) => {
    const parts = [];
    for (let e = el; e && e !== document.body && e !== document.documentElement;
         e = e.parentElement) {
      parts.unshift(token(e));
      if (e !== el && Array.from(e.classList).some((c) => c.startsWith('hvae-'))) break;
      // up to the probed output, or a cell's outermost output (whose cell the path names)
      if (roots.includes(e) || (e.matches('.jp-OutputArea-output') &&
          !e.parentElement.closest('.jp-OutputArea-output'))) break;
    }
    const short = parts.length > 8 ? [...parts.slice(0, 2), '…', ...parts.slice(-5)] : parts;
    const cell = el.closest('.jp-Cell');
    const cells = cell ? Array.from(document.querySelectorAll('.jp-Cell')) : [];
    return (cell ? `[cell ${cells.indexOf(cell) + 1}] ` : '') + short.join(' > ');
  };
  const add = (kind, el, px, detail) => {
    const kinds = seen.get(el) || new Set();
    if (kinds.has(kind)) return;
    seen.set(el, kinds.add(kind));
    found.push({kind, path: path(el), px: round(px), detail});
  };
  // The box a child lays out in: the nearest ancestor that has one (not display: contents/inline).
  const layoutParent = (el) => {
    let p = el.parentElement;
    while (p && ['contents', 'inline'].includes(css(p).display)) p = p.parentElement;
    return p;
  };
  const viewport = () => ({left: 0, right: document.documentElement.clientWidth});
  const inner = (c) => {
    if (c === document.documentElement || c === document.body) return viewport();
    const r = c.getBoundingClientRect();
    if (c instanceof SVGElement || !c.clientWidth) return {left: r.left, right: r.right};
    const left = r.left + c.clientLeft;
    return {left, right: left + c.clientWidth};
  };
  const clips = (el) => css(el).overflowX !== 'visible';
  const ancestors = (el) => {
    const out = [];
    for (let e = el.parentElement; e && e !== document.documentElement; e = e.parentElement) {
      out.push(e);
    }
    return out;
  };

  const page = document.scrollingElement || document.documentElement;
  if (page.scrollWidth - page.clientWidth > TOL) {
    found.push({kind: 'scroll', path: '(page)', px: page.scrollWidth - page.clientWidth,
      detail: `the page scrolls horizontally: ${page.scrollWidth} px of content in a ` +
        `${page.clientWidth} px window`});
  }
  const scrollers = new Set();
  for (const root of roots) {
    // the visible area: the window and every ancestor (root included) that clips or scrolls
    let vis = viewport();
    for (const a of [root, ...ancestors(root)]) {
      if (a === document.body || !clips(a)) continue;
      scrollers.add(a);
      const b = inner(a);
      vis = {left: Math.max(vis.left, b.left), right: Math.min(vis.right, b.right)};
    }
    // (plotly's other layers, svg or WebGL canvases, have the size of its first svg)
    const boxes = [root, ...root.querySelectorAll(BOXES)].filter(
      (el) => shown(el) && css(el).position !== 'fixed' &&
        !(el.closest('.svg-container') && !el.matches('svg.main-svg:first-child')));
    const clipped = [];
    for (const el of boxes) {
      const r = el.getBoundingClientRect();
      const c = layoutParent(el);
      if (c) {
        const b = inner(c), right = r.right - b.right, left = b.left - r.left;
        if (right > TOL || left > TOL) {
          const side = right >= left ? 'right' : 'left', px = Math.max(right, left);
          add('overflow', el, px, `${side} edge ${round(px)} px past its container's ` +
            `(${Math.round(r.width)} px wide in ` +
            `${Math.round(b.right - b.left)} px: ${path(c)})`);
        }
      }
      const out = Math.max(r.right - vis.right, vis.left - r.left);
      if (out > TOL && !clipped.some((a) => a.contains(el))) {
        clipped.push(el);
        add('clipped', el, out, `${round(out)} px outside the visible area ` +
          `(${Math.round(vis.left)}..${Math.round(vis.right)} px)`);
      }
      if (!(el instanceof SVGElement) && el !== root && clips(el) && !el.matches(TEXTS)) {
        scrollers.add(el);
      }
    }
    // cut labels: buttons, descriptions, readouts; dropdowns (their chosen option's text)
    for (const el of root.querySelectorAll(TEXTS)) {
      if (!shown(el) || !el.clientWidth || !el.textContent.trim()) continue;
      const cut = el.scrollWidth - el.clientWidth;
      if (cut > 0) {
        add('label', el, cut, `"${el.textContent.trim().slice(0, 40)}" cut: it needs ` +
          `${el.scrollWidth} px, has ${el.clientWidth} px`);
      }
    }
    const ctx = document.createElement('canvas').getContext('2d');
    for (const sel of root.querySelectorAll('select')) {
      if (!shown(sel) || sel.multiple || sel.size > 1 || sel.selectedIndex < 0) continue;
      const s = css(sel);
      ctx.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
      const text = sel.options[sel.selectedIndex].text;
      const room = sel.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
      const cut = ctx.measureText(text).width - room;
      if (cut > TOL) {
        add('label', sel, cut, `dropdown text "${text.slice(0, 40)}" cut: it needs ` +
          `${Math.ceil(room + cut)} px, has ${Math.floor(room)} px`);
      }
    }
    // controls overlapped by a sibling
    for (const el of root.querySelectorAll(CONTROLS)) {
      if (!shown(el) || ['absolute', 'fixed'].includes(css(el).position)) continue;
      const r = el.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) continue;
      let sib = el.nextElementSibling;
      for (; sib; sib = sib.nextElementSibling) {
        if (!shown(sib) || ['absolute', 'fixed'].includes(css(sib).position)) continue;
        const q = sib.getBoundingClientRect();
        const w = Math.min(r.right, q.right) - Math.max(r.left, q.left);
        const h = Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top);
        if (w > TOL && h > TOL) {
          add('overlap', el, w, `${round(w)} x ${round(h)} px of it lie under ${path(sib)}`);
        }
      }
    }
    // plotly: responsive figures fill their container; titles stay inside the figure
    for (const gd of root.querySelectorAll('.js-plotly-plot')) {
      const fl = gd._fullLayout, svg = gd.querySelector('svg.main-svg');
      if (!shown(gd) || !fl || !svg) continue;
      const fixed = gd.layout && gd.layout.width != null;
      const s = css(gd);
      const room = gd.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
      if (!fixed && Math.abs(fl.width - room) > TOL) {
        add('figure-width', gd, fl.width - room, `a figure without a fixed width is drawn ` +
          `${Math.round(fl.width)} px wide in a ${Math.round(room)} px container`);
      }
      const box = gd.getBoundingClientRect().height;
      if (fl.height - box > TOL) {
        add('figure-height', gd, fl.height - box, `a figure drawn ${Math.round(fl.height)} px ` +
          `tall in a box ${Math.round(box)} px tall (cut, or over what follows)`);
      }
      const sr = svg.getBoundingClientRect();
      // the legend covers no data point of any trace and no annotation (a p-value label)
      const bg = gd.querySelector('.legend .bg');
      const lr = bg && shown(bg) ? bg.getBoundingClientRect() : null;
      if (lr && lr.width > TOL && lr.height > TOL) {
        const inside = (x, y) => x > lr.left + TOL && x < lr.right - TOL &&
          y > lr.top + TOL && y < lr.bottom - TOL;
        for (const tr of gd._fullData || []) {
          if (tr.visible !== true || !tr.x || !tr.y || tr.type !== 'scatter') continue;
          const xa = fl[tr.xaxis.replace('x', 'xaxis')], ya = fl[tr.yaxis.replace('y', 'yaxis')];
          if (!xa || !ya) continue;
          let hits = 0;
          for (let i = 0; i < tr.x.length; i++) {
            if (tr.x[i] == null || tr.y[i] == null) continue;
            const x = sr.left + xa._offset + xa.l2p(xa.d2l(tr.x[i]));
            const y = sr.top + ya._offset + ya.l2p(ya.d2l(tr.y[i]));
            if (Number.isFinite(x) && Number.isFinite(y) && inside(x, y)) hits++;
          }
          if (hits) {
            add('legend', gd, hits, `the legend covers ${hits} point(s) of "${tr.name || ''}"`);
          }
        }
        for (const t of gd.querySelectorAll('.annotation-text')) {
          if (!shown(t) || !t.textContent.trim()) continue;
          const ar = t.getBoundingClientRect();
          const w = Math.min(ar.right, lr.right) - Math.max(ar.left, lr.left);
          const h = Math.min(ar.bottom, lr.bottom) - Math.max(ar.top, lr.top);
          if (w > TOL && h > TOL) {
            add('legend', gd, w, `the legend covers "${t.textContent.trim().slice(0, 30)}"`);
          }
        }
      }
      for (const t of gd.querySelectorAll(TITLES)) {
        if (!shown(t) || !t.textContent.trim()) continue;
        const tr = t.getBoundingClientRect();
        const left = sr.left - tr.left, right = tr.right - sr.right;
        if (left > TOL || right > TOL) {
          const sides = [left > TOL ? `${round(left)} px on the left` : '',
            right > TOL ? `${round(right)} px on the right` : ''].filter(Boolean).join(', ');
          add('title', t, Math.max(left, right),
            `"${t.textContent.trim().slice(0, 50)}" cut by ${sides}`);
        }
      }
    }
  }
  for (const el of scrollers) {
    const extra = el.scrollWidth - el.clientWidth;
    if (extra > TOL) {
      const how = ['hidden', 'clip'].includes(css(el).overflowX) ? 'hides' : 'scrolls';
      add('scroll', el, extra, `${how} ${extra} px of its content horizontally ` +
        `(${el.scrollWidth} px in ${el.clientWidth} px)`);
    }
  }
  return found;
}
"""

# Every figure the page has received is drawn (the hvaelab template draws them one per task:
# window.hvaelabFiguresPending), the responsive ones have their boxes' widths, and this has held
# for ``stable_ms`` (a figure that fitted at one poll can still be redrawn at the old width by a
# resize or an update that was queued on a busy machine; the template then catches it up).
SETTLED_JS = """
(arg) => {
  const fits = !(window.hvaelabFiguresPending && window.hvaelabFiguresPending() > 0) &&
    Array.from(document.querySelectorAll(arg.roots)).every((root) =>
    Array.from(root.querySelectorAll('.js-plotly-plot')).every((gd) => {
      if (!gd._fullLayout || (gd.layout && gd.layout.width != null) || !gd.clientWidth) return true;
      const s = getComputedStyle(gd);
      const room = gd.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
      return Math.abs(gd._fullLayout.width - room) <= 1;
    }));
  const now = performance.now();
  if (!fits) { window.__hvaeFitSince = null; return false; }
  if (window.__hvaeFitSince == null) window.__hvaeFitSince = now;
  return now - window.__hvaeFitSince >= arg.stable_ms;
}
"""

TWO_FRAMES_JS = (
    "() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))))"
)


@dataclass(frozen=True)
class Finding:
    """One layout problem: its kind (see the module docstring), where, and by how many px."""

    kind: str
    path: str
    px: float
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:<12} {self.px:>7.1f} px  {self.path}: {self.detail}"


def probe_layout(page: Any, roots: str = VOILA_ROOTS, tol: float = TOLERANCE_PX) -> list[Finding]:
    """Run :data:`PROBE_JS` on ``page`` over the outputs matching ``roots`` (a CSS selector)."""
    return [Finding(**f) for f in page.evaluate(PROBE_JS, {"roots": roots, "tol": tol})]


def settle_layout(
    page: Any, roots: str = VOILA_ROOTS, timeout_ms: float = 20_000, stable_ms: float = 1_500
) -> bool:
    """Wait (at most ``timeout_ms``) until the responsive figures have had their containers'
    widths for ``stable_ms`` in a row, then two animation frames. Returns whether they caught up
    (the probe reports those that did not)."""
    ok = True
    page.evaluate("() => { window.__hvaeFitSince = null; }")
    try:
        page.wait_for_function(
            SETTLED_JS,
            arg={"roots": roots, "stable_ms": stable_ms},
            polling=100,
            timeout=timeout_ms,
        )
    except Exception:  # noqa: BLE001 - a figure that never catches up is the probe's finding
        ok = False
    time.sleep(0.3)  # ResizeObservers and plotly's debounced window-resize handler
    page.evaluate(TWO_FRAMES_JS)
    return ok


def resize(page: Any, width: int, height: int, roots: str = VOILA_ROOTS) -> bool:
    """Set the window to ``width`` x ``height`` and wait for the figures to follow."""
    page.set_viewport_size({"width": width, "height": height})
    # the page may still lay out at the old width for a moment (and the figures then "fit")
    page.wait_for_function("(w) => window.innerWidth === w", arg=width, timeout=10_000)
    return settle_layout(page, roots)


def format_findings(results: dict[str, list[Finding]]) -> str:
    """``{label: findings}`` as readable lines, one block per label that has findings."""
    lines = []
    for label, findings in results.items():
        if findings:
            lines.append(f"{label}: {len(findings)} problem(s)")
            lines += [f"  {f}" for f in findings]
    return "\n".join(lines)


__all__ = [
    "LAB_ROOTS",
    "PROBE_JS",
    "SIZES",
    "TOLERANCE_PX",
    "VOILA_ROOTS",
    "Finding",
    "format_findings",
    "probe_layout",
    "resize",
    "settle_layout",
]
