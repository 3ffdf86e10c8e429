"""``napari-nst stylize``: files in, image and JSON record out, exit codes as documented."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from napari_nst.cli import main

FAST = ["--vgg", "random", "--size", "64", "--device", "cpu", "--quiet"]


def test_stylize_writes_the_image_and_a_json_record_whose_losses_fall(files, content_rgb):
    content, style, tmp = files
    out, log = tmp / "out.png", tmp / "run.json"
    code = main(["stylize", str(content), str(style), "-o", str(out), "--iterations", "15",
                 "--log-json", str(log), *FAST])  # fmt: skip
    assert code == 0
    image = iio.imread(out)
    assert image.shape == content_rgb.shape and image.dtype == np.uint8
    record = json.loads(log.read_text())
    assert {"params", "steps", "output", "device", "versions", "status"} <= set(record)
    assert record["status"] == "done" and record["device"] == "cpu"
    assert record["output"] == str(out)
    assert record["params"]["iterations"] == 15 and record["params"]["vgg"] == "random"
    assert "not an artistic result" in record["vgg"]["note"]
    totals = [step["losses"]["total"] for step in record["steps"]]
    assert len(totals) == 15 and totals[-1] < 0.5 * totals[0]
    assert [step["iteration"] for step in record["steps"]] == list(range(1, 16))
    assert {"torch", "numpy", "napari-nst"} <= set(record["versions"])


def test_gray_16bit_content_and_tiff_output(tmp_path, style_rgb):
    gray = np.random.default_rng(0).integers(0, 4000, (40, 50), dtype=np.uint16)
    content, style, out = tmp_path / "mri.tif", tmp_path / "style.png", tmp_path / "out.tif"
    iio.imwrite(content, gray)
    iio.imwrite(style, style_rgb)
    assert main(["stylize", str(content), str(style), "-o", str(out), "--iterations", "2",
                 *FAST]) == 0  # fmt: skip
    result = iio.imread(out)
    assert result.shape == (40, 50) and result.dtype == np.uint16  # the content's own dtype
    assert result.min() > 0 and result.max() <= gray.max()
    colour = tmp_path / "colour.tif"
    assert main(["stylize", str(content), str(style), "-o", str(colour), "--iterations", "1",
                 "--no-luminance-only", *FAST]) == 0  # fmt: skip
    result = iio.imread(colour)
    assert result.shape == (40, 50, 3) and result.dtype == np.float32


def test_tiff_stack_round_trip_keeps_shape_and_dtype(tmp_path, style_rgb):
    import tifffile

    z, y, x = np.mgrid[0:3, 0:48, 0:40]
    volume = (1000 + 800 * np.sin(x / 4.0 + z) * np.cos(y / 5.0)).astype(np.uint16)
    content, style, out = tmp_path / "vol.tif", tmp_path / "style.png", tmp_path / "out.tif"
    tifffile.imwrite(content, volume, photometric="minisblack")
    iio.imwrite(style, style_rgb)
    log = tmp_path / "run.json"
    args = [
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        "--stack",
        "all",
        "--iterations",
        "2",
        "--contrast-limits",
        "300,1700",
        "--log-json",
        str(log),
        *FAST,
    ]
    assert main(args) == 0  # fmt: skip
    result = tifffile.imread(out)
    assert result.shape == volume.shape and result.dtype == np.uint16
    assert result.min() >= 300 and result.max() <= 1700  # the window, in the source's units
    assert all(result[k].std() > 0 for k in range(3))
    record = json.loads(log.read_text())
    assert record["planes"] == {"done": 3, "total": 3} and len(record["steps"]) == 6
    assert record["output"] == str(out)
    assert record["result"] == {"shape": [3, 48, 40], "dtype": "float32"}  # before the file


def test_tiffs_are_read_as_napari_shows_them(tmp_path):
    import tifffile
    from napari_builtins.io import imread as napari_imread

    from napari_nst.core.files import read_image

    rng = np.random.default_rng(1)
    # A 3-slice volume written without photometric: tifffile stores it as planar RGB
    # (axes SYX); napari shows 3 planes, so do we. Likewise 4 slices (not RGBA).
    volume = rng.integers(0, 255, (3, 20, 30), dtype=np.uint8)
    with pytest.warns(DeprecationWarning):  # tifffile's own warning about guessing
        tifffile.imwrite(tmp_path / "volume.tif", volume)
    with tifffile.TiffFile(tmp_path / "volume.tif") as tif:
        assert tif.series[0].axes == "SYX"
    four = rng.integers(0, 4095, (4, 20, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "four.tif", four)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    planar = np.moveaxis(rgb, -1, 0)
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    for name, expected in [
        ("volume.tif", volume), ("four.tif", four), ("rgb.tif", rgb), ("planar.tif", planar)
    ]:  # fmt: skip
        read = read_image(tmp_path / name)
        np.testing.assert_array_equal(read, expected)
        np.testing.assert_array_equal(read, napari_imread(str(tmp_path / name)))


def test_a_stack_result_refuses_a_2d_format_before_any_work(tmp_path, style_rgb, capsys):
    import tifffile

    volume = np.random.default_rng(0).random((2, 40, 40))
    tifffile.imwrite(tmp_path / "vol.tif", volume, photometric="minisblack")
    iio.imwrite(tmp_path / "style.png", style_rgb)
    code = main(["stylize", str(tmp_path / "vol.tif"), str(tmp_path / "style.png"),
                 "-o", str(tmp_path / "out.png"), "--stack", "all", *FAST])  # fmt: skip
    assert code == 2
    assert "write it as .tif" in _one_line_error(capsys)
    assert not (tmp_path / "out.png").exists()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("napari-nst: error: ")
    return err


@pytest.mark.parametrize(
    ("content", "style", "extra", "message"),
    [
        ("missing.png", "style.png", [], "content image not found"),
        ("content.png", "nope.jpg", [], "style image not found"),
        ("garbage.png", "style.png", [], "cannot read content image"),
        ("content.png", "style.png", ["--iterations", "0"], "iterations must be at least 1"),
        ("content.png", "style.png", ["--optimizer", "sgd"], "invalid choice: 'sgd'"),
        ("content.png", "style.png", ["--iterations", "many"], "invalid int value"),
        ("content.png", "style.png", ["--device", "cuda"], "CUDA was requested"),
        ("content.png", "style.png", ["--style-layers", "relu7_1"], "unknown VGG19 layer"),
        ("content.png", "style.png", ["--vgg", "no.pth"], "VGG19 file not found"),
        ("content.png", "style.png", ["--size", "8"], "size must be at least 32"),
    ],
)
def test_bad_input_or_option_exits_2_with_one_line(
    files, capsys, monkeypatch, content, style, extra, message
):
    tmp = files[2]
    monkeypatch.chdir(tmp)
    (tmp / "garbage.png").write_bytes(b"this is not an image")
    assert main(["stylize", content, style, "-o", "out.png", *FAST, *extra]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp / "out.png").exists()


def test_missing_argument_exits_2_with_one_line(capsys):
    assert main(["stylize", "content.png"]) == 2
    assert "the following arguments are required" in _one_line_error(capsys)


@pytest.mark.slow
def test_console_script_runs_and_reports_errors_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "napari_nst.cli", "stylize", "a.png", "b.png", "-o", "c.png"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "napari-nst: error: content image not found: a.png"


def test_missing_weights_error_is_one_line_even_with_the_progress_bar(files, capsys, torch_home):
    content, style, tmp = files
    args = ["stylize", str(content), str(style), "-o", str(tmp / "out.png"), "--size", "64"]
    assert main([*args, "--vgg", "torchvision"]) == 2
    error = _one_line_error(capsys)
    assert "could not download the VGG19" in error
    # Spoken in the command line's terms: the flag that helps, not Python's keyword.
    assert "use --vgg bundled" in error.lower() and "vgg='" not in error


def test_outputs_are_ordinary_files_readable_by_others(files):
    content, style, tmp = files
    out = tmp / "out.png"
    assert main(["stylize", str(content), str(style), "-o", str(out), "--iterations", "1",
                 *FAST]) == 0  # fmt: skip
    assert out.stat().st_mode & 0o777 == 0o666 & ~_current_umask()
    assert not list(tmp.glob(".napari-nst-*"))  # no temporary file left behind


def _current_umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current


def test_fast_method_needs_no_style_and_records_the_checkpoint(tmp_path, content_rgb):
    import hashlib

    import torch

    from tests.test_fast import transformer_state

    model, content = tmp_path / "candy.pth", tmp_path / "photo.png"
    torch.save(transformer_state(), model)
    iio.imwrite(content, content_rgb[:45, :61])
    out, log = tmp_path / "out.png", tmp_path / "run.json"
    args = [
        "stylize",
        str(content),
        "-o",
        str(out),
        "--method",
        "fast",
        "--checkpoint",
        str(model),
        "--device",
        "cpu",
        "--quiet",
        "--log-json",
        str(log),
    ]
    assert main(args) == 0  # fmt: skip
    assert iio.imread(out).shape == (45, 61, 3)
    record = json.loads(log.read_text())
    assert record["checkpoint"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert record["status"] == "done" and record["params"]["method"] == "fast"


def test_gatys_without_a_style_is_a_usage_error(files, capsys):
    content, _, out = files
    assert main(["stylize", str(content), "-o", str(out), *FAST]) == 2
    assert "STYLE is required" in _one_line_error(capsys)


def test_train_writes_a_model_the_fast_method_can_use(tmp_path, content_rgb, style_rgb):
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(2):
        iio.imwrite(photos / f"p{k}.png", np.roll(content_rgb, 9 * k, axis=0))
    iio.imwrite(tmp_path / "style.png", style_rgb)
    model, log = tmp_path / "stripes.pth", tmp_path / "train.json"
    args = [
        "train",
        "--style",
        str(tmp_path / "style.png"),
        "--images",
        str(photos),
        "-o",
        str(model),
        "--steps",
        "3",
        "--image-size",
        "32",
        "--batch-size",
        "2",
        "--vgg",
        "random",
        "--device",
        "cpu",
        "--quiet",
        "--log-json",
        str(log),
    ]
    assert main(args) == 0  # fmt: skip
    record = json.loads(log.read_text())
    assert len(record["steps"]) == 3 and record["output"] == str(model)
    out = tmp_path / "out.png"
    assert main(["stylize", str(photos / "p0.png"), "-o", str(out), "--method", "fast",
                 "--checkpoint", str(model), "--device", "cpu", "--quiet"]) == 0  # fmt: skip
    assert iio.imread(out).shape == content_rgb.shape
