"""Fixtures of the batch tests."""

from __future__ import annotations

import imageio.v3 as iio
import pytest
import torch

from tests.helpers import batch_photo, transformer_state, vgg19_state_dict


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A synthetic fast model, a small random VGG19 file and a style image."""
    root = tmp_path_factory.mktemp("assets")
    torch.save(transformer_state(), root / "model.pth")
    first = {f"features.{index}.{part}" for index in (0, 2, 5, 7) for part in ("weight", "bias")}
    state = {k: v for k, v in vgg19_state_dict(seed=5).items() if k in first}
    torch.save(state, root / "vgg.pth")  # conv1_1 … conv2_2 only
    iio.imwrite(root / "style.png", batch_photo(9, (30, 30, 3)))
    return {
        "checkpoint": str(root / "model.pth"),
        "weights": str(root / "vgg.pth"),
        "style": str(root / "style.png"),
    }
