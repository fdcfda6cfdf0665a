"""The HTML shell every page of the static lesson site shares (:mod:`.static_site`,
:mod:`.static_learn`): the head, the favicon link and the common style, and the names of the
plotly bundle the pages load."""

from __future__ import annotations

import html

PLOTLY = "plotly-hvaelab.min.js"  # the Voilà template's partial plotly.js, copied into the site
PLOTLY_LICENSE = "plotly-LICENSE.txt"


def page(title: str, body: str, script: str = "") -> str:
    """A page of the site: ``body`` (HTML) and ``script`` (its ``<script>`` elements)."""
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
.figures > div {{ flex: 1 1 480px; min-width: 0; position: relative; }}
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


__all__ = ["PLOTLY", "PLOTLY_LICENSE", "page"]
