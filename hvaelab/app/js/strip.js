function render({ model, el }) {
  el.classList.add("hvae-strip");
  const tip = document.createElement("div");
  tip.style.cssText = "position:absolute;display:none;background:#fff;border:1px solid #999;" +
    "padding:3px;font-size:11px;pointer-events:none;z-index:10;box-shadow:0 1px 4px #0003";
  el.style.position = "relative";
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.style.cssText = "width:100%;display:block;overflow:visible";
  el.append(svg, tip);
  function draw() {
    const pts = model.get("points"), rows = model.get("rows"), sel = model.get("selected");
    const W = Math.max(el.clientWidth || 600, 200), left = 110, right = 20, rowH = 22;
    const H = rows.length * rowH + 40;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("height", H);
    svg.replaceChildren();
    const xs = pts.map((p) => p.x).filter((x) => Number.isFinite(x));
    let lo = Math.min(...xs), hi = Math.max(...xs);
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    const pad = 0.03 * (hi - lo); lo -= pad; hi += pad;
    const X = (x) => left + (W - left - right) * (x - lo) / (hi - lo);
    const text = (x, y, t, anchor, size) => {
      const e = document.createElementNS(svgNS, "text");
      e.setAttribute("x", x); e.setAttribute("y", y); e.setAttribute("font-size", size || 11);
      e.setAttribute("text-anchor", anchor || "start"); e.textContent = t; svg.appendChild(e); return e;
    };
    rows.forEach((r, i) => text(left - 8, 15 + i * rowH, r, "end"));
    const axisY = rows.length * rowH + 4;
    const axis = document.createElementNS(svgNS, "line");
    axis.setAttribute("x1", left); axis.setAttribute("x2", W - right);
    axis.setAttribute("y1", axisY); axis.setAttribute("y2", axisY); axis.setAttribute("stroke", "#999");
    svg.appendChild(axis);
    for (let t = 0; t <= 4; t++) {
      const v = lo + (hi - lo) * t / 4;
      text(X(v), axisY + 14, Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3), "middle", 10);
    }
    text(W - right, axisY + 26, model.get("x_title"), "end", 11);
    pts.forEach((p, i) => {
      if (!Number.isFinite(p.x)) return;
      const c = document.createElementNS(svgNS, "circle");
      c.setAttribute("cx", X(p.x)); c.setAttribute("cy", 11 + p.row * rowH);
      c.setAttribute("r", i === sel ? 7 : 5);
      c.setAttribute("fill", p.color); c.setAttribute("fill-opacity", i === sel ? 1 : 0.55);
      c.setAttribute("stroke", i === sel ? "#000" : "none"); c.setAttribute("stroke-width", 2);
      c.setAttribute("class", "hvae-strip-point" + (i === sel ? " hvae-strip-selected" : ""));
      c.setAttribute("data-index", i); c.style.cursor = "pointer";
      c.addEventListener("mouseenter", () => {
        tip.innerHTML = `<img src="${p.src}" width="56" height="56" style="image-rendering:pixelated;display:block">${p.label}`;
        tip.style.left = (X(p.x) + 8) + "px"; tip.style.top = (p.row * rowH + 14) + "px"; tip.style.display = "block";
      });
      c.addEventListener("mouseleave", () => { tip.style.display = "none"; });
      c.addEventListener("click", () => { model.set("selected", i); model.save_changes(); });
      svg.appendChild(c);
    });
    el.dataset.selected = String(sel);
  }
  model.on("change:points change:selected change:rows change:x_title", draw);
  new ResizeObserver(() => draw()).observe(el);
  draw();
}
export default { render };
