// plotly.js for the Voila pages: the core (scatter) plus exactly the trace types hvaelab's figures
// use. Built by scripts/build-plotly-bundle into the Voila template's static folder; the template
// hands it to plotly's JupyterLab renderer, which otherwise evaluates the full ~4.8 MB plotly.js
// (1.2-1.6 s of main thread on this machine) before it draws a page's first figure.
// Adding a trace type to a figure? Register it here, rebuild, and tests/test_plotly_bundle.py
// checks that the bundle's header lists it.
var Plotly = require("plotly.js/lib/core");

Plotly.register([
  require("plotly.js/lib/bar"),
  require("plotly.js/lib/box"),
  require("plotly.js/lib/histogram"),
  require("plotly.js/lib/image"),
]);

module.exports = Plotly;
