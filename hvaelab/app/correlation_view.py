"""Layer correlation view (paper sec. 2, fig. 2): how alike are two models, layer by layer?

Two checkpoints (default: the FashionMNIST model and the one trained on MNIST) get the same
images (the shipped FashionMNIST and MNIST samples); the similarity of their representations in
every layer of the inference network is plotted bottom-up (:mod:`hvaelab.correlation`). Early,
low-level layers come out similar whatever the training data; later layers less so.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go

from ..checkpoint import CheckpointError
from ..correlation import MEASURES, PairMoments, check_same_architecture
from ..data import to_tensor
from .correlation_figures import correlation_figure
from .resources import (
    DEFAULT_CHECKPOINT,
    checkpoint_names,
    dataset_label,
    error_html,
    load_checkpoint,
    load_shipped_samples,
)
from .theme import TEMPLATE
from .widgets import FigureSlot, status_html, with_class

DEFAULT_B = ("mnist-testsplit", "fashionmnist-seed1")


def placeholder_figure(text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(template=TEMPLATE, height=300, xaxis_visible=False, yaxis_visible=False)
    return fig


def _same_architecture(a: str, b: str) -> bool:
    """Whether checkpoints ``a`` and ``b`` can be compared layer by layer (fig. 2)."""
    try:
        check_same_architecture(load_checkpoint(a).model, load_checkpoint(b).model)
    except (CheckpointError, OSError, ValueError):  # MissingResourceError is an OSError
        return False
    return True


class CorrelationView(widgets.VBox):
    """Two checkpoint dropdowns, N images per dataset, a compute button and the fig. 2 plot.

    ``samples_from`` names the checkpoint whose shipped samples are used (default
    ``checkpoint_a``); ``compute_on_load`` fills the figure right away (about a second for
    N = 64 on a CPU). The pair's :class:`~hvaelab.correlation.PairMoments` are kept per dataset
    (about 6 MB each for "hvae-grey" at N = 64), so fewer images than the largest N computed for
    the same two models are answered without running either model again.
    """

    def __init__(
        self,
        checkpoint_a: str = DEFAULT_CHECKPOINT,
        checkpoint_b: str | None = None,
        n_images: int = 64,
        datasets: list[str] | None = None,
        samples_from: str | None = None,
        measures: tuple[str, ...] = MEASURES,
        compute_on_load: bool = True,
    ) -> None:
        names = checkpoint_names()
        if checkpoint_a not in names:
            load_checkpoint(checkpoint_a)  # raises a clear MissingResourceError
        if checkpoint_b is None:  # the first other model of the same architecture
            others = [n for n in DEFAULT_B if n in names and n != checkpoint_a]
            others += [n for n in names if n != checkpoint_a and n not in others]
            others = [n for n in others if _same_architecture(checkpoint_a, n)]
            checkpoint_b = others[0] if others else checkpoint_a
        self.samples = load_shipped_samples(samples_from or checkpoint_a)
        if datasets is None:
            datasets = [d for d in ("fashionmnist", "mnist") if d in self.samples] or sorted(
                self.samples
            )
        self.datasets = datasets
        self.measures = measures
        n_max = min(len(self.samples[d]) for d in datasets)
        options = sorted(set(names) | {checkpoint_a, checkpoint_b})
        dd = {"style": {"description_width": "70px"}, "layout": widgets.Layout(width="300px")}
        self.a_select = with_class(
            widgets.Dropdown(options=options, value=checkpoint_a, description="model A", **dd),
            "hvae-corr-a",
        )
        self.b_select = with_class(
            widgets.Dropdown(options=options, value=checkpoint_b, description="model B", **dd),
            "hvae-corr-b",
        )
        self.n_slider = widgets.IntSlider(
            value=min(n_images, n_max),
            min=min(8, n_max),
            max=n_max,
            step=1,
            description="images/set",
            style={"description_width": "80px"},
        )
        self.button = with_class(
            widgets.Button(description="compute", button_style="primary", icon="play"),
            "hvae-corr-compute",
        )
        self.progress = widgets.IntProgress(
            value=0, min=0, max=len(datasets), layout=widgets.Layout(width="160px")
        )
        self.status = widgets.HTML()
        self.results: dict[str, dict[str, dict[str, float]]] = {}
        self._moments: tuple[tuple[str, str], dict[str, PairMoments]] | None = None
        self.slot = FigureSlot(placeholder_figure("press “compute”"), "hvae-corr-fig")
        self.button.on_click(lambda _b: self.compute())
        super().__init__(
            [
                widgets.HBox([self.a_select, self.b_select, self.n_slider]),
                widgets.HBox([self.button, self.progress, self.status]),
                self.slot.box,
            ]
        )
        self.add_class("hvae-corr-view")
        if compute_on_load:
            self.compute()

    def _pair_moments(self, a: str, b: str, n: int) -> dict[str, PairMoments]:
        """Each dataset's moments of models a and b on at least its first n images (kept)."""
        if self._moments is not None:
            pair, held = self._moments
            if pair == (a, b) and all(m.n >= n for m in held.values()):
                self.progress.value = self.progress.max
                return held
        self._moments = None  # one pair at a time: the memory stays bounded
        ma, mb = load_checkpoint(a).model, load_checkpoint(b).model
        held = {}
        for i, name in enumerate(self.datasets):
            self.status.value = status_html(
                f"{dataset_label(name)}: {n} images through both models…", "busy"
            )
            held[name] = PairMoments.of(ma, mb, to_tensor(self.samples[name][:n]))
            self.progress.value = i + 1
        self._moments = ((a, b), held)
        return held

    def compute(self) -> dict[str, dict[str, dict[str, float]]]:
        """Correlate the two models' layers on N images of each dataset and redraw."""
        a, b, n = self.a_select.value, self.b_select.value, self.n_slider.value
        self.button.disabled = True
        self.progress.value = 0
        try:
            moments = self._pair_moments(a, b, n)
            results = {
                dataset_label(name): moments[name].similarities(n, self.measures)
                for name in self.datasets
            }
        except (ValueError, FileNotFoundError) as e:
            self.status.value = error_html(e, "The correlation")
            return {}
        finally:
            self.button.disabled = False
        self.results = results
        title = f"Similarity of {a} and {b}, layer by layer ({n} images per set)"
        self.slot.show(correlation_figure(results, title=title))
        if a == b:
            preset = load_checkpoint(a).card.get("train_config", {}).get("preset", "PRESET")
            self.status.value = status_html(
                f"done: {a} compared with itself (no other model of its architecture is "
                "installed), so every layer matches itself. Fig. 2 compares two trainings: "
                f"e.g. `hvaelab train --preset {preset} --seed 1 --out checkpoints/{a}-seed1`.",
                "info",
            )
        else:
            self.status.value = status_html("done", "ok")
        return results


__all__ = ["CorrelationView", "placeholder_figure"]
