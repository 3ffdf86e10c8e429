"""The command line's universal style transfer: ``stylize --method wct/adain`` and
``train-decoder`` (tiny images; the shipped decoders over the bundled VGG19)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
from safetensors import safe_open

from napari_nst.cli import main
from napari_nst.core.networks import available_levels
from tests.helpers import CLI_CPU, one_line_error, stylize_logged


def test_wct_runs_from_the_cli_and_records_its_levels_and_decoders(files):
    image, log = stylize_logged(files, "wct", "--method", "wct", "--alpha", "0.6", *CLI_CPU)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert log["params"]["alpha"] == 0.6
    shipped = list(available_levels(None))
    assert log["levels"] == shipped[::-1] and log["decoders"]["levels"] == shipped
    assert all(len(f["decoder"]["sha256"]) == 64 for f in log["decoders"]["files"].values())
    assert log["iteration"] == len(shipped)


def test_adain_with_a_missing_decoder_folder_is_one_line(files, capsys):
    content, style, tmp = files
    args = ["stylize", str(content), str(style), "-o", str(tmp / "o.png"), "--method", "adain",
            "--decoders", str(tmp / "missing"), *CLI_CPU]  # fmt: skip
    assert main(args) == 2
    assert "decoders not found" in one_line_error(capsys)
    args[-5:-3] = ["--levels", "relu5_1"]
    assert main(args) == 2
    assert "no decoder for relu5_1" in one_line_error(capsys)


def test_train_decoder_writes_a_decoder_the_universal_methods_use(tmp_path, content_rgb, files):
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(2):
        iio.imwrite(photos / f"p{k}.png", np.roll(content_rgb, 9 * k, axis=0))
    decoder, log = tmp_path / "mine" / "relu1_1.safetensors", tmp_path / "train.json"
    assert main(["train-decoder", "--images", str(photos), "--level", "relu1_1",
                 "-o", str(decoder), "--steps", "3", "--image-size", "32", "--batch-size", "2",
                 "--checkpoint-every", "2", "--log-json", str(log), *CLI_CPU]) == 0  # fmt: skip
    record = json.loads(log.read_text())
    assert [s["iteration"] for s in record["steps"]] == [1, 2, 3]
    assert all({"pixel", "feature", "total", "psnr"} <= set(s["losses"]) for s in record["steps"])
    with safe_open(str(decoder), "pt") as handle:
        header = handle.metadata()
    assert header["level"] == "relu1_1" and json.loads(header["napari_nst"])["step"] == 3
    content, style, _ = files
    out = tmp_path / "o.png"
    assert main(["stylize", str(content), str(style), "-o", str(out), "--method", "adain",
                 "--decoders", str(decoder.parent), *CLI_CPU]) == 0  # fmt: skip
    assert iio.imread(out).shape == content_rgb.shape
