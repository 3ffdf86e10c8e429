"""Fast feed-forward transfer: published checkpoint layout, safe loading, tiling, stacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_nst import STOP, iter_stylize, stylize
from napari_nst.core import devices, fast
from napari_nst.core.fast import CheckpointError, load_checkpoint
from napari_nst.core.transformer import TransformerNet

CPU = {"method": "fast", "device": "cpu"}


def transformer_state(seed: int = 0, legacy: bool = True) -> dict[str, torch.Tensor]:
    """A seeded TransformerNet state dict in pytorch/examples' key layout.

    Instance-norm scales are perturbed and the last layer is scaled to mid-grey
    ± a wide range, so the untrained network paints a textured picture instead of
    near-black; ``legacy`` adds the running-stat keys old torch versions saved.
    """
    torch.manual_seed(seed)
    state = TransformerNet().state_dict()
    state["deconv3.conv2d.weight"] = state["deconv3.conv2d.weight"] * 200
    state["deconv3.conv2d.bias"] = torch.full((3,), 127.5)
    for key in list(state):
        parts = key.split(".")
        if parts[-2].startswith("in") and parts[-1] == "weight":
            state[key] = state[key] + 0.3 * torch.randn_like(state[key])
            if legacy:
                stem = key.removesuffix("weight")
                state[stem + "running_mean"] = torch.zeros_like(state[key])
                state[stem + "running_var"] = torch.ones_like(state[key])
    return state


@pytest.fixture
def checkpoint(tmp_path) -> str:
    path = tmp_path / "candy.pth"
    torch.save(transformer_state(), path)
    return str(path)


def _photo(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([np.sin(x / 9.0), np.cos(y / 13.0), np.sin((x + y) / 20.0)], axis=-1)
    return np.rint((rgb + 1) * 127.5).astype(np.uint8)


def test_published_layout_with_legacy_keys_loads_and_keeps_odd_sizes(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    assert "in1.running_mean" in state and "res3.in2.running_var" in state
    assert "conv1.conv2d.weight" in state and "deconv3.conv2d.bias" in state
    out = stylize(_photo(101, 203), checkpoint=checkpoint, **CPU)
    assert out.shape == (101, 203, 3) and out.dtype == np.uint8
    assert out.std() > 5  # a real picture, not a constant


def test_gray_rgba_and_stacks(checkpoint):
    gray = np.random.default_rng(0).integers(0, 4000, (45, 61), dtype=np.uint16)
    assert stylize(gray, checkpoint=checkpoint, **CPU).shape == (45, 61)  # luminance out
    colour = stylize(gray, checkpoint=checkpoint, luminance_only=False, **CPU)
    assert colour.shape == (45, 61, 3) and colour.dtype == np.float32
    rgba = np.random.default_rng(1).integers(0, 255, (40, 44, 4), dtype=np.uint8)
    out = stylize(rgba, checkpoint=checkpoint, **CPU)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    stack = np.random.default_rng(2).random((3, 40, 48)).astype(np.float32)
    steps = list(iter_stylize(stack, checkpoint=checkpoint, stack="all", **CPU))
    assert [s.index for s in steps] == [(0,), (1,), (2,)]  # one batch, a step per plane
    assert all(s.plane_done for s in steps) and steps[-1].done and steps[0].total == 1
    assert stylize(stack, checkpoint=checkpoint, stack="all", **CPU).shape == stack.shape
    steps = iter_stylize(stack, checkpoint=checkpoint, stack="all", **CPU)
    next(steps)
    final = steps.send(STOP)  # plane 0 is finished, planes 1 and 2 are not
    assert final.cancelled and final.done and final.plane_done and final.index == (0,)


def test_batched_stack_equals_planes_one_by_one(checkpoint):
    stack = np.random.default_rng(3).random((2, 40, 48)).astype(np.float32)
    run = {"checkpoint": checkpoint, "contrast_limits": (0, 1), **CPU}
    batched = stylize(stack, stack="all", **run)
    single = np.stack([stylize(plane, **run) for plane in stack])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_tiles_blend_without_seams_at_512_px(checkpoint):
    image = _photo(512, 512)
    whole = stylize(image, checkpoint=checkpoint, tile=0, output_range="unit", **CPU)
    tiled = stylize(image, checkpoint=checkpoint, tile=384, output_range="unit", **CPU)
    interior = np.abs(whole - tiled)[16:-16, 16:-16]
    assert interior.mean() < 1 / 255
    assert len(fast.plan((512, 512), 384)) == 4


def test_tiled_runs_report_each_tile_and_stop_keeps_nothing_half_done(checkpoint):
    steps = iter_stylize(_photo(512, 512), checkpoint=checkpoint, tile=384, **CPU)
    first = next(steps)
    assert (first.iteration, first.total, first.image) == (1, 4, None)
    final = steps.send(STOP)
    assert final.done and final.cancelled and final.image is None
    with pytest.raises(StopIteration):
        next(steps)


def test_auto_tiling_follows_the_memory_budget(checkpoint, monkeypatch):
    monkeypatch.setattr(devices, "memory_budget", lambda device: 600 * 600 * fast.BYTES_PER_PIXEL)
    small = fast.FastTransfer(_photo(500, 500), fast.Options(**CPU, checkpoint=checkpoint))
    large = fast.FastTransfer(_photo(700, 900), fast.Options(**CPU, checkpoint=checkpoint))
    assert small.tile is None and large.tile == 600


def test_tile_fades_cover_every_pixel():
    shape = (1000, 777)
    total = np.zeros(shape, np.float32)
    for tile in fast.plan(shape, 400):
        total[tile.slices] += fast.tile_fade(tile, shape)
        assert tile.top % 4 == 0 and tile.left % 4 == 0
    # Each pixel gets a full weight or a complementary cross-fade (more where the edge
    # tile's overlap is wider); the engine divides by the sum.
    assert total.min() > 0.99


def test_safetensors_checkpoints_give_the_same_result(checkpoint, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "candy.safetensors"
    save_file(transformer_state(legacy=False), str(path), metadata={"style": "candy"})
    image = _photo(48, 64)
    np.testing.assert_array_equal(
        stylize(image, checkpoint=str(path), **CPU), stylize(image, checkpoint=checkpoint, **CPU)
    )


def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "mosaic.pth"
    torch.save({"conv1.conv2d.weight": Exploit()}, path)
    with pytest.raises(CheckpointError, match="pickle that tries to run code is refused"):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="refused"):
        stylize(_photo(48, 64), checkpoint=str(path), **CPU)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            {"features.0.weight": torch.zeros(64, 3, 3, 3)},
            "62 missing key(s) (conv1.conv2d.weight",
        ),
        ({**transformer_state(legacy=False), "extra.weight": torch.zeros(1)}, "unexpected key"),
        (
            {**transformer_state(legacy=False), "in1.weight": torch.zeros(16)},
            "wrong shapes: in1.weight (16,) (expected (32,))",
        ),
        ([1, 2, 3], "is not a state dict (found list)"),
    ],
)
def test_wrong_files_get_a_message_naming_what_was_found(tmp_path, state, message):
    path = tmp_path / "model.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"checkpoint": "/nonexistent/candy.pth"}, "checkpoint not found"),
        ({"checkpoint": "x.pth", "tile": 100}, "tile must be 0 (never tile) or at least 384"),
    ],
)
def test_bad_fast_options(options, message):
    with pytest.raises(ValueError) as error:
        iter_stylize(_photo(48, 64), **CPU, **options)
    assert message in str(error.value)


def test_run_record_names_the_checkpoint_and_its_hash(checkpoint):
    import hashlib

    job = fast.FastTransfer(_photo(48, 64), fast.Options(**CPU, checkpoint=checkpoint))
    info = job.info()
    assert info["checkpoint"]["path"] == checkpoint
    assert (
        info["checkpoint"]["sha256"] == hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    )


def test_onnx_models_get_a_clear_message(tmp_path):
    path = tmp_path / "candy.onnx"
    path.write_bytes(b"onnx")
    with pytest.raises(CheckpointError, match="ONNX models are not supported yet"):
        load_checkpoint(path)


def test_cancel_is_seen_before_the_next_tile(checkpoint):
    job = fast.FastTransfer(_photo(512, 512), fast.Options(**CPU, checkpoint=checkpoint, tile=384))
    steps = job.steps()
    first = next(steps)
    job.cancel()
    final = next(steps)
    assert (first.iteration, final.iteration) == (1, 1)
    assert final.done and final.cancelled
    with pytest.raises(StopIteration):
        next(steps)
