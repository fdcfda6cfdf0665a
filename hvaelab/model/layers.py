"""Deterministic building blocks: weight-normalised layers and residual stages (appendix B).

Weight normalisation (Salimans & Kingma, 2016) writes every weight as ``w = g * v / ||v||`` and is
initialised data-dependently: on a first batch each layer sets ``g`` and ``b`` so that its
pre-activations have zero mean and unit variance per output unit (table 4, "Initialization").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _WeightNorm(nn.Module):
    """Shared machinery: parameters v, g, b and the data-dependent initialisation."""

    _out_axis: int  # the output-channel axis of the weight
    ddi: bool = False  # set by :func:`data_dependent_init` while the init batch runs

    def _init_params(self, shape: tuple[int, ...], out_dim: int) -> None:
        self.out_dim = out_dim
        v = torch.empty(shape)
        nn.init.kaiming_normal_(v, nonlinearity="linear")
        self.v = nn.Parameter(v)
        self.g = nn.Parameter(torch.ones(out_dim))
        self.b = nn.Parameter(torch.zeros(out_dim))

    _cached: tuple[tuple, Tensor] | None = None  # (key, weight) of the last no-grad call

    def weight(self) -> Tensor:
        """``g * v / ||v||``. Without autograd (scoring, the dashboards) the result is kept
        until v or g change: their version counters, storage and dtype key the cache, so an
        optimizer step, ``load_state_dict`` or ``.to()`` recomputes it."""
        if torch.is_grad_enabled():
            return self._weight()
        v, g = self.v, self.g
        key = (v._version, g._version, v.data_ptr(), g.data_ptr(), v.dtype, v.device)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self._weight())
        return self._cached[1]

    def _weight(self) -> Tensor:
        dims = [d for d in range(self.v.dim()) if d != self._out_axis]
        norm = torch.linalg.vector_norm(self.v, dim=dims, keepdim=True).clamp_min(1e-12)
        shape = [1] * self.v.dim()
        shape[self._out_axis] = -1
        return self.v * (self.g.view(shape) / norm)

    def _apply_ddi(self, y: Tensor) -> Tensor:
        """Rescale g and b from the batch statistics of the output y (computed with g=1, b=0)."""
        dims = [d for d in range(y.dim()) if d != 1]
        mean = y.mean(dim=dims)
        std = y.std(dim=dims).clamp_min(1e-6)
        with torch.no_grad():
            self.g.copy_(self.g / std)
            self.b.copy_(-mean / std)
        shape = [1] * y.dim()
        shape[1] = -1
        return (y - mean.view(shape)) / std.view(shape)


class WNConv2d(_WeightNorm):
    """Same-padded weight-normalised convolution."""

    _out_axis = 0

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.stride, self.padding = stride, kernel // 2
        self._init_params((c_out, c_in, kernel, kernel), c_out)

    def forward(self, x: Tensor) -> Tensor:
        if self.ddi:
            with torch.no_grad():
                self.g.fill_(1.0)
                self.b.zero_()
                y = F.conv2d(x, self.weight(), None, self.stride, self.padding)
                return self._apply_ddi(y)
        return F.conv2d(x, self.weight(), self.b, self.stride, self.padding)


class WNConvTranspose2d(_WeightNorm):
    """Weight-normalised transposed convolution that upsamples exactly by ``stride``."""

    _out_axis = 1

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        if kernel % 2 == 1:  # "same"-style: output = input * stride
            self.stride, self.padding, self.output_padding = stride, kernel // 2, stride - 1
        elif kernel == stride:  # non-overlapping: output = input * stride
            self.stride, self.padding, self.output_padding = stride, 0, 0
        else:
            raise ValueError(
                f"transposed conv needs an odd kernel or kernel == stride, got {kernel}"
            )
        self._init_params((c_in, c_out, kernel, kernel), c_out)

    def forward(self, x: Tensor) -> Tensor:
        args = (self.stride, self.padding, self.output_padding)
        if self.ddi:
            with torch.no_grad():
                self.g.fill_(1.0)
                self.b.zero_()
                return self._apply_ddi(F.conv_transpose2d(x, self.weight(), None, *args))
        return F.conv_transpose2d(x, self.weight(), self.b, *args)


class WNLinear(_WeightNorm):
    """Weight-normalised dense layer."""

    _out_axis = 0

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self._init_params((d_out, d_in), d_out)

    def forward(self, x: Tensor) -> Tensor:
        if self.ddi:
            with torch.no_grad():
                self.g.fill_(1.0)
                self.b.zero_()
                return self._apply_ddi(F.linear(x, self.weight()))
        return F.linear(x, self.weight(), self.b)


@contextlib.contextmanager
def _ddi_mode(module: nn.Module) -> Iterator[None]:
    layers = [m for m in module.modules() if isinstance(m, _WeightNorm)]
    for m in layers:
        m.ddi = True
    try:
        yield
    finally:
        for m in layers:
            m.ddi = False


def data_dependent_init(module: nn.Module, *args: object, **kwargs: object) -> None:
    """Run ``module(*args, **kwargs)`` once with data-dependent initialisation switched on.

    Layers are initialised in the order the forward pass reaches them, each on the (already
    normalised) outputs of the layers before it.
    """
    with torch.no_grad(), _ddi_mode(module):
        module(*args, **kwargs)


class ResBlock(nn.Module):
    """``y = Conv(Act(Conv_s(Act(x)))) + shortcut(x)`` (appendix B).

    Following the appendix's text, the first convolution has stride 1 and the second stride
    ``stride``; with ``up=True`` the strided convolution is transposed and upsamples instead.
    A strided block's shortcut is a strided 1x1 convolution (nearest upsampling + 1x1 when up).
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1, up: bool = False) -> None:
        super().__init__()
        self.conv1 = WNConv2d(channels, channels, kernel, 1)
        if stride > 1 and up:
            self.conv2: nn.Module = WNConvTranspose2d(channels, channels, kernel, stride)
        else:
            self.conv2 = WNConv2d(channels, channels, kernel, stride)
        self.stride, self.up = stride, up
        self.shortcut = WNConv2d(channels, channels, 1, 1 if up else stride) if stride > 1 else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(F.relu(self.conv1(F.relu(x))))
        if self.shortcut is None:
            return y + x
        if self.up:
            x = F.interpolate(x, scale_factor=self.stride, mode="nearest")
        return y + self.shortcut(x)


class Stage(nn.Module):
    """A deterministic transformation: ``n_blocks`` residual blocks, the last one strided."""

    def __init__(self, channels: int, kernel: int, stride: int, n_blocks: int, up: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(channels, kernel, stride if j == n_blocks - 1 else 1, up)
            for j in range(n_blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Embed(nn.Module):
    """Map a tensor (an image, a conv latent or a dense latent) to a (C, r, r) feature map.

    Conv inputs at resolution ``r_in`` use a weight-normalised convolution with kernel = stride =
    r_in / r (down) or a transposed one (up); dense inputs use a linear layer and a reshape.
    """

    def __init__(self, in_shape: tuple[int, ...], channels: int, res: int) -> None:
        super().__init__()
        self.channels, self.res = channels, res
        if len(in_shape) == 1:
            self.kind = "dense"
            self.layer: nn.Module = WNLinear(in_shape[0], channels * res * res)
        else:
            c_in, r_in = in_shape[0], in_shape[1]
            if r_in >= res:
                if r_in % res:
                    raise ValueError(f"cannot embed resolution {r_in} into {res}")
                f = r_in // res
                self.kind = "conv"
                self.layer = (
                    WNConv2d(c_in, channels, 1, 1) if f == 1 else _StridedConv(c_in, channels, f)
                )
            else:
                if res % r_in:
                    raise ValueError(f"cannot embed resolution {r_in} into {res}")
                self.kind = "conv"
                self.layer = WNConvTranspose2d(c_in, channels, res // r_in, res // r_in)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "dense":
            return self.layer(x).view(x.shape[0], self.channels, self.res, self.res)
        return self.layer(x)


class _StridedConv(WNConv2d):
    """Non-overlapping f x f convolution with stride f (exact downsampling by f)."""

    def __init__(self, c_in: int, c_out: int, f: int) -> None:
        super().__init__(c_in, c_out, f, f)
        self.padding = 0
