"""The losses (``core/losses.py``): the Gram matrix, several styles mixed by weight,
a style per label region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_nst import stylize
from napari_nst.core import prepare
from napari_nst.core.vgg import VGGFeatures
from tests.helpers import TINY, smooth_painting


def _style_distance(image: np.ndarray, style: np.ndarray) -> float:
    """Gram-matrix (style) loss of ``image`` against ``style``, same random VGG19."""
    import torch

    from napari_nst.core import images
    from napari_nst.core.losses import StyleLoss
    from napari_nst.core.vgg import DEFAULT_STYLE_LAYERS, load_vgg19

    weights = load_vgg19("random")
    net = VGGFeatures(weights.convs, DEFAULT_STYLE_LAYERS, weights.preprocess)

    def features(array: np.ndarray) -> dict[str, torch.Tensor]:
        tensor = images.to_tensor(array.astype(np.float32) / 255, (48, 64), torch.device("cpu"))
        return net(tensor)

    with torch.no_grad():
        target, ours = features(style), features(image)
        return sum(float(StyleLoss(target[n])(ours[n])) for n in DEFAULT_STYLE_LAYERS)


def test_two_styles_blend_by_weight(content_rgb, style_rgb):
    other = smooth_painting()
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


def _guided_distance(image: np.ndarray, mask: np.ndarray, style: np.ndarray) -> float:
    """Style loss inside ``mask`` of ``image`` against ``style`` (same random VGG19)."""
    import torch

    from napari_nst.core import images
    from napari_nst.core.losses import GuidedStyleLoss, gram_matrix
    from napari_nst.core.vgg import DEFAULT_STYLE_LAYERS, load_vgg19

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
    other = smooth_painting()
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
