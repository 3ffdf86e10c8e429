"""Devices, precision and memory (``core/devices.py``): bf16 where it is fast, runs
refused before the start with a size that fits, or released after running out."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

from napari_nst import iter_stylize, stylize
from napari_nst.core import devices
from napari_nst.core.devices import MemoryEstimateError, OutOfMemory
from napari_nst.core.training import iter_train
from napari_nst.core.vgg import (
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    VGGFeatures,
)
from tests.helpers import transformer_state


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


@pytest.fixture
def model(tmp_path) -> str:
    path = tmp_path / "model.pth"
    torch.save(transformer_state(), path)
    return str(path)


GATYS = {"vgg": "random", "device": "cpu", "iterations": 3}


LAYERS = DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS


def test_vgg_activations_are_counted_layer_by_layer():
    # Up to relu5_1: 128 + 64 + 64 + 32 + 2 conv channels per input pixel, 3 for the
    # input, and max-pooling indices (16 + 8 + 4 + 2 channels) at two floats each.
    assert devices.activation_floats(1, LAYERS) == pytest.approx(3 + 290 + 60)
    assert devices.activation_floats(1, LAYERS, "avg") == pytest.approx(3 + 290)
    assert devices.activation_floats(100, ("relu1_1",)) == pytest.approx(100 * (3 + 64))


def test_the_estimate_grows_with_pixels_history_and_channels():
    small = devices.gatys_bytes((256, 256), (256, 256), 3, LAYERS)
    large = devices.gatys_bytes((512, 512), (512, 512), 3, LAYERS)
    assert 3.5 < (large - devices.FIXED_BYTES) / (small - devices.FIXED_BYTES) < 4.5
    gray = devices.gatys_bytes((512, 512), (512, 512), 1, LAYERS)
    short = devices.gatys_bytes((512, 512), (512, 512), 3, LAYERS, history=5)
    assert gray < large and short < large
    # Each L-BFGS history pair holds two image copies.
    assert large - short == 4 * 2 * 45 * 3 * 512 * 512


def test_a_run_that_will_not_fit_is_refused_with_the_size_that_would(
    monkeypatch, content_rgb, style_rgb
):
    available = 400 * 2**20
    monkeypatch.setattr(devices, "available_bytes", lambda device: available)
    with pytest.raises(MemoryEstimateError, match=r"size \d+ px would fit") as caught:
        iter_stylize(content_rgb, style_rgb, size=2048, **GATYS)
    fitting = caught.value.fitting_size
    assert fitting is not None and fitting % devices.SIZE_STEP == 0
    assert "GiB on cpu" in str(caught.value) and "400 MiB is free" in str(caught.value)

    def needed(size: int) -> int:
        shape = (round(48 * size / 64), size)  # the content is 48×64
        style = (round(40 * size / 56), size)
        return devices.gatys_bytes(shape, style, 3, LAYERS)

    assert needed(fitting) <= available < needed(fitting + devices.SIZE_STEP)
    assert stylize(content_rgb, style_rgb, size=fitting, **GATYS | {"iterations": 1}).shape == (
        48,
        64,
        3,
    )


def test_nothing_fits_says_so(monkeypatch, content_rgb, style_rgb):
    monkeypatch.setattr(devices, "available_bytes", lambda device: 2**20)
    with pytest.raises(MemoryEstimateError, match="even the smallest size") as caught:
        iter_stylize(content_rgb, style_rgb, size=64, **GATYS)
    assert caught.value.fitting_size is None


class _Trap:
    """VGGFeatures.forward raises ``error`` once armed (or on call ``after + 1``), keeping
    weakrefs to the network and the image it saw."""

    def __init__(self, monkeypatch, error: BaseException, after: int | None = None) -> None:
        self.error, self.after, self.calls, self.armed = error, after, 0, False
        self.seen: list[weakref.ref] = []
        forward = VGGFeatures.forward

        def flaky(network, rgb):
            self.calls += 1
            if self.armed or (self.after is not None and self.calls > self.after):
                self.seen.extend([weakref.ref(network), weakref.ref(rgb)])
                raise self.error
            return forward(network, rgb)

        monkeypatch.setattr(VGGFeatures, "forward", flaky)


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        MemoryError("cannot allocate"),
    ],
    ids=["cuda-oom", "cpu-memoryerror"],
)
def test_running_out_mid_run_fails_clearly_frees_the_run_and_the_next_run_works(
    monkeypatch, content_rgb, style_rgb, error
):
    # Armed a few steps in: how many evaluations a line search needs (bf16 or not)
    # does not move the failure out of the run.
    trap = _Trap(monkeypatch, error)
    steps = iter_stylize(content_rgb, style_rgb, size=64, **GATYS | {"iterations": 50})
    done = []
    with pytest.raises(OutOfMemory, match="ran out of memory on cpu") as caught:
        for step in steps:
            done.append(step.iteration)
            trap.armed = len(done) == 3
    assert done == [1, 2, 3]
    assert "try a smaller size" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    del caught
    gc.collect()
    extractor, image = trap.seen
    assert extractor() is None and image() is None  # the network and the image are freed

    monkeypatch.undo()
    result = stylize(content_rgb, style_rgb, size=64, **GATYS)
    assert result.shape == content_rgb.shape and result.std() > 0


def test_fast_and_training_runs_report_running_out_too(monkeypatch, tmp_path, model, content_rgb):
    from napari_nst.core import fast

    monkeypatch.setattr(fast, "_infer", lambda net, batch: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(OutOfMemory, match="leave tile on auto"):
        stylize(content_rgb, method="fast", checkpoint=model, device="cpu")
    monkeypatch.undo()
    assert stylize(content_rgb, method="fast", checkpoint=model, device="cpu").dtype == (np.uint8)

    photos = np.stack([content_rgb] * 2)
    _Trap(monkeypatch, torch.OutOfMemoryError("out of memory"), after=3)
    steps = iter_train(
        content_rgb, photos, tmp_path / "model.pth", vgg="random", device="cpu",
        image_size=32, batch_size=1, steps=10, checkpoint_every=1,
    )  # fmt: skip
    with pytest.raises(OutOfMemory, match="smaller batch size"):
        for _ in steps:
            pass
    assert (tmp_path / "model.pth").is_file()  # the checkpoint before the failure stays


def test_an_untiled_fast_run_too_big_for_memory_is_refused(monkeypatch, model):

    monkeypatch.setattr(devices, "available_ram", lambda: 500 * 2**20)  # 400 MiB usable
    image = np.zeros((1024, 1024), np.uint8)
    image[::2] = 255
    with pytest.raises(MemoryEstimateError, match="untiled 1024×1024 run"):
        iter_stylize(image, method="fast", checkpoint=model, tile=0, device="cpu")
    # On auto, tiles bound the memory and the same image is accepted.
    iter_stylize(image, method="fast", checkpoint=model, device="cpu").close()


def test_an_inference_copy_is_cast_frozen_and_channels_last_and_the_original_untouched():
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout(0.5)).train()
    copy = devices.inference_copy(network, torch.device("cpu"), "bf16")
    weight = copy[0].weight
    assert weight.dtype == torch.bfloat16 and not weight.requires_grad and not copy.training
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert network.training and network[0].weight.dtype == torch.float32
    assert network[0].weight.requires_grad
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(copy(x.bfloat16()).float(), network.eval()(x), atol=0.05)
    assert devices.dtype_of("fp32") == torch.float32
