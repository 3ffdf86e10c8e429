"""Training a fast-style model: the loss falls, checkpoints load here and in pytorch/examples."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from torch import nn

from napari_nst import STOP
from napari_nst.core.fast import load_checkpoint
from napari_nst.core.training import iter_train

TINY = {"vgg": "random", "device": "cpu", "image_size": 32, "batch_size": 2}


@pytest.fixture
def photos(tmp_path, content_rgb):
    folder = tmp_path / "photos" / "class"  # ImageFolder-style nesting is searched too
    folder.mkdir(parents=True)
    for k in range(3):
        iio.imwrite(folder / f"photo{k}.png", np.roll(content_rgb, 7 * k, axis=1))
    return tmp_path / "photos"


def examples_transformer_net() -> nn.Module:
    """pytorch/examples' TransformerNet layout rebuilt from stock torch modules only.

    Loading into this (strict) is what ``neural_style.py eval`` does with a model.
    """

    def conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Module:
        layer = nn.Module()
        layer.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        layer.conv2d = nn.Conv2d(cin, cout, kernel, stride)
        return layer

    def residual() -> nn.Module:
        block = nn.Module()
        block.conv1, block.in1 = conv(128, 128, 3), nn.InstanceNorm2d(128, affine=True)
        block.conv2, block.in2 = conv(128, 128, 3), nn.InstanceNorm2d(128, affine=True)
        return block

    net = nn.Module()
    net.conv1, net.in1 = conv(3, 32, 9), nn.InstanceNorm2d(32, affine=True)
    net.conv2, net.in2 = conv(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
    net.conv3, net.in3 = conv(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
    for k in range(1, 6):
        setattr(net, f"res{k}", residual())
    net.deconv1, net.in4 = conv(128, 64, 3), nn.InstanceNorm2d(64, affine=True)
    net.deconv2, net.in5 = conv(64, 32, 3), nn.InstanceNorm2d(32, affine=True)
    net.deconv3 = conv(32, 3, 9)
    return net


def test_training_lowers_the_loss_and_writes_loadable_checkpoints(photos, style_rgb, tmp_path):
    output = tmp_path / "models" / "stripes.pth"
    steps = list(
        iter_train(
            style_rgb, photos, output, steps=12, checkpoint_every=5, learning_rate=1e-2, **TINY
        )
    )
    totals = [step.losses["total"] for step in steps]
    assert len(steps) == 12 and steps[-1].done
    assert np.mean(totals[-3:]) < 0.7 * np.mean(totals[:3])
    assert [step.saved is not None for step in steps].count(True) == 3  # 5, 10 and 12
    assert steps[-1].saved == str(output)

    state = torch.load(output, weights_only=True)  # a plain state dict, as eval expects
    examples_transformer_net().load_state_dict(state, strict=True)
    net = load_checkpoint(output)
    assert net(torch.rand(1, 3, 32, 32) * 255).shape == (1, 3, 32, 32)
    sidecar = json.loads(output.with_name("stripes.pth.json").read_text())
    assert sidecar["step"] == 12 and sidecar["params"]["content_weight"] == 1.0
    assert sidecar["vgg"]["source"] == "random"


def test_cancel_saves_the_current_weights(photos, style_rgb, tmp_path):
    output = tmp_path / "model.safetensors"
    steps = iter_train(style_rgb, photos, output, steps=100, checkpoint_every=50, **TINY)
    first = next(steps)
    final = steps.send(STOP)
    assert first.saved is None
    assert final.done and final.cancelled and final.saved == str(output)
    with pytest.raises(StopIteration):
        next(steps)
    from safetensors import safe_open

    with safe_open(str(output), framework="pt") as handle:
        record = json.loads(handle.metadata()["napari_nst"])
    assert record["step"] == 1
    load_checkpoint(output)


def test_a_stack_can_be_the_training_set(style_rgb, tmp_path):
    from napari_nst import train

    stack = np.random.default_rng(0).integers(0, 4000, (4, 40, 40), dtype=np.uint16)
    steps = list(iter_train(style_rgb, stack, tmp_path / "m.pth", steps=2, **TINY))
    assert steps[-1].saved and all(np.isfinite(s.losses["total"]) for s in steps)
    assert train(style_rgb, stack, tmp_path / "n.pth", steps=1, **TINY) == str(tmp_path / "n.pth")


@pytest.mark.parametrize(
    ("images", "output", "options", "message"),
    [
        ("missing-folder", "m.pth", {}, "training images not found"),
        ("empty", "m.pth", {}, "no images"),
        ("photos", "m.png", {}, "save the model as .pth or .safetensors"),
        ("photos", "m.pth", {"steps": 0}, "steps must be at least 1"),
        ("photos", "m.pth", {"epochs": 2}, "unknown training option(s) 'epochs'"),
    ],
)
def test_bad_training_requests(photos, style_rgb, tmp_path, images, output, options, message):
    (tmp_path / "empty").mkdir()
    source = photos if images == "photos" else tmp_path / images
    with pytest.raises(ValueError) as error:
        iter_train(style_rgb, source, tmp_path / output, **{**TINY, **options})
    assert message in str(error.value)
