"""A user's array in and the result out (``core/images.py``): gray and 16-bit data,
windows, NaNs, RGBA, stacks, colour preservation, results at the size they were computed."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2yiq

from napari_nst import iter_stylize, stylize
from napari_nst.core import prepare
from napari_nst.core.images import working_shape
from tests.helpers import TINY, TINY_UNSIZED, smooth_painting


def test_luminance_preservation_keeps_the_content_chroma(content_rgb, style_rgb):
    out = stylize(content_rgb, style_rgb, iterations=5, preserve_color="luminance", **TINY)
    chroma_in = rgb2yiq(content_rgb / 255.0)[..., 1:]
    chroma_out = rgb2yiq(out / 255.0)[..., 1:]
    # uint8 output: rounding to 1/255 bounds the agreement.
    assert np.abs(chroma_out - chroma_in).mean() < 1e-3 + 1 / 255
    free = stylize(content_rgb, style_rgb, iterations=5, **TINY)
    assert np.abs(rgb2yiq(free / 255.0)[..., 1:] - chroma_in).mean() > 0.01


def test_histogram_preservation_keeps_the_content_colour_statistics(content_rgb):
    style = smooth_painting()
    content = content_rgb.reshape(-1, 3) / 255.0

    def statistics(preserve_color: str) -> tuple[np.ndarray, np.ndarray]:
        # Real features (the bundled VGG19): the palette is what they carry.
        run = TINY | {"vgg": "bundled", "iterations": 60}
        out = stylize(content_rgb, style, preserve_color=preserve_color, **run)
        result = out.reshape(-1, 3) / 255.0
        return result.mean(0), result.std(0)

    mean, std = statistics("histogram")
    np.testing.assert_allclose(mean, content.mean(0), rtol=0.10)
    np.testing.assert_allclose(std, content.std(0), rtol=0.10)
    free_mean, free_std = statistics("none")
    assert np.abs(free_mean / content.mean(0) - 1).max() > 0.5  # the style's palette
    assert np.abs(free_std / content.std(0) - 1).max() > 0.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.full((40, 40), 7.0), "constant"),
        (np.full((40, 40), np.nan), "no finite values"),
        (np.zeros((40, 40, 2)), "expected a 2-D gray image"),
        (np.zeros((40, 40), np.complex64), "real numbers"),
        (np.zeros((4000, 20), np.uint8) + np.arange(20, dtype=np.uint8), "shorter side"),
        (np.arange(100, dtype=np.uint8).reshape(10, 10), "16 px on each side"),
    ],
)
def test_bad_images_raise_readable_value_errors(content, message, style_rgb):
    with pytest.raises(ValueError, match=message):
        iter_stylize(content, style_rgb, **TINY)


def test_a_working_size_result_is_not_resampled_and_an_enlarged_one_is_recorded(
    content_rgb, style_rgb
):
    working = prepare(content_rgb, style_rgb, size=48, output_size="working", **TINY_UNSIZED)
    assert working.shape == (36, 48) and working.rendering.shape == (36, 48, 3)
    assert "upsampled" not in working.info()
    result = stylize(content_rgb, style_rgb, size=48, output_size="working", **TINY_UNSIZED)
    assert result.shape == (36, 48, 3) and result.dtype == np.uint8

    enlarged = prepare(content_rgb, style_rgb, size=48, **TINY_UNSIZED)
    assert enlarged.rendering.shape == (48, 64, 3)
    assert enlarged.info()["upsampled"] == {"from": [36, 48], "to": [48, 64]}
    # At (or above) the content's own size nothing is enlarged.
    assert "upsampled" not in prepare(content_rgb, style_rgb, size=64, **TINY_UNSIZED).info()


def test_gray_and_rgba_results_at_working_size_keep_their_kinds(content_rgb, style_rgb):
    gray = content_rgb.mean(-1).astype(np.uint16) * 200
    out = stylize(gray, style_rgb, size=48, output_size="working", **TINY_UNSIZED)
    assert out.shape == (36, 48) and out.dtype == np.float32
    assert gray.min() <= out.min() and out.max() <= gray.max()  # the content's range
    alpha = np.full((48, 64, 1), 200, np.uint8)
    rgba = stylize(np.concatenate([content_rgb, alpha], -1), style_rgb, size=48,
                   output_size="working", **TINY_UNSIZED)  # fmt: skip
    assert rgba.shape == (36, 48, 4) and (rgba[..., 3] == 200).all()  # alpha, resized


def test_whole_uint16_stack_keeps_shape_and_window(volume, style_rgb):
    before = volume.copy()
    out = stylize(
        volume, style_rgb, stack="all", contrast_limits=(100, 3000), iterations=2, **TINY
    )
    assert out.shape == (3, 217, 181) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.min() >= 100 and out.max() <= 3000  # the window maps back to itself
    # Every plane was written: none is left at the fill value.
    assert all(out[k].std() > 0 for k in range(3))
    np.testing.assert_array_equal(volume, before)


def test_four_d_stacks_iterate_over_both_leading_axes(style_rgb):
    data = np.random.default_rng(0).random((2, 2, 40, 40)).astype(np.float32)
    steps = list(iter_stylize(data, style_rgb, stack="all", iterations=1, **TINY))
    assert [s.index for s in steps] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert stylize(data, style_rgb, stack="all", iterations=1, **TINY).shape == data.shape


def test_luminance_only_keeps_gray_gray_and_colour_modes_give_rgb(style_rgb):
    gray = np.random.default_rng(3).random((48, 48)).astype(np.float32)
    luminance = stylize(gray, style_rgb, iterations=2, **TINY)
    colour = stylize(gray, style_rgb, iterations=2, luminance_only=False, **TINY)
    assert luminance.shape == (48, 48) and colour.shape == (48, 48, 3)
    # Colour mode really takes the style's colours: channels differ.
    assert np.abs(colour[..., 0] - colour[..., 1]).mean() > 1e-3


def test_luminance_only_on_colour_content_keeps_the_content_chroma(content_rgb, style_rgb):
    def changes(out: np.ndarray) -> tuple[float, float]:
        before, after = rgb2yiq(content_rgb / 255.0), rgb2yiq(out / 255.0)
        chroma = np.abs(after[..., 1:] - before[..., 1:]).mean()
        return float(np.abs(after[..., 0] - before[..., 0]).mean()), float(chroma)

    luminance = stylize(content_rgb, style_rgb, iterations=3, luminance_only=True, **TINY)
    assert luminance.shape == content_rgb.shape and luminance.dtype == np.uint8
    luma_change, chroma_change = changes(luminance)
    assert luma_change > 0.01 and chroma_change < 0.002  # texture moved, colours stayed
    _, colour_chroma_change = changes(stylize(content_rgb, style_rgb, iterations=3, **TINY))
    assert colour_chroma_change > 0.02  # whereas a colour transfer repaints them


def test_gray_style_images_work(content_rgb):
    gray_style = np.random.default_rng(4).integers(0, 255, (40, 40), dtype=np.uint8)
    out = stylize(content_rgb, gray_style, iterations=2, **TINY)
    assert out.shape == content_rgb.shape


def test_output_range_unit_puts_gray_results_in_0_1(volume, style_rgb):
    run = {"iterations": 1, "contrast_limits": (100, 3000), **TINY}
    unit = stylize(volume[0], style_rgb, output_range="unit", **run)
    original = stylize(volume[0], style_rgb, **run)
    assert unit.dtype == np.float32 and unit.min() >= 0 and unit.max() <= 1
    np.testing.assert_allclose(original, 100 + unit * 2900, rtol=1e-5, atol=1e-2)


def test_float_rgba_in_unit_range_keeps_alpha(style_rgb):
    rgba = np.random.default_rng(5).random((40, 40, 4)).astype(np.float32)
    out = stylize(rgba, style_rgb, iterations=1, **TINY)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    unit = stylize(
        (rgba * 255).astype(np.uint8), style_rgb, iterations=1, output_range="unit", **TINY
    )
    assert unit.dtype == np.float32 and unit[..., 3].max() <= 1


def test_partial_nan_is_masked_and_reported_never_propagated(style_rgb):
    image = np.random.default_rng(6).random((48, 48)).astype(np.float32)
    image[:10, :10] = np.nan
    image[20, 20] = np.inf
    job = prepare(image, style_rgb, iterations=1, **TINY)
    result = None
    for step in job.steps():
        result = step.image
    assert np.isfinite(result).all()
    assert job.info()["non_finite_pixels"] == 101


def test_anisotropic_pixels_are_resized_in_physical_units():
    assert working_shape((40, 100), 128) == (51, 128)  # square pixels: aspect kept
    assert working_shape((40, 120), 120, spacing=(3.0, 1.0)) == (120, 120)
    assert working_shape((217, 181), 64, spacing=(1.0, 1.0)) == (64, 53)
    assert working_shape((100, 50), 64, spacing=(0.5, 2.0)) == (32, 64)


def test_anisotropic_spacing_changes_the_working_image_only(style_rgb):
    image = np.random.default_rng(7).random((40, 120)).astype(np.float32)
    job = prepare(image, style_rgb, iterations=1, spacing=(3, 1), **TINY)
    assert job.shape == (64, 64)
    assert stylize(image, style_rgb, iterations=1, spacing=(3, 1), **TINY).shape == (40, 120)


def _ramp(*shape: int, dtype=np.float32) -> np.ndarray:
    return np.arange(np.prod(shape)).reshape(shape).astype(dtype)


def _nan_plane() -> np.ndarray:
    data = _ramp(2, 40, 40)
    data[1] = np.nan
    return data


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        (_ramp(3, 0, 40, dtype=np.uint16), {"stack": "all"}, "empty"),
        (np.full((2, 40, 40), 9, np.uint16), {"stack": "all"}, "constant"),
        (_nan_plane(), {"stack": "all"}, "plane (1,) of the content image has no finite values"),
        (_ramp(3, 40, 40), {}, "stack='all'"),
        (_ramp(3, 40, 40), {}, "numpy.moveaxis(image, 0, -1)"),
        (_ramp(2, 3, 4, 40, 40), {"stack": "all"}, "at most 2 are supported"),
        (_ramp(2, 3, 4, 40, 40), {"stack": "all"}, "move it last"),
        (_ramp(2, 2, 2, 40, 40, 3), {"stack": "all"}, "3 stack axes"),
        (_ramp(40, 40), {"luminance_only": "yes"}, "luminance_only must be"),
        (_ramp(40, 40), {"output_range": "percent"}, "output_range must be one of"),
        (_ramp(40, 40), {"stack": "every"}, "stack must be one of slice, all"),
        (_ramp(40, 40), {"slice_weight": -1.0}, "slice_weight must be a finite number"),
        (_ramp(40, 40), {"spacing": (1.0, 0.0)}, "spacing must be two positive"),
    ],
)
def test_bad_scientific_inputs_give_clear_messages(content, options, message, style_rgb):
    before = content.copy()
    with pytest.raises(ValueError) as error:
        iter_stylize(content, style_rgb, **{**TINY, **options})
    assert message in str(error.value)
    np.testing.assert_array_equal(content, before)
