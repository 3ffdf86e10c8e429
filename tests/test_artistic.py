"""Artistic control: style scale, colour preservation, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2yiq

from napari_nst import iter_stylize, stylize
from napari_nst.cli import main
from napari_nst.core import prepare
from napari_nst.core.provenance import RunRecord

TINY = {"vgg": "random", "device": "cpu", "size": 64}


def test_style_scale_sets_the_style_working_size(content_rgb, style_rgb):
    full = prepare(content_rgb, style_rgb, **TINY)
    coarse = prepare(content_rgb, style_rgb, style_scale=0.75, **TINY)
    assert full.style_shape == (46, 64) and coarse.style_shape == (34, 48)
    a = stylize(content_rgb, style_rgb, iterations=3, **TINY)
    b = stylize(content_rgb, style_rgb, iterations=3, style_scale=0.75, **TINY)
    assert a.shape == b.shape and not np.array_equal(a, b)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"style_scale": 0}, "style_scale must be greater than 0"),
        ({"style_scale": -1}, "style_scale must be a finite number"),
        ({"preserve_color": "hue"}, "preserve_color must be one of none, histogram, luminance"),
        ({"preserve_color": "luminance", "luminance_only": False}, "contradicts"),
        ({"early_stop_tol": float("nan")}, "early_stop_tol must be a finite number"),
        ({"early_stop_patience": 0}, "early_stop_patience must be at least 1"),
    ],
)
def test_bad_artistic_options(content_rgb, style_rgb, options, message):
    with pytest.raises(ValueError, match=message):
        prepare(content_rgb, style_rgb, **TINY | options)


def test_luminance_preservation_keeps_the_content_chroma(content_rgb, style_rgb):
    out = stylize(content_rgb, style_rgb, iterations=5, preserve_color="luminance", **TINY)
    chroma_in = rgb2yiq(content_rgb / 255.0)[..., 1:]
    chroma_out = rgb2yiq(out / 255.0)[..., 1:]
    # uint8 output: rounding to 1/255 bounds the agreement.
    assert np.abs(chroma_out - chroma_in).mean() < 1e-3 + 1 / 255
    free = stylize(content_rgb, style_rgb, iterations=5, **TINY)
    assert np.abs(rgb2yiq(free / 255.0)[..., 1:] - chroma_in).mean() > 0.01


def _smooth_painting() -> np.ndarray:
    """A style with a continuous, reddish palette (histogram matching needs more than
    the two values of a striped test pattern)."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(7).random((40, 56, 3)), (1.5, 1.5, 0))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.rint(noise * [0.9, 0.4, 0.2] * 255).astype(np.uint8)


def test_histogram_preservation_keeps_the_content_colour_statistics(content_rgb):
    style = _smooth_painting()
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


def test_early_stop_ends_a_converged_run_and_records_it(content_rgb, style_rgb):
    # Without style and TV terms, starting from the content is already the optimum.
    record = RunRecord({})
    steps = list(
        iter_stylize(
            content_rgb, style_rgb, iterations=50, style_weight=0, tv_weight=0,
            early_stop_tol=1e-3, early_stop_patience=3, **TINY,
        )
    )  # fmt: skip
    for step in steps:
        record.update(step)
    final = steps[-1]
    assert final.done and final.converged and not final.cancelled
    assert final.iteration < 50 and final.image is not None
    assert record.status == "done" and record.to_dict()["early_stop"] == [
        {"plane": 0, "iteration": final.iteration}
    ]


def test_early_stop_leaves_an_improving_run_alone(content_rgb, style_rgb):
    steps = list(iter_stylize(content_rgb, style_rgb, iterations=6, early_stop_tol=1e-6, **TINY))
    totals = [step.losses["total"] for step in steps]
    assert len(steps) == 6 and steps[-1].iteration == 6 and not steps[-1].converged
    assert totals[-1] < totals[0]


def test_cli_flags_reach_the_engine(tmp_path, content_rgb, style_rgb):
    import json

    import imageio.v3 as iio

    iio.imwrite(tmp_path / "c.png", content_rgb)
    iio.imwrite(tmp_path / "s.png", style_rgb)
    code = main([
        "stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(tmp_path / "o.png"),
        "--size", "64", "--iterations", "2", "--vgg", "random", "--device", "cpu",
        "--style-scale", "0.75", "--preserve-color", "histogram", "--early-stop-tol", "1e-4",
        "--early-stop-patience", "2", "--log-json", str(tmp_path / "log.json"), "--quiet",
    ])  # fmt: skip
    params = json.loads((tmp_path / "log.json").read_text())["params"]
    assert code == 0
    assert params["style_scale"] == 0.75 and params["preserve_color"] == "histogram"
    assert params["early_stop_tol"] == 1e-4 and params["early_stop_patience"] == 2


def _style_distance(image: np.ndarray, style: np.ndarray) -> float:
    """Gram-matrix (style) loss of ``image`` against ``style``, same random VGG19."""
    import torch

    from napari_nst.core import images
    from napari_nst.core.losses import StyleLoss
    from napari_nst.core.vgg import DEFAULT_STYLE_LAYERS, VGGFeatures, load_vgg19

    weights = load_vgg19("random")
    net = VGGFeatures(weights.convs, DEFAULT_STYLE_LAYERS, weights.preprocess)

    def features(array: np.ndarray) -> dict[str, torch.Tensor]:
        tensor = images.to_tensor(array.astype(np.float32) / 255, (48, 64), torch.device("cpu"))
        return net(tensor)

    with torch.no_grad():
        target, ours = features(style), features(image)
        return sum(float(StyleLoss(target[n])(ours[n])) for n in DEFAULT_STYLE_LAYERS)


def test_two_styles_blend_by_weight(content_rgb, style_rgb):
    other = _smooth_painting()
    run = {"iterations": 8, **TINY}
    first = stylize(content_rgb, style_rgb, **run)
    np.testing.assert_array_equal(
        stylize(content_rgb, [style_rgb, other], style_blend_weights=(1, 0), **run), first
    )
    second = stylize(content_rgb, other, **run)
    half = stylize(content_rgb, [style_rgb, other], style_blend_weights=(0.5, 0.5), **run)
    to_first = [_style_distance(image, style_rgb) for image in (first, half, second)]
    to_second = [_style_distance(image, other) for image in (first, half, second)]
    assert to_first[0] < to_first[1] < to_first[2]
    assert to_second[2] < to_second[1] < to_second[0]


def test_blend_weights_must_fit_the_styles(content_rgb, style_rgb):
    with pytest.raises(ValueError, match="has 3 value"):
        prepare(content_rgb, [style_rgb, style_rgb], style_blend_weights=(1, 1, 1), **TINY)
    with pytest.raises(ValueError, match="greater than 0"):
        prepare(content_rgb, [style_rgb, style_rgb], style_blend_weights=(0, 0), **TINY)
    with pytest.raises(ValueError, match="style image 2 "):
        prepare(content_rgb, [style_rgb, np.zeros((3, 3))], **TINY)


def test_cli_takes_several_styles(tmp_path, content_rgb, style_rgb):
    import json

    import imageio.v3 as iio

    iio.imwrite(tmp_path / "c.png", content_rgb)
    iio.imwrite(tmp_path / "a.png", style_rgb)
    iio.imwrite(tmp_path / "b.png", _smooth_painting())
    code = main([
        "stylize", str(tmp_path / "c.png"), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
        "-o", str(tmp_path / "o.png"), "--style-blend-weights", "0.7,0.3", "--size", "64",
        "--iterations", "2", "--vgg", "random", "--device", "cpu", "--quiet",
        "--log-json", str(tmp_path / "log.json"),
    ])  # fmt: skip
    log = json.loads((tmp_path / "log.json").read_text())
    assert code == 0 and log["params"]["style_blend_weights"] == [0.7, 0.3]
    assert log["sources"]["style"] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


def test_presets_fill_unset_options_and_style_strength_is_a_log_ratio():
    """Each unit of strength is √10 times more style: -2…2 spans the weights 0.1…10."""
    from napari_nst.core.options import DEFAULT_STYLE_WEIGHT, Options

    bold = Options.from_kwargs({"preset": "bold"})
    assert bold.style_weight == 3.0 and bold.tv_weight == 10.0 and bold.preset == "bold"
    assert Options.from_kwargs({"preset": "bold", "style_weight": 5.0}).style_weight == 5.0
    texture = Options.from_kwargs({"preset": "texture only"})
    assert texture.content_weight == 0 and texture.init == "noise"
    stronger = Options.from_kwargs({"style_strength": 1.0})
    assert stronger.style_weight == pytest.approx(10**0.5 * DEFAULT_STYLE_WEIGHT)
    assert Options.from_kwargs({"style_strength": 2}).style_weight == pytest.approx(10.0)
    assert Options.from_kwargs({"style_strength": -2}).style_weight == pytest.approx(0.1)
    for bad, message in [
        ({"preset": "loud"}, "preset must be one of"),
        ({"style_strength": 3}, "from -2 to 2"),
        ({"style_strength": "lots"}, "style_strength must be a number"),
        ({"style_strength": 1, "style_weight": 5.0}, "not both"),
        ({"ema": 1.0}, "between 0 and 1"),
        ({"padding": "wrap"}, "padding must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            Options.from_kwargs(bad)


def test_ema_returns_a_smoothed_iterate_and_padding_changes_the_borders(content_rgb, style_rgb):
    run = {"iterations": 6, **TINY}
    plain = stylize(content_rgb, style_rgb, **run).astype(float)
    smooth = stylize(content_rgb, style_rgb, ema=0.8, **run).astype(float)
    # The average of iterates that started at the content still weighs the start by
    # 0.8⁶ ≈ 0.26: it lags behind the optimiser, nearer the content.
    content = content_rgb.astype(float)
    assert not np.array_equal(plain, smooth)
    assert np.abs(smooth - content).mean() < 0.9 * np.abs(plain - content).mean()

    # Adam: L-BFGS's line search answers any change anywhere by branching into
    # another trajectory, which would hide that padding only acts at the border.
    run = TINY | {"iterations": 4, "optimizer": "adam"}
    zeros = stylize(content_rgb, style_rgb, **run).astype(float)
    reflect = stylize(content_rgb, style_rgb, padding="reflect", **run)
    border = np.zeros(zeros.shape[:2], bool)
    border[:2], border[-2:], border[:, :2], border[:, -2:] = True, True, True, True
    change = np.abs(reflect.astype(float) - zeros).mean(-1)
    assert change[border].mean() > change[~border].mean() > 0


def _guided_distance(image: np.ndarray, mask: np.ndarray, style: np.ndarray) -> float:
    """Style loss inside ``mask`` of ``image`` against ``style`` (same random VGG19)."""
    import torch

    from napari_nst.core import images
    from napari_nst.core.losses import GuidedStyleLoss, gram_matrix
    from napari_nst.core.vgg import DEFAULT_STYLE_LAYERS, VGGFeatures, load_vgg19

    weights = load_vgg19("random")
    net = VGGFeatures(weights.convs, DEFAULT_STYLE_LAYERS, weights.preprocess)
    cpu = torch.device("cpu")
    with torch.no_grad():
        ours = net(images.to_tensor(image.astype(np.float32) / 255, (48, 64), cpu))
        theirs = net(images.to_tensor(style.astype(np.float32) / 255, (46, 64), cpu))
        region = torch.from_numpy(mask.astype(np.float32))
        return sum(
            float(GuidedStyleLoss([region], [gram_matrix(theirs[n])])(ours[n]))
            for n in DEFAULT_STYLE_LAYERS
        )


def test_each_label_region_takes_its_own_style(content_rgb, style_rgb):
    other = _smooth_painting()
    labels = np.ones((48, 64), np.int32)
    labels[:, 32:] = 2
    out = stylize(
        content_rgb, [style_rgb, other], labels=labels, label_styles="1:0,2:1",
        iterations=15, **TINY,
    )  # fmt: skip
    left, right = labels == 1, labels == 2
    assert _guided_distance(out, left, style_rgb) < _guided_distance(out, left, other)
    assert _guided_distance(out, right, other) < _guided_distance(out, right, style_rgb)


def test_a_content_region_keeps_the_content(content_rgb, style_rgb):
    labels = np.zeros((48, 64), np.uint8)
    labels[:, 32:] = 3
    out = stylize(
        content_rgb, style_rgb, labels=labels, label_styles={3: "content"}, iterations=10,
        **TINY,
    ).astype(float)  # fmt: skip
    change = np.abs(out - content_rgb).mean(-1)
    assert change[:, 36:].mean() < 0.5 * change[:, :28].mean()


@pytest.mark.parametrize(
    ("labels", "label_styles", "message"),
    [
        (np.zeros((10, 10), np.int32), None, "must be the same size"),
        (np.zeros((48, 64), np.float32), None, "must be an integer image"),
        (np.zeros((48, 64), np.int32), "1:5", "maps to style 5"),
        (np.zeros((48, 64), np.int32), "1:blue", "use a style index or 'content'"),
        (np.zeros((48, 64), np.int32), "one", "must look like"),
        (None, {1: 0}, "label_styles needs labels"),
    ],
)
def test_bad_labels(content_rgb, style_rgb, labels, label_styles, message):
    with pytest.raises(ValueError, match=message):
        prepare(content_rgb, style_rgb, labels=labels, label_styles=label_styles, **TINY)


def test_cli_labels_and_label_styles(tmp_path, content_rgb, style_rgb):
    import json

    import imageio.v3 as iio

    labels = np.zeros((48, 64), np.uint8)
    labels[:, 32:] = 1
    iio.imwrite(tmp_path / "c.png", content_rgb)
    iio.imwrite(tmp_path / "s.png", style_rgb)
    iio.imwrite(tmp_path / "labels.png", labels)
    code = main([
        "stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(tmp_path / "o.png"),
        "--labels", str(tmp_path / "labels.png"), "--label-styles", "1:content", "--size", "64",
        "--iterations", "2", "--vgg", "random", "--device", "cpu", "--quiet",
        "--log-json", str(tmp_path / "log.json"),
    ])  # fmt: skip
    assert code == 0
    assert json.loads((tmp_path / "log.json").read_text())["params"]["label_styles"] == (
        "1:content"
    )
