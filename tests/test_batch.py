"""``napari-nst batch``: naming, sidecars, resume, recipes, failures, and Dask workers.

The cluster tests share one module-scoped ``LocalCluster`` (2 worker processes, 1
thread each, on 127.0.0.1, no dashboard) that is closed, workers and all, after
the module. Results must be identical in-process and on workers: torch's CPU
results can depend on the thread count (Gatys through L-BFGS does, by a pixel
here and there), so both sides run with ``threads=1``.
"""

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
import torch

from napari_nst import batch
from napari_nst.cli import main
from tests.conftest import vgg19_state_dict
from tests.dask_cluster import child_pids, local_client, new_children
from tests.test_fast import transformer_state

CPU = ["--device", "cpu", "--quiet"]
# Gatys on three small layers: a truncated random VGG19 file covers them (a real file,
# so the weights cache is exercised), and a run takes well under a second.
LAYERS = {"content_layers": ["relu2_1"], "style_layers": ["relu1_1", "relu2_1"]}
GATYS = {"iterations": 4, "size": 48, "seed": 3, "device": "cpu", **LAYERS}


def _photo(seed: int, shape=(36, 44, 3), dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = np.sin(x / (3 + seed)) * np.cos(y / 5.0)
    noise = rng.random(shape)
    image = (base[..., None] if len(shape) == 3 else base) + noise
    image = (image - image.min()) / (image.max() - image.min())
    top = 255 if dtype == np.uint8 else 4000
    return np.rint(image * top).astype(dtype)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A synthetic fast model, a small random VGG19 file and a style image."""
    root = tmp_path_factory.mktemp("assets")
    torch.save(transformer_state(), root / "model.pth")
    first = {f"features.{index}.{part}" for index in (0, 2, 5, 7) for part in ("weight", "bias")}
    state = {k: v for k, v in vgg19_state_dict(seed=5).items() if k in first}
    torch.save(state, root / "vgg.pth")  # conv1_1 … conv2_2 only
    iio.imwrite(root / "style.png", _photo(9, (30, 30, 3)))
    return {
        "checkpoint": str(root / "model.pth"),
        "weights": str(root / "vgg.pth"),
        "style": str(root / "style.png"),
    }


def _inputs(folder: Path, count: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        iio.imwrite(folder / f"img{k}.png", _photo(k))
    return folder


def _read(path: Path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else iio.imread(path)


def _outputs(outdir: Path) -> dict[str, np.ndarray]:
    """Images by name (not the temporary files a killed writer may leave)."""
    return {
        p.relative_to(outdir).as_posix(): _read(p)
        for p in sorted(outdir.rglob("*"))
        if p.suffix in (".png", ".tif") and not p.name.startswith(".")
    }


def _records(outdir: Path) -> dict[str, dict]:
    """Sidecars by the name of their image."""
    return {
        p.name.removesuffix(".json"): json.loads(p.read_text())
        for p in outdir.glob("*.json")
        if not p.name.startswith(".")
    }


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Traceback" not in err and err.startswith("napari-nst: error: ")
    return err


# --- naming, outputs and sidecars (in-process) -------------------------------------


def test_outputs_mirror_inputs_like_stylize_with_sidecars(tmp_path, assets):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    iio.imwrite(data / "a.png", _photo(1))
    iio.imwrite(data / "sub" / "gray16.png", _photo(2, (40, 36), np.uint16))
    volume = np.stack([_photo(k, (40, 36), np.uint16) for k in range(3)])
    tifffile.imwrite(data / "sub" / "vol.tif", volume, photometric="minisblack")
    (data / "notes.txt").write_text("not an image")
    (data / ".hidden.png").write_bytes(b"ignored")
    loose = tmp_path / "loose.png"
    iio.imwrite(loose, _photo(3))
    out = tmp_path / "out"
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CPU]
    assert main(["batch", str(data), str(loose), "-o", str(out), *fast]) == 0
    assert sorted(_outputs(out)) == ["a.png", "loose.png", "sub/gray16.png", "sub/vol.tif"]
    assert not list(out.rglob(".napari-nst-*"))  # no temporary file left behind
    # Each output is what `stylize` writes for that file: same shape, dtype and pixels.
    for name, source in [("a.png", data / "a.png"), ("sub/gray16.png", data / "sub/gray16.png")]:
        single = tmp_path / f"single{Path(name).suffix}"
        assert main(["stylize", str(source), "-o", str(single), *fast]) == 0
        np.testing.assert_array_equal(_read(out / name), _read(single))
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
        _inputs(tmp_path / folder, 1)
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CPU]
    args = ["batch", str(tmp_path / "x/img0.png"), str(tmp_path / "y/*.png"), "-o"]
    assert main([*args, str(tmp_path / "out"), *fast]) == 2
    assert "would both be written to" in _one_line_error(capsys)
    assert main(["batch", str(tmp_path / "x"), "-o", str(tmp_path / "x"), *fast]) == 2
    assert "overwrite" in _one_line_error(capsys)
    assert main(["batch", str(tmp_path / "nope/*.png"), "-o", str(tmp_path / "o"), *fast]) == 2
    assert "no images match" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_glob_names_are_relative_to_the_glob_folder(tmp_path, assets):
    _inputs(tmp_path / "d" / "p", 1)
    _inputs(tmp_path / "d" / "q", 1)
    found = batch.find_inputs([str(tmp_path / "d" / "**" / "*.png")], tmp_path / "out")
    assert [name for _, name in found] == ["p/img0.png", "q/img0.png"]


# --- resume --------------------------------------------------------------------------


def test_resume_redoes_exactly_what_is_not_finished(tmp_path, assets):
    data, out = _inputs(tmp_path / "in"), tmp_path / "out"
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
    iio.imwrite(data / "img4.png", _photo(40))
    resumed = batch.run_batch([str(data)], out, **run)
    assert sorted(resumed.done) == ["img0.png", "img1.png", "img2.png", "img3.png", "img4.png"]
    assert resumed.skipped == ["img5.png"]
    # Other options make other outputs; --overwrite redoes finished ones.
    assert len(batch.run_batch([str(data)], out, **run, size=48).done) == 6
    assert len(batch.run_batch([str(data)], out, **run, size=48, overwrite=True).done) == 6


def test_one_bad_input_is_reported_and_the_rest_continue(tmp_path, assets, capsys):
    data, out = _inputs(tmp_path / "in", 3), tmp_path / "out"
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CPU]
    assert main(["batch", str(data), "-o", str(out), *fast]) == 1
    err = capsys.readouterr().err
    assert "broken.png: cannot read content image" in err and "1 of 4 item(s) failed" in err
    assert "Traceback" not in err
    assert sorted(_outputs(out)) == ["img0.png", "img1.png", "img2.png"]
    record = json.loads((out / "broken.png.json").read_text())
    assert record["status"] == "failed" and "cannot read" in record["message"]
    iio.imwrite(data / "broken.png", _photo(7))  # repaired: only it runs on the re-run
    report = batch.run_batch(
        [str(data)], out, method="fast", checkpoint=assets["checkpoint"], device="cpu"
    )
    assert report.done == ["broken.png"] and len(report.skipped) == 3


def test_ctrl_c_exits_130_and_keeps_finished_items(tmp_path, assets, monkeypatch, capsys):
    from napari_nst.batch import item

    data, out = _inputs(tmp_path / "in", 4), tmp_path / "out"
    real, calls = item._stylize, []

    def interrupted_at_the_third(job):
        calls.append(job.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(item, "_stylize", interrupted_at_the_third)
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CPU]
    assert main(["batch", str(data), "-o", str(out), *fast]) == 130
    assert "interrupted after 2 item(s); run again to resume" in _one_line_error(capsys)
    assert sorted(_outputs(out)) == ["img0.png", "img1.png"]
    assert not batch.sidecar(out / "img2.png").exists()


@pytest.mark.slow
def test_a_killed_batch_resumes_only_the_missing_items(tmp_path, assets):
    """SIGKILL mid-batch: whatever was being written, resume runs exactly the rest."""
    data, out = _inputs(tmp_path / "in", 8), tmp_path / "out"
    opts = ["--vgg", assets["weights"], "--iterations", "30", "--size", "48", "--seed", "1"]
    opts += ["--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]
    command = [sys.executable, "-m", "napari_nst.cli", "batch", str(data), "--style",
               assets["style"], "-o", str(out), *opts, *CPU]  # fmt: skip
    child = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while out.is_dir() is False or not _records(out):
        if child.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    finished = set(_records(out))
    assert 1 <= len(finished) < 8, "the batch should have been killed mid-way"
    assert main([*command[3:], "--threads", "1"]) == 0  # threads are not part of the recipe
    records = _records(out)
    assert len(records) == 8 and all(r["status"] == "done" for r in records.values())
    here = f":{os.getpid()}"
    reran = {name for name, record in records.items() if record["batch"]["worker"].endswith(here)}
    assert reran == {f"img{k}.png" for k in range(8)} - finished


# --- recipes -------------------------------------------------------------------------


def test_a_stylize_log_is_a_recipe_and_flags_override_it(tmp_path, assets):
    data, out = _inputs(tmp_path / "in", 2), tmp_path / "out"
    log = tmp_path / "run.json"
    args = ["stylize", str(data / "img0.png"), assets["style"], "-o", str(tmp_path / "one.png"),
            "--vgg", assets["weights"], "--iterations", "3", "--size", "40", "--seed", "2",
            "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "--tv-weight",
            "0.5", "--log-json", str(log), *CPU]  # fmt: skip
    assert main(args) == 0
    assert main(["batch", str(data), "--style", assets["style"], "-o", str(out),
                 "--recipe", str(log), "--iterations", "2", *CPU]) == 0  # fmt: skip
    params = json.loads((out / "img0.png.json").read_text())["params"]
    expected = json.loads(log.read_text())["params"] | {"iterations": 2}
    assert params == expected
    # A plain dict of options is a recipe too, and a sidecar's params are one.
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"method": "fast", "checkpoint": assets["checkpoint"]}))
    assert main(["batch", str(data), "-o", str(tmp_path / "o2"), "--recipe", str(plain),
                 *CPU]) == 0  # fmt: skip
    assert main(["batch", str(data), "-o", str(tmp_path / "o3"), "--recipe",
                 str(tmp_path / "o2" / "img1.png.json"), *CPU]) == 0  # fmt: skip
    assert _outputs(tmp_path / "o2").keys() == _outputs(tmp_path / "o3").keys()


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
    data, path = _inputs(tmp_path / "in", 1), tmp_path / "recipe.json"
    path.write_text(recipe if isinstance(recipe, str) else json.dumps(recipe))
    args = ["batch", str(data), "--style", assets["style"], "-o", "out", "--recipe", str(path)]
    assert main([*args, *CPU]) == 2
    assert message in _one_line_error(capsys)
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
    data = _inputs(tmp_path / "in", 1)
    extra = [assets["style"] if arg == "STYLE" else arg for arg in extra]
    assert main(["batch", str(data), "-o", str(tmp_path / "out"), *CPU, *extra]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_dask_options_without_distributed_say_how_to_install_it(
    tmp_path, assets, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    data = _inputs(tmp_path / "in", 1)
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CPU]
    for where in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        assert main(["batch", str(data), "-o", str(tmp_path / "out"), *where, *fast]) == 2
        assert "pip install 'napari-nst[dask]'" in _one_line_error(capsys)


# --- Dask ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes on 127.0.0.1, closed after the module.

    One task per worker at a time (saturation 1.0), and a task is given up after its
    worker died twice (allowed_failures=1), so the killed-worker test is short.
    """
    with local_client(allowed_failures=1) as client:
        yield client


def _loads(client) -> dict[int, dict[str, int]]:
    return {s["pid"]: s for s in client.run(batch.engine_cache_stats).values()}


def _worker_pids(report: batch.Report) -> set[int]:
    return {int(result.worker.rsplit(":", 1)[1]) for result in report.results}


def test_cluster_fast_batch_matches_in_process_and_loads_the_model_once_per_worker(
    tmp_path, assets, client
):
    data = _inputs(tmp_path / "in", 8)
    run = {"method": "fast", "checkpoint": assets["checkpoint"], "device": "cpu", "threads": 1}
    local = batch.run_batch([str(data)], tmp_path / "local", **run)
    before = _loads(client)
    remote = batch.run_batch([str(data)], tmp_path / "remote", client=client, **run)
    after = _loads(client)
    assert len(local.done) == len(remote.done) == 8 and not remote.failed
    expected, got = _outputs(tmp_path / "local"), _outputs(tmp_path / "remote")
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    ran = _worker_pids(remote)
    assert ran == set(after) and os.getpid() not in ran  # both workers, not this process
    for pid in ran:  # one model load per worker, whatever number of items it ran
        assert after[pid]["checkpoint_loads"] - before[pid]["checkpoint_loads"] == 1


def test_cluster_gatys_batch_matches_in_process_with_style_targets_once_per_worker(
    tmp_path, assets, client
):
    data, style = _inputs(tmp_path / "in", 6), tmp_path / "style.png"
    iio.imwrite(style, _photo(11, (30, 30, 3)))  # new to every process: targets not cached
    run = {"style": str(style), "vgg": assets["weights"], "threads": 1, **GATYS}
    before_here = batch.engine_cache_stats()
    local = batch.run_batch([str(data)], tmp_path / "local", **run)
    assert not local.failed, local.failed
    here = batch.engine_cache_stats()
    assert here["style_target_builds"] - before_here["style_target_builds"] == 1
    before = _loads(client)
    remote = batch.run_batch([str(data)], tmp_path / "remote", client=client, **run)
    after = _loads(client)
    assert len(local.done) == len(remote.done) == 6
    expected, got = _outputs(tmp_path / "local"), _outputs(tmp_path / "remote")
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    for pid in _worker_pids(remote):
        assert after[pid]["vgg_loads"] - before[pid]["vgg_loads"] == 1
        assert after[pid]["style_target_builds"] - before[pid]["style_target_builds"] == 1
    remote_records, local_records = _records(tmp_path / "remote"), _records(tmp_path / "local")
    assert {r["batch"]["threads"] for r in remote_records.values()} == {1}
    for name, record in remote_records.items():
        assert record["steps"] == [
            {**step, "elapsed": remote}
            for step, remote in zip(
                local_records[name]["steps"], (s["elapsed"] for s in record["steps"]), strict=True
            )
        ]  # the same losses at every iteration


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # the cluster tests are skipped
    WorkerPlugin = object


class KillOnStart(WorkerPlugin):
    """Worker plugin: the worker process dies (hard) when it starts item ``number``
    of a batch, as long as ``marker`` exists: a segfault or the OOM killer."""

    name = "napari-nst-test-kill"

    def __init__(self, number: int, marker: str) -> None:
        self.number, self.marker = number, marker

    def setup(self, worker) -> None:
        pass

    def teardown(self, worker) -> None:
        pass

    def transition(self, key, start, finish, **kwargs) -> None:
        ours = isinstance(key, tuple) and key[1] == self.number
        if finish == "executing" and ours and os.path.exists(self.marker):
            os._exit(1)


def test_a_killed_worker_is_reported_the_rest_finish_and_resume_runs_only_it(
    tmp_path, assets, client
):
    plugin = KillOnStart(3, str(tmp_path / "kill"))
    (tmp_path / "kill").touch()
    data, out = _inputs(tmp_path / "in", 7), tmp_path / "out"
    run = {"method": "fast", "checkpoint": assets["checkpoint"], "device": "cpu"}
    client.register_plugin(plugin)
    try:
        report = batch.run_batch([str(data)], out, client=client, **run)
        assert [r.name for r in report.failed] == ["img3.png"]
        assert "worker running it died 2 times" in report.failed[0].message
        assert sorted(report.done) == [f"img{k}.png" for k in range(7) if k != 3]
        assert sorted(_outputs(out)) == sorted(report.done)
        assert json.loads((out / "img3.png.json").read_text())["status"] == "failed"
        (tmp_path / "kill").unlink()
        client.wait_for_workers(2, timeout=60)
        resumed = batch.run_batch([str(data)], out, client=client, **run)
        assert resumed.done == ["img3.png"] and sorted(resumed.skipped) == sorted(report.done)
    finally:
        client.unregister_worker_plugin(plugin.name)
        client.wait_for_workers(2, timeout=60)


def test_bad_inputs_fail_at_once_other_errors_are_retried_twice_then_reported(
    tmp_path, assets, client
):
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Starts(SchedulerPlugin):
        name = "napari-nst-test-starts"

        def __init__(self) -> None:
            self.starts: dict[int, int] = {}

        def transition(self, key, start, finish, *args, **kwargs) -> None:
            if finish == "processing" and isinstance(key, tuple):
                self.starts[key[1]] = self.starts.get(key[1], 0) + 1

    data, out = _inputs(tmp_path / "in", 4), tmp_path / "out"
    (data / "img1.png").write_bytes(b"not a png")  # a bad input: retrying cannot help
    (out / "img2.png").mkdir(parents=True)  # the output cannot be written: an OSError
    counter = Starts()
    scheduler = client.cluster.scheduler  # a LocalCluster's scheduler runs in this process
    scheduler.add_plugin(counter)
    try:
        run = {"method": "fast", "checkpoint": assets["checkpoint"], "device": "cpu"}
        report = batch.run_batch([str(data)], out, client=client, **run)
    finally:
        scheduler.remove_plugin(name=counter.name)
    assert sorted(report.done) == ["img0.png", "img3.png"]
    failed = {r.name: r.message for r in report.failed}
    assert failed.keys() == {"img1.png", "img2.png"}
    assert "cannot read content image" in failed["img1.png"]
    assert failed["img2.png"].startswith("IsADirectoryError")
    assert counter.starts == {0: 1, 1: 1, 2: 3, 3: 1}  # items in order; 2 retries for img2
    assert json.loads((out / "img2.png.json").read_text())["status"] == "failed"


def test_cli_on_a_scheduler_address_and_on_its_own_local_workers(
    tmp_path, assets, client, capsys, monkeypatch
):

    from napari_nst.batch import cluster

    data = _inputs(tmp_path / "in", 3)
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CPU]
    address = client.cluster.scheduler_address
    assert main(["batch", str(data), "-o", str(tmp_path / "a"), "--scheduler", address,
                 *fast]) == 0  # fmt: skip
    before = child_pids()
    assert main(["batch", str(data), "-o", str(tmp_path / "b"), "--workers", "1", *fast]) == 0
    assert not new_children(before), "the local cluster was not shut down"
    assert _outputs(tmp_path / "a").keys() == _outputs(tmp_path / "b").keys()
    assert len(_outputs(tmp_path / "a")) == 3
    threads = {r["batch"]["threads"] for r in _records(tmp_path / "b").values()}
    assert threads == {os.cpu_count()}  # one worker: all the cores
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    assert main(["batch", str(data), "-o", str(tmp_path / "c"), "--scheduler",
                 "tcp://127.0.0.1:9", *fast]) == 2  # fmt: skip
    assert "cannot reach the Dask scheduler" in _one_line_error(capsys)
