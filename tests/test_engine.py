"""The Gatys engine on tiny images with random weights: numbers, not just "it ran"."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_nst import STOP, Step, iter_stylize, stylize
from napari_nst.core.vgg import LAYER_INDEX, VGGFeatures, canonical_layer_name, random_convs
from napari_nst.core.vgg import TORCHVISION_PREPROCESS as TV

TINY = {"vgg": "random", "size": 64, "device": "cpu"}


def test_total_loss_halves_within_20_lbfgs_iterations(content_rgb, style_rgb):
    steps = list(iter_stylize(content_rgb, style_rgb, iterations=20, tv_weight=0.01, **TINY))
    totals = [step.losses["total"] for step in steps]
    assert len(steps) == 20
    assert min(totals) <= 0.5 * totals[0]
    assert steps[-1].losses["style"] < 0.5 * steps[0].losses["style"]


def test_adam_also_lowers_the_loss(content_rgb, style_rgb):
    steps = list(iter_stylize(content_rgb, style_rgb, iterations=30, optimizer="adam", **TINY))
    assert steps[-1].losses["total"] < 0.8 * steps[0].losses["total"]


def test_steps_stream_losses_every_iteration_and_previews_on_schedule(content_rgb, style_rgb):
    steps = list(iter_stylize(content_rgb, style_rgb, iterations=7, preview_every=3, **TINY))
    assert [s.iteration for s in steps] == list(range(1, 8))
    assert all(set(s.losses) == {"content", "style", "tv", "total"} for s in steps)
    assert [s.image is not None for s in steps] == [0, 0, 1, 0, 0, 1, 1]
    assert [s.done for s in steps] == [False] * 6 + [True]
    assert all(isinstance(s, Step) and s.total == 7 for s in steps)
    assert steps[-1].elapsed >= steps[0].elapsed > 0


def test_terms_add_up_to_the_total(content_rgb, style_rgb):
    step = next(iter_stylize(content_rgb, style_rgb, iterations=2, init="noise", **TINY))
    losses = step.losses
    assert losses["total"] == pytest.approx(losses["content"] + losses["style"] + losses["tv"])
    assert losses["content"] > 0 and losses["style"] > 0 and losses["tv"] > 0


def test_same_seed_gives_identical_result_on_cpu(content_rgb, style_rgb):
    run = {"iterations": 5, "init": "noisy", "seed": 3, **TINY}
    first = stylize(content_rgb, style_rgb, **run)
    second = stylize(content_rgb, style_rgb, **run)
    other_seed = stylize(content_rgb, style_rgb, **{**run, "seed": 4})
    np.testing.assert_array_equal(first, second)
    assert np.abs(first.astype(int) - other_seed.astype(int)).max() > 0


def test_stop_ends_with_the_best_image_so_far(content_rgb, style_rgb):
    steps = iter_stylize(content_rgb, style_rgb, iterations=50, **TINY)
    seen = [next(steps) for _ in range(4)]
    final = steps.send(STOP)
    assert final.done and final.cancelled and final.iteration == 4
    assert final.image is not None and final.image.shape == content_rgb.shape
    # The best image may be a line-search trial point: evaluated, never worse.
    assert final.losses["total"] <= min(s.losses["total"] for s in seen)
    with pytest.raises(StopIteration):
        next(steps)


def test_result_has_the_content_shape_and_dtype_family(style_rgb):
    odd = np.random.default_rng(0).integers(0, 255, (37, 101, 3), dtype=np.uint8)
    assert stylize(odd, style_rgb, iterations=1, **{**TINY, "size": 128}).shape == (37, 101, 3)
    gray16 = np.random.default_rng(1).integers(0, 4000, (50, 60), dtype=np.uint16)
    run = {"iterations": 1, "contrast_limits": (100, 3000), **TINY}
    gray = stylize(gray16, style_rgb, **run)
    assert gray.shape == (50, 60) and gray.dtype == np.float32
    assert gray.min() >= 100 and gray.max() <= 3000  # the content's window, not [0, 1]
    colour = stylize(gray16, style_rgb, luminance_only=False, **run)
    assert colour.shape == (50, 60, 3) and colour.dtype == np.float32
    assert colour.min() >= 0 and colour.max() <= 1


def test_rgba_keeps_alpha_exactly(style_rgb):
    rgba = np.random.default_rng(2).integers(0, 255, (40, 40, 4), dtype=np.uint8)
    out = stylize(rgba, style_rgb, iterations=1, **TINY)
    assert out.shape == rgba.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])


def test_inputs_are_not_modified(content_rgb, style_rgb):
    content_before, style_before = content_rgb.copy(), style_rgb.copy()
    stylize(content_rgb, style_rgb, iterations=2, **TINY)
    np.testing.assert_array_equal(content_rgb, content_before)
    np.testing.assert_array_equal(style_rgb, style_before)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"iterations": 0}, "iterations must be at least 1"),
        ({"iterations": -5}, "iterations must be at least 1"),
        ({"size": 0}, "size must be at least 32"),
        ({"style_weight": -1.0}, "style_weight must be a finite number"),
        ({"content_weight": float("nan")}, "content_weight must be a finite number"),
        ({"optimizer": "sgd"}, "optimizer must be one of lbfgs, adam"),
        ({"pooling": "min"}, "pooling must be one of max, avg"),
        ({"style_layers": ["relu9_9"]}, "unknown VGG19 layer 'relu9_9'"),
        ({"style_layer_weights": [1, 2]}, "style_layer_weights has 2 value(s)"),
        ({"device": "tpu"}, "unknown device"),
        ({"device": "cuda"}, "CUDA was requested but no CUDA GPU is available"),
        ({"colour": "blue"}, "unknown option(s) 'colour'"),
        ({"vgg": "/nonexistent/vgg.pth"}, "VGG19 file not found"),
    ],
)
def test_bad_options_raise_readable_value_errors(content_rgb, style_rgb, options, message):
    run = {**TINY, **options}
    with pytest.raises(ValueError, match=None) as error:
        # Option problems surface at the call (file problems on first step), never later.
        next(iter_stylize(content_rgb, style_rgb, **run))
    assert message in str(error.value)


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


def test_truncation_stops_at_the_deepest_requested_layer():
    convs = random_convs(0)
    shallow = VGGFeatures(convs, ["relu2_1"], TV)
    default = VGGFeatures(convs, ["relu4_2", "relu1_1", "relu5_1"], TV)
    assert shallow.depth == LAYER_INDEX["relu2_1"] + 1 == 7
    assert default.depth == LAYER_INDEX["relu5_1"] + 1 == 30
    assert set(default(torch.rand(1, 3, 32, 32))) == {"relu4_2", "relu1_1", "relu5_1"}


def test_classic_and_keras_names_select_the_same_layers():
    assert canonical_layer_name("block5_conv2") == "relu5_2"
    assert canonical_layer_name("block1_conv1") == "relu1_1"
    assert canonical_layer_name("block3_pool") == "pool3"
    assert canonical_layer_name(" Conv4_2 ") == "conv4_2"
    convs, image = random_convs(0), torch.rand(1, 3, 32, 32)
    keras = VGGFeatures(convs, ["block4_conv2", "block2_conv1"], TV)(image)
    classic = VGGFeatures(convs, ["relu4_2", "relu2_1"], TV)(image)
    for name in ("relu4_2", "relu2_1"):
        torch.testing.assert_close(keras[name], classic[name])


def test_requested_conv_output_is_pre_activation():
    features = VGGFeatures(random_convs(0), ["conv1_1", "relu1_1"], TV)(torch.rand(1, 3, 32, 32))
    assert features["conv1_1"].min() < 0
    torch.testing.assert_close(features["relu1_1"], features["conv1_1"].clamp(min=0))


def test_avg_pooling_changes_the_features():
    convs, image = random_convs(0), torch.rand(1, 3, 32, 32)
    max_pooled = VGGFeatures(convs, ["relu3_1"], TV, pooling="max")(image)["relu3_1"]
    avg_pooled = VGGFeatures(convs, ["relu3_1"], TV, pooling="avg")(image)["relu3_1"]
    assert max_pooled.shape == avg_pooled.shape
    assert (max_pooled - avg_pooled).abs().mean() > 1e-3


def test_bf16_autocast_follows_the_fp32_loss_trajectory(content_rgb, style_rgb):
    # 32 px keeps emulated bf16 (CPUs without AVX-512 BF16) affordable.
    content, style = content_rgb[:, :48], style_rgb[:, :40]
    run = {"iterations": 8, "vgg": "random", "size": 32, "device": "cpu"}
    fp32 = [s.losses["total"] for s in iter_stylize(content, style, precision="fp32", **run)]
    bf16 = [s.losses["total"] for s in iter_stylize(content, style, precision="bf16", **run)]
    # Same starting point: only rounding differs. Later iterates branch (the line
    # search reacts to any perturbation), so the comparison is where they end up.
    assert bf16[0] == pytest.approx(fp32[0], rel=0.01)
    assert bf16[-1] == pytest.approx(fp32[-1], rel=0.15)
    assert bf16[-1] < 0.5 * bf16[0]


@pytest.mark.native_precision
def test_auto_precision_runs_in_bf16_on_a_cpu_with_native_bf16(content_rgb, style_rgb):
    from napari_nst.core import devices, prepare

    if not devices.bf16_is_fast(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16 (AVX-512 BF16 or AMX); bf16 would be emulated")
    run = {"iterations": 8, "vgg": "random", "size": 64, "device": "cpu"}
    job = prepare(content_rgb, style_rgb, **run)
    assert job.precision == "bf16"
    bf16 = [s.losses["total"] for s in job.steps()]
    fp32 = [
        s.losses["total"] for s in iter_stylize(content_rgb, style_rgb, precision="fp32", **run)
    ]
    assert bf16[0] == pytest.approx(fp32[0], rel=0.01)
    assert bf16[-1] == pytest.approx(fp32[-1], rel=0.15)
    assert bf16[-1] < 0.5 * bf16[0]


def test_the_environment_decides_what_auto_precision_means(monkeypatch):
    from napari_nst.core import devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "bf16_is_fast", lambda device: True)
    monkeypatch.setenv("NAPARI_NST_PRECISION", "fp32")
    assert devices.resolve_precision("auto", cpu) == "fp32"
    assert devices.resolve_precision("bf16", cpu) == "bf16"  # an explicit choice stands
    monkeypatch.setenv("NAPARI_NST_PRECISION", "half")
    with pytest.raises(ValueError, match="NAPARI_NST_PRECISION='half' is not a precision"):
        devices.resolve_precision("auto", cpu)


def test_auto_precision_uses_bf16_only_where_it_is_fast(monkeypatch):
    from napari_nst.core import devices

    cpu = torch.device("cpu")
    monkeypatch.delenv("NAPARI_NST_PRECISION")
    monkeypatch.setattr(devices, "bf16_is_fast", lambda device: False)
    assert devices.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(devices, "bf16_is_fast", lambda device: True)
    assert devices.resolve_precision("auto", cpu) == "bf16"
    assert devices.resolve_precision("fp32", cpu) == "fp32"


def test_gram_matrix_and_its_gradient_match_the_textbook_formula():
    from napari_nst.core.losses import gram_matrix

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 8, 5, 7, generator=generator, dtype=torch.float64)
    channels_last = features.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    plain = features.clone().requires_grad_(True)
    upstream = torch.randn(2, 8, 8, generator=generator, dtype=torch.float64)

    flat = plain.reshape(2, 8, 35).float()
    expected = torch.bmm(flat, flat.transpose(1, 2)) / (8 * 35)
    torch.testing.assert_close(gram_matrix(channels_last), expected)
    (gram_matrix(channels_last) * upstream.float()).sum().backward()
    (expected * upstream.float()).sum().backward()
    torch.testing.assert_close(channels_last.grad, plain.grad)


def test_previews_never_change_the_optimisation(style_rgb):
    """Rendering a preview must not clamp the iterate (working size = image size here)."""
    image = np.random.default_rng(9).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    run = {"iterations": 6, "init": "noise", "tv_weight": 0.0, **TINY}
    often = [s.losses["total"] for s in iter_stylize(image, style_rgb, preview_every=1, **run)]
    never = [s.losses["total"] for s in iter_stylize(image, style_rgb, preview_every=99, **run)]
    assert often == never


def test_cancel_inside_a_line_search_ends_within_one_evaluation(
    content_rgb, style_rgb, monkeypatch
):
    from napari_nst.core import optim, prepare

    job = prepare(content_rgb, style_rgb, iterations=50, **TINY)
    calls = []
    evaluate = optim.Objective.__call__

    def counting(self):
        calls.append(1)
        result = evaluate(self)
        if len(calls) == 3:  # the user clicks Cancel while the optimiser is evaluating
            job.cancel()
        return result

    monkeypatch.setattr(optim.Objective, "__call__", counting)
    steps = list(job.steps())
    assert len(calls) == 4  # the evaluation after the click raised instead of running
    final = steps[-1]
    assert final.done and final.cancelled and final.image is not None
    assert final.losses["total"] <= steps[0].losses["total"]


def test_cancel_before_the_first_step_ends_without_work(content_rgb, style_rgb):
    from napari_nst.core import prepare

    job = prepare(content_rgb, style_rgb, iterations=50, **TINY)
    job.cancel()  # e.g. clicked while the weights were still loading
    (final,) = list(job.steps())
    assert final.done and final.cancelled and final.image is None and final.iteration == 0
