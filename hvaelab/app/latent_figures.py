"""Plotly figures of latent reconstructions (figs. 1, 3), per-layer KL (sec. 4.1) and samples.

Image grids are drawn as ONE tiled mosaic (a single ``go.Image`` with an embedded PNG), so a grid
of many images costs one trace; a transparent scatter on top carries the per-cell hover text.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from torch import Tensor

from ..latents import LatentReconstructions
from .theme import TEMPLATE

PAD = 2  # pixels between (and around) the cells of a mosaic
PAD_VALUE = 255  # white
CELL_PX = 3  # default display pixels per image pixel


def _as_array(images: Tensor | np.ndarray, what: str) -> np.ndarray:
    arr = images.detach().cpu().float().numpy() if isinstance(images, Tensor) else images
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim < 3 or arr.shape[-3] not in (1, 3):
        raise ValueError(f"{what} must be images (..., C, H, W) with C = 1 or 3, got {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def tile_grid(cells: Tensor | np.ndarray, pad: int = PAD) -> np.ndarray:
    """(R, K, C, H, W) images in [0, 1] -> uint8 RGB mosaic (R(H+pad)+pad, K(W+pad)+pad, 3)."""
    arr = _as_array(cells, "cells")
    if arr.ndim != 5:
        raise ValueError(f"cells must be (rows, cols, C, H, W), got shape {arr.shape}")
    R, K, C, H, W = arr.shape
    rgb = np.repeat(arr, 3, axis=2) if C == 1 else arr
    rgb = np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
    out = np.full((R * (H + pad) + pad, K * (W + pad) + pad, 3), PAD_VALUE, dtype=np.uint8)
    for r in range(R):
        for c in range(K):
            top, left = pad + r * (H + pad), pad + c * (W + pad)
            out[top : top + H, left : left + W] = rgb[r, c].transpose(1, 2, 0)
    return out


def png_source(mosaic: np.ndarray) -> str:
    """A uint8 (H, W, 3) array as a PNG data URI (what ``go.Image(source=...)`` takes)."""
    buf = io.BytesIO()
    Image.fromarray(mosaic, mode="RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell_centres(rows: int, cols: int, h: int, w: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    xs = pad + np.arange(cols) * (w + pad) + (w - 1) / 2
    ys = pad + np.arange(rows) * (h + pad) + (h - 1) / 2
    return xs, ys


def _image_layout(fig: go.Figure, mosaic: np.ndarray, scale: int, margin: dict) -> None:
    height, width = mosaic.shape[:2]
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain")
    fig.update_layout(
        width=width * scale + margin["l"] + margin["r"],
        height=height * scale + margin["t"] + margin["b"],
        margin=margin,
        plot_bgcolor="white",
        hovermode="closest",
    )


def reconstruction_grid_figure(
    rec: LatentReconstructions,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    scale: int = CELL_PX,
) -> go.Figure:
    """Fig. 1: one row per input, columns: the input, then its reconstruction from each k.

    Two traces: the mosaic (``go.Image``) and an invisible scatter with one hover point per cell
    giving the row label, k and ``log p(x|z)`` of the reconstruction in nats.
    """
    n, ks = len(rec), list(rec.ks)
    if rec.images.shape[:2] != (len(ks), n) or rec.log_px.shape != (len(ks), n):
        raise ValueError(
            f"inconsistent LatentReconstructions: {n} inputs, ks {ks}, images "
            f"{tuple(rec.images.shape)}, log_px {tuple(rec.log_px.shape)}"
        )
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must have one entry per input ({n}), got {len(labels)}")
    labels = [f"#{i}" for i in range(n)] if labels is None else [str(s) for s in labels]
    cells = torch.cat([rec.inputs.unsqueeze(0), rec.images], dim=0).transpose(0, 1)
    mosaic = tile_grid(cells)
    C, H, W = rec.inputs.shape[1:]
    xs, ys = _cell_centres(n, len(ks) + 1, H, W, PAD)
    headers = ["input"] + [f"k={k}" for k in ks]
    hx, hy, text = [], [], []
    for r in range(n):
        for c in range(len(ks) + 1):
            hx.append(xs[c])
            hy.append(ys[r])
            if c == 0:
                text.append(f"{labels[r]}<br>input (model's view of x)")
            else:
                lp = float(rec.log_px[c - 1, r])
                text.append(
                    f"{labels[r]}<br>k={ks[c - 1]}: z<sub>≤{ks[c - 1]}</sub> from the prior "
                    f"({rec.mode})<br>log p(x|z) = {lp:.1f} nats"
                )
    fig = go.Figure(
        [
            go.Image(source=png_source(mosaic), hoverinfo="skip", name="mosaic"),
            go.Scatter(
                x=hx,
                y=hy,
                mode="markers",
                marker={"size": max(6, W * scale), "color": "rgba(0,0,0,0)", "symbol": "square"},
                hovertext=text,
                hoverinfo="text",
                showlegend=False,
                name="cells",
            ),
        ]
    )
    # set at once: add_annotation validates every annotation so far again on each call
    heads = [
        {"x": xs[c], "y": -0.5, "text": h, "showarrow": False, "yanchor": "bottom",
         "font": {"size": 12}}
        for c, h in enumerate(headers)
    ]  # fmt: skip
    rows = [
        {"x": -0.5, "y": ys[r], "text": lab, "showarrow": False, "xanchor": "right",
         "font": {"size": 11}}
        for r, lab in enumerate(labels)
    ]  # fmt: skip
    fig.update_layout(annotations=heads + rows)
    longest = max(len(s) for s in labels)
    lines = title.count("<br>") + 1 if title else 0
    margin = {"l": 20 + 7 * longest, "r": 10, "t": 50 + 24 * lines, "b": 10}
    _image_layout(fig, mosaic, scale, margin)
    if title:
        # Left-aligned on the figure's edge: a centred title longer than a narrow grid (few k
        # columns) would be cut off on the left. Keep titles short; "<br>" wraps them.
        fig.update_layout(
            title={"text": title, "x": 0, "xref": "container", "xanchor": "left", "pad": {"l": 8}}
        )
    return fig


def samples_figure(
    images: Tensor | np.ndarray,
    ncols: int | None = None,
    title: str | None = None,
    scale: int = CELL_PX,
) -> go.Figure:
    """A tile of images (e.g. prior samples, ``HVAE.sample``) as one ``go.Image`` trace."""
    arr = _as_array(images, "images")
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise ValueError(f"images must be a non-empty batch (N, C, H, W), got shape {arr.shape}")
    n = arr.shape[0]
    ncols = math.ceil(math.sqrt(n)) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    nrows = math.ceil(n / ncols)
    grid = np.ones((nrows * ncols, *arr.shape[1:]), dtype=np.float32)
    grid[:n] = arr
    mosaic = tile_grid(grid.reshape(nrows, ncols, *arr.shape[1:]))
    fig = go.Figure([go.Image(source=png_source(mosaic), hoverinfo="skip", name="samples")])
    lines = title.count("<br>") + 1 if title else 0  # a narrow tile's title takes two
    margin = {"l": 10, "r": 10, "t": 16 + 24 * lines if title else 10, "b": 10}
    _image_layout(fig, mosaic, scale, margin)
    if title:
        fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center"})
    return fig


def kl_figure(
    kl: Mapping[str, Tensor | np.ndarray],
    per_dim: bool = False,
    title: str | None = None,
    log_y: bool = False,
) -> go.Figure:
    """Per-layer KL terms (N, L) per dataset as grouped box plots, one trace per dataset.

    Shows sec. 4.1's point that the KL of the ELBO is dominated by the lowest latent.
    """
    if not kl:
        raise ValueError("kl_figure needs at least one dataset: {name: (N, L) tensor}")
    n_layers = None
    fig = go.Figure()
    for name, values in kl.items():
        arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"kl[{name!r}] must be (N, L) with N >= 1, got shape {arr.shape}")
        if n_layers is not None and arr.shape[1] != n_layers:
            raise ValueError(
                f"kl[{name!r}] has {arr.shape[1]} layers but another dataset has {n_layers}"
            )
        n_layers = arr.shape[1]
        xs = np.tile([f"z{i}" for i in range(1, n_layers + 1)], arr.shape[0])
        fig.add_trace(go.Box(x=xs, y=arr.reshape(-1), name=str(name), boxpoints=False))
    unit = "nats per dimension" if per_dim else "nats"
    fig.update_layout(
        boxmode="group",
        title={"text": title or "KL term of each latent layer (eq. 4)", "x": 0.5},
        xaxis_title="latent layer",
        yaxis_title=f"KL ({unit})",
        yaxis_type="log" if log_y else "linear",
        legend_title="data",
        template=TEMPLATE,
    )
    return fig


__all__ = ["kl_figure", "png_source", "reconstruction_grid_figure", "samples_figure", "tile_grid"]
