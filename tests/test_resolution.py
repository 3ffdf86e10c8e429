"""Results at the size they were computed, said when enlarged; full size by going on;
how long a run takes; and the first commands a newcomer types."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from napari_nst import iter_stylize, stylize
from napari_nst.cli import main
from napari_nst.core import optim, prepare

TINY = {"vgg": "random", "device": "cpu", "iterations": 3}


def test_a_working_size_result_is_not_resampled_and_an_enlarged_one_is_recorded(
    content_rgb, style_rgb
):
    working = prepare(content_rgb, style_rgb, size=48, output_size="working", **TINY)
    assert working.shape == (36, 48) and working.rendering.shape == (36, 48, 3)
    assert "upsampled" not in working.info()
    result = stylize(content_rgb, style_rgb, size=48, output_size="working", **TINY)
    assert result.shape == (36, 48, 3) and result.dtype == np.uint8

    enlarged = prepare(content_rgb, style_rgb, size=48, **TINY)
    assert enlarged.rendering.shape == (48, 64, 3)
    assert enlarged.info()["upsampled"] == {"from": [36, 48], "to": [48, 64]}
    # At (or above) the content's own size nothing is enlarged.
    assert "upsampled" not in prepare(content_rgb, style_rgb, size=64, **TINY).info()


def test_gray_and_rgba_results_at_working_size_keep_their_kinds(content_rgb, style_rgb):
    gray = content_rgb.mean(-1).astype(np.uint16) * 200
    out = stylize(gray, style_rgb, size=48, output_size="working", **TINY)
    assert out.shape == (36, 48) and out.dtype == np.float32
    assert gray.min() <= out.min() and out.max() <= gray.max()  # the content's range
    alpha = np.full((48, 64, 1), 200, np.uint8)
    rgba = stylize(np.concatenate([content_rgb, alpha], -1), style_rgb, size=48,
                   output_size="working", **TINY)  # fmt: skip
    assert rgba.shape == (36, 48, 4) and (rgba[..., 3] == 200).all()  # alpha, resized


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


def test_full_size_goes_on_at_the_content_resolution_and_replays(content_rgb, style_rgb):
    from napari_nst.core.provenance import RunRecord

    job = prepare(content_rgb, style_rgb, size=48, output_size="working", **TINY)
    record = RunRecord(job.options.to_dict())
    for step in job.steps():
        record.update(step)
    assert job.full_size == 64
    full = job.continued(2, size=job.full_size)
    assert full.shape == (48, 64) and full.rendering.shape == (48, 64, 3)
    record.reopen(2, size=64)
    last = None
    for step in full.steps():
        record.update(step)
        last = step if step.image is not None else last
    assert last.iteration == 5 and last.image.shape == (48, 64, 3)
    assert record.to_dict()["continued"] == [{"after": 3, "iterations": 2, "size": 64}]
    # The record replays it: the 48 px run, then 2 iterations at 64 px.
    replayed = stylize(content_rgb, style_rgb, recipe=record.to_dict())
    np.testing.assert_array_equal(replayed, last.image)


def test_steps_estimate_the_time_left_from_the_first_iterations(content_rgb, style_rgb):
    steps = list(iter_stylize(content_rgb, style_rgb, size=64, **TINY | {"iterations": 6}))
    remaining = [step.remaining for step in steps]
    assert remaining[0] is None  # the first iteration (with the setup) is not timed
    assert all(r is not None and r >= 0 for r in remaining[1:-1])
    assert remaining[-1] is None  # the final step: nothing left
    assert remaining[1] > remaining[-2]


def test_a_long_run_is_announced_with_a_faster_size_in_the_clis_terms(files, capsys, monkeypatch):
    monkeypatch.setattr(optim, "LONG_RUN", 0.0)  # every run counts as long
    content, style, tmp = files
    args = ["stylize", str(content), str(style), "-o", str(tmp / "out.png"), "--size", "64",
            "--vgg", "random", "--iterations", "4"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "this run will take about" in err and "(64 px on cpu)" in err
    assert "size='" not in err  # spoken as the command line's flags


def test_the_long_run_note_names_a_smaller_size_and_its_time():
    note = optim.long_run_note(240, 384, "cpu")
    assert note == (
        "this run will take about 4 min (384 px on cpu); size='256' would take about "
        "1 min 40 s, a CUDA GPU seconds"
    )
    assert optim.long_run_note(30, 384, "cpu") is None


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


@pytest.mark.parametrize(
    ("message", "cli", "gui"),
    [
        (
            "could not download it. Use vgg='bundled' (no download)",
            "could not download it. Use --vgg bundled (no download)",
            "could not download it. Use vgg: bundled (no download)",
        ),
        ("use preset='texture only'", "use --preset 'texture only'", "use preset: texture only"),
        ("got 'lots'", "got 'lots'", "got 'lots'"),
    ],
)
def test_options_in_messages_are_spelled_for_where_they_are_read(message, cli, gui):
    from napari_nst._wording import for_cli, for_gui

    assert for_cli(message) == cli and for_gui(message) == gui
