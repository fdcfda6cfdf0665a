"""Latent reconstruction explorer (paper figs. 1 and 3, sec. 4.1).

Rows: a few in-distribution and OOD inputs from the shipped samples; columns: the input, then its
reconstruction with the k lowest latents taken from the conditional prior (k = 0 is the ordinary
reconstruction), with ``log p(x|z)`` of each cell on hover. Beside it: the per-layer KL terms of
the ELBO (eq. 4; the lowest layer dominates) and samples drawn from the model.

All reconstructions for every k are computed at once per (inputs, mode) and cached; the k slider
only chooses how many columns are shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch

from ..data import to_tensor
from ..latents import LatentReconstructions, latent_reconstructions, layer_kl
from .latent_figures import kl_figure, reconstruction_grid_figure, samples_figure
from .resources import (
    DEFAULT_CHECKPOINT,
    dataset_label,
    is_comparison_set,
    load_checkpoint,
    load_shipped_samples,
)
from .widgets import AHEAD, FigureSlot, ahead_model, status_html, with_class

MODES = (("means", "mean"), ("samples", "sample"))


def pick_inputs(
    samples: dict[str, np.ndarray], datasets: list[str], n_per_set: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """``n_per_set`` random images of each dataset (uint8 (N, 28, 28)) and their row labels."""
    images, labels = [], []
    for name in datasets:
        imgs = samples[name]
        idx = np.sort(rng.choice(len(imgs), min(n_per_set, len(imgs)), replace=False))
        images.append(imgs[idx])
        labels += [f"{dataset_label(name)} #{i}" for i in idx]
    return np.concatenate(images), labels


def chosen_inputs(
    samples: dict[str, np.ndarray], indices: Mapping[str, Sequence[int]]
) -> tuple[np.ndarray, list[str]]:
    """The shipped images at ``indices`` per dataset and their row labels."""
    images, labels = [], []
    for name, idx in indices.items():
        if name not in samples:
            raise ValueError(f"no shipped samples for {name!r}; available: {', '.join(samples)}")
        n = len(samples[name])
        bad = [i for i in idx if not 0 <= int(i) < n]
        if bad or not len(idx):
            raise ValueError(f"indices for {name!r} must be 0..{n - 1} (at least one), got {bad}")
        images.append(samples[name][np.asarray(idx, dtype=np.int64)])
        labels += [f"{dataset_label(name)} #{int(i)}" for i in idx]
    return np.concatenate(images), labels


def first_columns(rec: LatentReconstructions, k_max: int) -> LatentReconstructions:
    """The reconstructions from k = 0..k_max only."""
    j = [i for i, k in enumerate(rec.ks) if k <= k_max]
    return LatentReconstructions(
        ks=[rec.ks[i] for i in j],
        inputs=rec.inputs,
        images=rec.images[j],
        log_px=rec.log_px[j],
        mode=rec.mode,
    )


@dataclass
class _NextInputs:
    """The next shuffle's inputs and their reconstructions, being computed ahead."""

    images: np.ndarray
    labels: list[str]
    mode: str
    seed: int
    job: Future

    def matches(self, mode: str, seed: int) -> bool:
        return self.mode == mode and self.seed == seed


class ReconstructionExplorer(widgets.VBox):
    """Inputs (8 + 8 by default) x k grid of latent reconstructions, KL per layer, model samples.

    ``datasets`` are keys of the checkpoint's shipped samples (default: the training set first,
    then every real dataset there, not the derived noise, constant or inverted sets);
    ``indices`` picks the inputs (``{dataset: [i, ...]}``) instead of drawing ``n_per_set`` at
    random (:meth:`set_inputs` does the same later).
    """

    def __init__(
        self,
        checkpoint: str = DEFAULT_CHECKPOINT,
        datasets: list[str] | None = None,
        n_per_set: int = 8,
        n_model_samples: int = 16,
        seed: int = 0,
        indices: Mapping[str, Sequence[int]] | None = None,
        prefetch: bool = True,
    ) -> None:
        lm = load_checkpoint(checkpoint)
        self.model = lm.model
        self.samples = load_shipped_samples(checkpoint)
        train_set = (lm.card.get("train_config") or {}).get("dataset")
        if datasets is None:
            real = [n for n in self.samples if n == train_set or is_comparison_set(n)]
            datasets = sorted(real, key=lambda n: (n != train_set, n))
        missing = [d for d in datasets if d not in self.samples]
        if missing:
            raise ValueError(
                f"no shipped samples for {missing}; available: {', '.join(self.samples)}"
            )
        self.datasets = list(datasets)
        self.n_per_set = n_per_set
        self.n_model_samples = n_model_samples
        self.L = self.model.n_layers
        self.rng = np.random.default_rng(seed)
        self._draws = 0
        self._recs: dict[str, LatentReconstructions] = {}
        self._grids: dict[tuple[str, int], object] = {}  # figure per (mode, k), these inputs
        self.prefetch = prefetch
        self._next: _NextInputs | None = None  # the next shuffle's inputs, computed ahead
        self._input_listeners: list = []  # on_inputs
        self._ahead_listeners: list = []  # on_ahead

        self.k_slider = with_class(
            widgets.IntSlider(
                value=self.L,
                min=0,
                max=self.L,
                description="columns up to k",
                style={"description_width": "110px"},
                layout=widgets.Layout(width="340px"),
            ),
            "hvae-recon-k-slider",
        )
        self.mode = with_class(
            widgets.ToggleButtons(
                options=list(MODES),
                value="mean",
                description="prior latents",
                tooltips=["conditional-prior means", "samples from the conditional priors"],
                style={"button_width": "80px"},
            ),
            "hvae-recon-mode",
        )
        self.shuffle = with_class(
            # width "auto": the label decides (the default 148 px cuts it off)
            widgets.Button(
                description="new random inputs", icon="random", layout=widgets.Layout(width="auto")
            ),
            "hvae-recon-shuffle",
        )
        self.resample = with_class(
            widgets.Button(description="new model samples", layout=widgets.Layout(width="auto")),
            "hvae-samples-new",
        )
        self.status = widgets.HTML()

        if indices is not None:
            self.images, self.labels = chosen_inputs(self.samples, indices)
        else:
            self.images, self.labels = pick_inputs(self.samples, self.datasets, n_per_set, self.rng)
        self.grid = FigureSlot(self._grid(), "hvae-recon-grid")
        self.kl = FigureSlot(self._kl(), "hvae-kl-fig")
        self.model_samples = FigureSlot(self._model_samples(), "hvae-samples-fig")

        self.k_slider.observe(lambda _c: self.redraw_grid(), "value")
        self.mode.observe(lambda _c: self.redraw_grid(), "value")
        self.shuffle.on_click(lambda _b: self.shuffle_inputs())
        self.resample.on_click(lambda _b: self.redraw_samples())

        wrap = {"flex_flow": "row wrap"}  # what does not fit beside goes below
        controls = widgets.HBox(
            [self.k_slider, self.mode, self.shuffle, self.status], layout=widgets.Layout(**wrap)
        )
        # beside the grid where there are 340 px left (the samples take 264), else below it;
        # the KL figure takes the column's width
        right = widgets.VBox(
            [
                self.kl.box,
                self.model_samples.box,
                self.resample,
            ],
            layout=widgets.Layout(flex="1 1 340px", max_width="760px"),
        )
        body = widgets.HBox(
            [self.grid.box, right], layout=widgets.Layout(align_items="flex-start", **wrap)
        )
        super().__init__([controls, body])
        self.add_class("hvae-recon-explorer")

    # ------------------------------------------------------------------------- compute
    def reconstructions(self) -> LatentReconstructions:
        """Reconstructions of the current inputs for every k in the current mode (cached)."""
        mode = self.mode.value
        if mode not in self._recs:
            x = to_tensor(self.images)
            self._recs[mode] = latent_reconstructions(self.model, x, mode=mode, seed=self._draws)
        return self._recs[mode]

    def _grid(self):
        """The grid for the current mode and k: built once per (mode, k) and set of inputs."""
        key = (self.mode.value, self.k_slider.value)
        if key not in self._grids:
            self._grids[key] = self._build_grid()
        return self._grids[key]

    def _build_grid(self):
        rec = first_columns(self.reconstructions(), self.k_slider.value)
        prior = "prior means" if rec.mode == "mean" else "prior samples"
        title = (
            f"Latent reconstructions<br><span style='font-size:12px'>{prior} below k; "
            "hover: log p(x|z)</span>"
        )
        return reconstruction_grid_figure(rec, labels=self.labels, title=title)

    def _kl(self):
        kl = {
            dataset_label(name): layer_kl(self.model, to_tensor(self.samples[name]))
            for name in self.datasets
        }
        n = len(next(iter(self.samples.values())))
        title = (
            "KL of each latent layer (eq. 4)<br>"
            f"<span style='font-size:12px'>{n} shipped images per set</span>"
        )
        fig = kl_figure(kl, title=title)
        # no fixed width: the figure takes its column's (title on two lines, never cut)
        fig.update_layout(height=330, margin={"l": 60, "r": 10, "t": 70, "b": 40})
        return fig

    def _model_samples(self):
        gen = torch.Generator().manual_seed(1000 + self._draws)
        x = self.model.sample(self.n_model_samples, generator=gen)
        # 2 px per pixel, 4 columns (264 px): beside the grid in a notebook with its side panel
        # open (8 columns, 504 px, did not fit there)
        return samples_figure(
            x, ncols=4, title="Samples from the model<br>(means of p(x|z))", scale=2
        )

    # ------------------------------------------------------------------------ actions
    def _busy(self, text: str) -> None:
        self.status.value = status_html(text, "busy")

    def redraw_grid(self) -> None:
        self._busy("computing…")
        self.grid.show(self._grid())
        self.status.value = ""
        self._compute_ahead()

    def _compute_ahead(self) -> None:
        """Once the page is in use, draw the next shuffle's inputs and reconstruct them in a
        background thread (torch leaves the interpreter free meanwhile): a click on "new random
        inputs" then only swaps them in. The same draws, in the same order, as without."""
        mode, seed = self.mode.value, self._draws + 1
        if not self.prefetch or (self._next is not None and self._next.matches(mode, seed)):
            return
        if self._next is not None:  # drawn for another mode: the same inputs, recomputed
            images, labels = self._next.images, self._next.labels
        else:
            images, labels = pick_inputs(self.samples, self.datasets, self.n_per_set, self.rng)
        listeners, model = list(self._ahead_listeners), ahead_model(self.model)

        def compute() -> LatentReconstructions:
            recs = latent_reconstructions(model, to_tensor(images), mode=mode, seed=seed)
            for listener in listeners:  # e.g. the linked inspector's report of the first row
                try:
                    listener(images, labels)
                except Exception:  # noqa: BLE001 -- ahead of time only: done again when shown
                    pass
            return recs

        self._next = _NextInputs(images, labels, mode, seed, AHEAD.submit(compute))

    def shuffle_inputs(self) -> None:
        """Draw new random inputs from the shipped samples and recompute the grid."""
        self._draws += 1
        ahead, self._next = self._next, None
        self._recs.clear()
        self._grids.clear()
        if ahead is not None:
            self.images, self.labels = ahead.images, ahead.labels
            if ahead.matches(self.mode.value, self._draws):
                try:
                    self._recs[ahead.mode] = ahead.job.result()
                except Exception:  # noqa: BLE001 -- computed again below, where it raises
                    pass
        else:
            self.images, self.labels = pick_inputs(
                self.samples, self.datasets, self.n_per_set, self.rng
            )
        self.redraw_grid()
        self._inputs_changed()

    def set_inputs(self, indices: Mapping[str, Sequence[int]]) -> None:
        """Show the shipped images ``{dataset: [i, ...]}`` and recompute the grid."""
        self.images, self.labels = chosen_inputs(self.samples, indices)
        self._recs.clear()
        self._grids.clear()
        self.redraw_grid()
        self._inputs_changed()

    def on_ahead(self, listener) -> None:
        """Call ``listener(images, labels)`` in the background thread with the next shuffle's
        inputs, once reconstructed (to prepare what other views will show for them)."""
        self._ahead_listeners.append(listener)

    def on_inputs(self, listener) -> None:
        """Call ``listener(explorer)`` whenever the grid's rows (inputs) change."""
        self._input_listeners.append(listener)

    def _inputs_changed(self) -> None:
        for listener in self._input_listeners:
            listener(self)

    def redraw_samples(self) -> None:
        self._draws += 1
        self.model_samples.show(self._model_samples())


__all__ = ["ReconstructionExplorer", "chosen_inputs", "first_columns", "pick_inputs"]
