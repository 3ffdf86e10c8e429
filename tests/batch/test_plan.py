"""``napari-nst batch`` in-process (``batch/plan.py``, ``batch/item.py``): naming,
sidecars, resume, recipes, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_nst import batch
from napari_nst.cli import main
from tests.helpers import (
    CLI_CPU,
    batch_inputs,
    batch_photo,
    one_line_error,
    read_image,
    sidecars,
    written_images,
)


# --- naming, outputs and sidecars (in-process) -------------------------------------
def test_outputs_mirror_inputs_like_stylize_with_sidecars(tmp_path, assets):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    iio.imwrite(data / "a.png", batch_photo(1))
    iio.imwrite(data / "sub" / "gray16.png", batch_photo(2, (40, 36), np.uint16))
    volume = np.stack([batch_photo(k, (40, 36), np.uint16) for k in range(3)])
    tifffile.imwrite(data / "sub" / "vol.tif", volume, photometric="minisblack")
    (data / "notes.txt").write_text("not an image")
    (data / ".hidden.png").write_bytes(b"ignored")
    loose = tmp_path / "loose.png"
    iio.imwrite(loose, batch_photo(3))
    out = tmp_path / "out"
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CLI_CPU]
    assert main(["batch", str(data), str(loose), "-o", str(out), *fast]) == 0
    assert sorted(written_images(out)) == ["a.png", "loose.png", "sub/gray16.png", "sub/vol.tif"]
    assert not list(out.rglob(".napari-nst-*"))  # no temporary file left behind
    # Each output is what `stylize` writes for that file: same shape, dtype and pixels.
    for name, source in [("a.png", data / "a.png"), ("sub/gray16.png", data / "sub/gray16.png")]:
        single = tmp_path / f"single{Path(name).suffix}"
        assert main(["stylize", str(source), "-o", str(single), *fast]) == 0
        np.testing.assert_array_equal(read_image(out / name), read_image(single))
    stack = tifffile.imread(out / "sub" / "vol.tif")
    assert stack.shape == volume.shape and stack.dtype == np.uint16  # one item, run whole
    record = json.loads((out / "sub" / "vol.tif.json").read_text())
    assert record["status"] == "done" and record["params"]["stack"] == "all"
    assert record["planes"] == {"done": 3, "total": 3}
    assert record["output"] == str(out / "sub" / "vol.tif")
    assert record["batch"]["recipe"]["options"]["stack"] == "auto"
    assert record["checkpoint"]["sha256"] == record["batch"]["recipe"]["checkpoint_sha256"]
    assert json.loads((out / "a.png.json").read_text())["params"]["stack"] == "slice"


def test_names_that_collide_or_overwrite_inputs_are_refused(tmp_path, assets, capsys):
    for folder in ("x", "y"):
        batch_inputs(tmp_path / folder, 1)
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CLI_CPU]
    args = ["batch", str(tmp_path / "x/img0.png"), str(tmp_path / "y/*.png"), "-o"]
    assert main([*args, str(tmp_path / "out"), *fast]) == 2
    assert "would both be written to" in one_line_error(capsys, last_line=True)
    assert main(["batch", str(tmp_path / "x"), "-o", str(tmp_path / "x"), *fast]) == 2
    assert "overwrite" in one_line_error(capsys, last_line=True)
    assert main(["batch", str(tmp_path / "nope/*.png"), "-o", str(tmp_path / "o"), *fast]) == 2
    assert "no images match" in one_line_error(capsys, last_line=True)
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_glob_names_are_relative_to_the_glob_folder(tmp_path, assets):
    batch_inputs(tmp_path / "d" / "p", 1)
    batch_inputs(tmp_path / "d" / "q", 1)
    found = batch.find_inputs([str(tmp_path / "d" / "**" / "*.png")], tmp_path / "out")
    assert [name for _, name in found] == ["p/img0.png", "q/img0.png"]


# --- resume --------------------------------------------------------------------------
def test_resume_redoes_exactly_what_is_not_finished(tmp_path, assets):
    data, out = batch_inputs(tmp_path / "in"), tmp_path / "out"
    run = {"method": "fast", "checkpoint": assets["checkpoint"], "device": "cpu"}
    first = batch.run_batch([str(data)], out, **run)
    assert len(first.done) == 6 and not first.failed and not first.skipped
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = batch.run_batch([str(data)], out, **run)
    assert again.results == [] and sorted(again.skipped) == sorted(first.done)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps  # untouched
    # A crash between image and sidecar, a failed record, a stale recipe, a lost image,
    # a changed input: each of those items (and only those) runs again.
    batch.sidecar(out / "img0.png").unlink()
    record = json.loads(batch.sidecar(out / "img1.png").read_text())
    batch.sidecar(out / "img1.png").write_text(json.dumps({**record, "status": "failed"}))
    record = json.loads(batch.sidecar(out / "img2.png").read_text())
    record["batch"]["recipe"]["options"]["tile"] = 512
    batch.sidecar(out / "img2.png").write_text(json.dumps(record))
    (out / "img3.png").unlink()
    iio.imwrite(data / "img4.png", batch_photo(40))
    resumed = batch.run_batch([str(data)], out, **run)
    assert sorted(resumed.done) == ["img0.png", "img1.png", "img2.png", "img3.png", "img4.png"]
    assert resumed.skipped == ["img5.png"]
    # Other options make other outputs; --overwrite redoes finished ones.
    assert len(batch.run_batch([str(data)], out, **run, size=48).done) == 6
    assert len(batch.run_batch([str(data)], out, **run, size=48, overwrite=True).done) == 6


def test_one_bad_input_is_reported_and_the_rest_continue(tmp_path, assets, capsys):
    data, out = batch_inputs(tmp_path / "in", 3), tmp_path / "out"
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CLI_CPU]
    assert main(["batch", str(data), "-o", str(out), *fast]) == 1
    err = capsys.readouterr().err
    assert "broken.png: cannot read content image" in err and "1 of 4 item(s) failed" in err
    assert "Traceback" not in err
    assert sorted(written_images(out)) == ["img0.png", "img1.png", "img2.png"]
    record = json.loads((out / "broken.png.json").read_text())
    assert record["status"] == "failed" and "cannot read" in record["message"]
    iio.imwrite(data / "broken.png", batch_photo(7))  # repaired: only it runs on the re-run
    report = batch.run_batch(
        [str(data)], out, method="fast", checkpoint=assets["checkpoint"], device="cpu"
    )
    assert report.done == ["broken.png"] and len(report.skipped) == 3


def test_ctrl_c_exits_130_and_keeps_finished_items(tmp_path, assets, monkeypatch, capsys):
    from napari_nst.batch import item

    data, out = batch_inputs(tmp_path / "in", 4), tmp_path / "out"
    real, calls = item._stylize, []

    def interrupted_at_the_third(job):
        calls.append(job.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(item, "_stylize", interrupted_at_the_third)
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CLI_CPU]
    assert main(["batch", str(data), "-o", str(out), *fast]) == 130
    assert "interrupted after 2 item(s); run again to resume" in one_line_error(
        capsys, last_line=True
    )
    assert sorted(written_images(out)) == ["img0.png", "img1.png"]
    assert not batch.sidecar(out / "img2.png").exists()


@pytest.mark.slow
def test_a_killed_batch_resumes_only_the_missing_items(tmp_path, assets):
    """SIGKILL mid-batch: whatever was being written, resume runs exactly the rest."""
    data, out = batch_inputs(tmp_path / "in", 8), tmp_path / "out"
    opts = ["--vgg", assets["weights"], "--iterations", "30", "--size", "48", "--seed", "1"]
    opts += ["--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]
    command = [sys.executable, "-m", "napari_nst.cli", "batch", str(data), "--style",
               assets["style"], "-o", str(out), *opts, *CLI_CPU]  # fmt: skip
    child = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while out.is_dir() is False or not sidecars(out):
        if child.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    finished = set(sidecars(out))
    assert 1 <= len(finished) < 8, "the batch should have been killed mid-way"
    assert main([*command[3:], "--threads", "1"]) == 0  # threads are not part of the recipe
    records = sidecars(out)
    assert len(records) == 8 and all(r["status"] == "done" for r in records.values())
    here = f":{os.getpid()}"
    reran = {name for name, record in records.items() if record["batch"]["worker"].endswith(here)}
    assert reran == {f"img{k}.png" for k in range(8)} - finished


# --- recipes -------------------------------------------------------------------------
def test_a_stylize_log_is_a_recipe_and_flags_override_it(tmp_path, assets):
    data, out = batch_inputs(tmp_path / "in", 2), tmp_path / "out"
    log = tmp_path / "run.json"
    args = ["stylize", str(data / "img0.png"), assets["style"], "-o", str(tmp_path / "one.png"),
            "--vgg", assets["weights"], "--iterations", "3", "--size", "40", "--seed", "2",
            "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "--tv-weight",
            "0.5", "--log-json", str(log), *CLI_CPU]  # fmt: skip
    assert main(args) == 0
    assert main(["batch", str(data), "--style", assets["style"], "-o", str(out),
                 "--recipe", str(log), "--iterations", "2", *CLI_CPU]) == 0  # fmt: skip
    params = json.loads((out / "img0.png.json").read_text())["params"]
    expected = json.loads(log.read_text())["params"] | {"iterations": 2}
    assert params == expected
    # A plain dict of options is a recipe too, and a sidecar's params are one.
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"method": "fast", "checkpoint": assets["checkpoint"]}))
    assert main(["batch", str(data), "-o", str(tmp_path / "o2"), "--recipe", str(plain),
                 *CLI_CPU]) == 0  # fmt: skip
    assert main(["batch", str(data), "-o", str(tmp_path / "o3"), "--recipe",
                 str(tmp_path / "o2" / "img1.png.json"), *CLI_CPU]) == 0  # fmt: skip
    assert written_images(tmp_path / "o2").keys() == written_images(tmp_path / "o3").keys()


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"iterations": "__import__('os').system('touch PWNED')"}, "iterations must be a whole"),
        ({"params": {"__class__": "os.system('touch PWNED')"}}, "unknown option(s) '__class__'"),
        ({"optimizer": "exec('import os')"}, "optimizer must be one of"),
        ({"vgg": "__import__('os').system('touch PWNED')"}, "VGG19 file not found"),
        ({"content_layers": {"$eval": "touch PWNED"}}, "content_layers must be a list"),
        ("import os; os.system('touch PWNED')", "is not valid JSON"),
        (["iterations", 3], "must be a JSON object"),
    ],
)
def test_a_recipe_is_data_never_code(tmp_path, assets, capsys, monkeypatch, recipe, message):
    monkeypatch.chdir(tmp_path)
    data, path = batch_inputs(tmp_path / "in", 1), tmp_path / "recipe.json"
    path.write_text(recipe if isinstance(recipe, str) else json.dumps(recipe))
    args = ["batch", str(data), "--style", assets["style"], "-o", "out", "--recipe", str(path)]
    assert main([*args, *CLI_CPU]) == 2
    assert message in one_line_error(capsys, last_line=True)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--style is required"),
        (["--method", "fast"], "--method fast needs --checkpoint"),
        (["--method", "fast", "--checkpoint", "no.pth"], "checkpoint not found"),
        (["--style", "missing.png"], "style image not found"),
        (["--style", "STYLE", "--iterations", "0"], "iterations must be at least 1"),
        (["--style", "STYLE", "--device", "cuda"], "CUDA was requested"),
        (["--style", "STYLE", "--workers", "0"], "--workers must be at least 1"),
        (["--style", "STYLE", "--workers", "2", "--scheduler", "x"], "not allowed with"),
    ],
)
def test_bad_batch_usage_exits_2_before_any_work(tmp_path, assets, capsys, extra, message):
    data = batch_inputs(tmp_path / "in", 1)
    extra = [assets["style"] if arg == "STYLE" else arg for arg in extra]
    assert main(["batch", str(data), "-o", str(tmp_path / "out"), *CLI_CPU, *extra]) == 2
    assert message in one_line_error(capsys, last_line=True)
    assert not (tmp_path / "out").exists()
