"""Input complexity (Serrà et al. 2020): PNG lengths and the IC score from a score table."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from hvaelab.complexity import png_bits
from hvaelab.config import get_preset
from hvaelab.data import binarize_fixed, load_dataset, to_tensor
from hvaelab.model import HVAE
from hvaelab.score_names import ScoreName
from hvaelab.scores import ood_scores, score_tensor


def test_png_length_orders_constant_real_and_noise(datasets):
    real = load_dataset(datasets.fashionmnist, "test").images[:1]
    noise = load_dataset("noise-bernoulli").images[:1]
    const = load_dataset("constant").images[:1]
    x = to_tensor(np.concatenate([const, real, noise]))
    bits = png_bits(binarize_fixed(x, seed=0).numpy(), binary=True)
    assert bits[0] < bits[1] < bits[2]
    # an incompressible 784-bit image costs at least its 784 bits
    assert bits[2] >= 784
    # 8-bit: uniform noise (8 bits of entropy a pixel) is the longest; Bernoulli noise (1 bit a
    # pixel) is shorter than a real grey image
    uni = to_tensor(load_dataset("noise-uniform").images[:1])
    grey = png_bits(torch.cat([x, uni]).numpy(), binary=False)
    assert grey[0] < grey[2] < grey[1] < grey[3] and grey[3] >= 784 * 8


def test_png_bits_checks_its_input():
    with pytest.raises(ValueError, match="shape"):
        png_bits(np.zeros((2, 28, 28)), binary=True)
    with pytest.raises(ValueError, match="0 or 1"):
        png_bits(np.full((1, 1, 28, 28), 0.5), binary=True)
    rgb = png_bits(np.random.default_rng(0).random((2, 3, 32, 32)), binary=False)
    assert rgb.shape == (2,) and np.all(rgb > 3 * 32 * 32 * 8 * 0.9)  # noise barely compresses


def test_ic_is_the_bound_minus_the_code_length_of_what_the_model_sees(datasets):
    torch.manual_seed(0)
    model = HVAE(get_preset("hvae-tiny")).eval()
    images = load_dataset(datasets.fashionmnist, "test").images[:8]
    table = score_tensor(model, images, n_samples=2)
    seen = binarize_fixed(to_tensor(images), seed=0).numpy()
    assert np.array_equal(table.columns["png_bits"], png_bits(seen, binary=True))
    s = ood_scores(table)
    c = table.columns
    assert np.allclose(s["IC"], -c["elbo"] - c["png_bits"] * math.log(2))
    assert np.allclose(s["IC_S"], -c["elbo_iw"] - c["png_bits"] * math.log(2))
    name = ScoreName.parse("IC")
    assert name.unit == "bits/dim" and name.tail == "two-sided"
    assert np.allclose(name.to_display(s["IC"], 784), s["IC"] / (784 * math.log(2)))


def _png(pil: Image.Image) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True, compress_level=9)
    return buf.getvalue()


def test_binary_images_are_coded_as_1_bit_pngs_and_scores_say_binary_for_bernoulli(datasets):
    """Catches input complexity ignoring ``binary`` (an 8-bit PNG of a Bernoulli model's
    binarized input), in png_bits or in the call from scores: the length must be the one of
    the image written directly by Pillow in mode "1" (IHDR bit depth 1), not the 8-bit one."""
    images = load_dataset(datasets.fashionmnist, "test").images[:4]
    seen = binarize_fixed(to_tensor(images), seed=0).numpy()  # what a Bernoulli model sees
    one_bit = [_png(Image.fromarray(img[0] > 0.5)) for img in seen]  # mode "1" from booleans
    eight_bit = [_png(Image.fromarray((img[0] * 255).astype(np.uint8), "L")) for img in seen]
    assert all(p[24] == 1 for p in one_bit) and all(p[24] == 8 for p in eight_bit)  # bit depth
    want1 = np.array([8.0 * len(p) for p in one_bit])
    want8 = np.array([8.0 * len(p) for p in eight_bit])
    assert (want1 < want8).all()
    np.testing.assert_array_equal(png_bits(seen, binary=True), want1)
    np.testing.assert_array_equal(png_bits(seen, binary=False), want8)
    torch.manual_seed(0)
    model = HVAE(get_preset("hvae-tiny")).eval()
    assert model.config.likelihood == "bernoulli"
    table = score_tensor(model, images, n_samples=1, lt=False, bounds=False)
    np.testing.assert_array_equal(table.columns["png_bits"], want1)
