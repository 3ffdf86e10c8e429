"""Scientific images: gray and 16-bit data, windows, NaNs, RGBA, and whole stacks."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2yiq

from napari_nst import STOP, iter_stylize, stylize
from napari_nst.core import losses, prepare
from napari_nst.core.images import working_shape

TINY = {"vgg": "random", "size": 64, "device": "cpu"}


@pytest.fixture
def volume() -> np.ndarray:
    """A uint16 'MRI' of 3 slices, 217 × 181 like a BrainWeb slice, values 0–4000."""
    z, y, x = np.mgrid[0:3, 0:217, 0:181]
    head = ((y - 108) / 95.0) ** 2 + ((x - 90) / 80.0) ** 2 < 1
    texture = 1500 + 1000 * np.sin(x / 6.0 + z) * np.cos(y / 9.0)
    return np.where(head, texture + 500 * z, 20).astype(np.uint16)


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


def test_stack_steps_count_over_the_run_and_name_their_plane(volume, style_rgb):
    steps = list(iter_stylize(volume, style_rgb, stack="all", iterations=3, **TINY))
    assert [s.iteration for s in steps] == list(range(1, 10))
    assert {s.total for s in steps} == {9}
    assert [s.index for s in steps] == [(0,)] * 3 + [(1,)] * 3 + [(2,)] * 3
    assert [s.plane_done for s in steps] == [False, False, True] * 3
    assert [s.done for s in steps] == [False] * 8 + [True]
    assert {s.planes for s in steps} == {3}
    assert "slice" in steps[-1].losses and steps[0].losses["slice"] == 0
    assert steps[-1].losses["slice"] > 0  # later planes feel their neighbour


def test_style_targets_are_computed_once_per_run(volume, style_rgb, monkeypatch):
    built = []

    class CountingStyleLoss(losses.StyleLoss):
        def __init__(self, features):
            built.append(features.shape)
            super().__init__(features)

    monkeypatch.setattr(losses, "StyleLoss", CountingStyleLoss)
    monkeypatch.setattr(losses, "_CACHE", type(losses._CACHE)())  # empty cache
    list(iter_stylize(volume, style_rgb, stack="all", iterations=1, **TINY))
    assert len(built) == 5  # one per style layer, not one per layer and plane
    list(iter_stylize(volume, style_rgb, stack="all", iterations=1, **TINY))
    assert len(built) == 5  # the next run with the same style reuses them (batch items)


def test_stop_in_a_stack_keeps_the_finished_planes(volume, style_rgb):
    steps = iter_stylize(volume, style_rgb, stack="all", iterations=2, **TINY)
    seen = [next(steps) for _ in range(3)]  # plane 0 done, plane 1 started
    final = steps.send(STOP)
    assert seen[1].plane_done and seen[1].index == (0,)
    assert final.done and final.cancelled and not final.plane_done
    assert final.index == (1,) and final.image is not None
    with pytest.raises(StopIteration):
        next(steps)


def test_stop_at_the_step_that_finishes_a_plane_counts_that_plane(volume, style_rgb):
    from napari_nst.core.provenance import RunRecord

    record = RunRecord({})
    steps = iter_stylize(volume, style_rgb, stack="all", iterations=2, **TINY)
    for step in steps:
        record.update(step)
        if step.plane_done:
            break
    final = steps.send(STOP)
    record.update(final)
    assert final.cancelled and final.done and final.plane_done and final.index == (0,)
    assert record.planes == {"done": 1, "total": len(volume)}
    assert record.status == "cancelled"


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


def test_stack_runs_flicker_less_than_independent_slices(style_rgb):
    """Acceptance: neighbouring-slice MAD drops by at least 30 % (numbers in the note)."""
    rng = np.random.default_rng(8)
    y, x = np.mgrid[0:48, 0:48] / 48.0
    volume = np.stack(
        [np.sin(7 * x + 0.15 * k) * np.cos(5 * y) + rng.normal(0, 0.05, x.shape) for k in range(4)]
    ).astype(np.float32)
    run = {"iterations": 8, "contrast_limits": (-1.2, 1.2), "output_range": "unit", **TINY}
    independent = np.stack([stylize(plane, style_rgb, **run) for plane in volume])
    stacked = stylize(volume, style_rgb, stack="all", **run)

    def mad(stack: np.ndarray) -> float:
        return float(np.abs(np.diff(stack, axis=0)).mean())

    assert mad(stacked) <= 0.7 * mad(independent)
