"""``napari-nst batch`` on Dask workers (``batch/cluster.py``): the same results as
in-process, each model loaded once per worker, retries, killed workers, schedulers.

The cluster tests share one module-scoped ``LocalCluster`` (2 worker processes, 1
thread each, on 127.0.0.1, no dashboard) that is closed, workers and all, after
the module. Results must be identical in-process and on workers: torch's CPU
results can depend on the thread count (Gatys through L-BFGS does, by a pixel
here and there), so both sides run with ``threads=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from napari_nst import batch
from napari_nst.cli import main
from tests.helpers import (
    CLI_CPU,
    batch_inputs,
    batch_photo,
    child_pids,
    local_client,
    new_children,
    one_line_error,
    sidecars,
    written_images,
)

# Gatys on three small layers: a truncated random VGG19 file covers them (a real file,
# so the weights cache is exercised), and a run takes well under a second.
LAYERS = {"content_layers": ["relu2_1"], "style_layers": ["relu1_1", "relu2_1"]}


GATYS = {"iterations": 4, "size": 48, "seed": 3, "device": "cpu", **LAYERS}


def test_dask_options_without_distributed_say_how_to_install_it(
    tmp_path, assets, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    data = batch_inputs(tmp_path / "in", 1)
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CLI_CPU]
    for where in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        assert main(["batch", str(data), "-o", str(tmp_path / "out"), *where, *fast]) == 2
        assert "pip install 'napari-nst[dask]'" in one_line_error(capsys, last_line=True)


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
    data, checkpoint = batch_inputs(tmp_path / "in", 8), tmp_path / "model.pth"
    # A file new to every process: the workers' model cache (kept for the module's
    # cluster) has not seen it, whichever test ran on the cluster before.
    shutil.copyfile(assets["checkpoint"], checkpoint)
    run = {"method": "fast", "checkpoint": str(checkpoint), "device": "cpu", "threads": 1}
    local = batch.run_batch([str(data)], tmp_path / "local", **run)
    before = _loads(client)
    remote = batch.run_batch([str(data)], tmp_path / "remote", client=client, **run)
    after = _loads(client)
    assert len(local.done) == len(remote.done) == 8 and not remote.failed
    expected, got = written_images(tmp_path / "local"), written_images(tmp_path / "remote")
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
    data, style = batch_inputs(tmp_path / "in", 6), tmp_path / "style.png"
    iio.imwrite(style, batch_photo(11, (30, 30, 3)))  # new to every process: targets not cached
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
    expected, got = written_images(tmp_path / "local"), written_images(tmp_path / "remote")
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    for pid in _worker_pids(remote):
        assert after[pid]["vgg_loads"] - before[pid]["vgg_loads"] == 1
        assert after[pid]["style_target_builds"] - before[pid]["style_target_builds"] == 1
    remote_records, local_records = sidecars(tmp_path / "remote"), sidecars(tmp_path / "local")
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
    data, out = batch_inputs(tmp_path / "in", 7), tmp_path / "out"
    run = {"method": "fast", "checkpoint": assets["checkpoint"], "device": "cpu"}
    client.register_plugin(plugin)
    try:
        report = batch.run_batch([str(data)], out, client=client, **run)
        assert [r.name for r in report.failed] == ["img3.png"]
        assert "worker running it died 2 times" in report.failed[0].message
        assert sorted(report.done) == [f"img{k}.png" for k in range(7) if k != 3]
        assert sorted(written_images(out)) == sorted(report.done)
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

    data, out = batch_inputs(tmp_path / "in", 4), tmp_path / "out"
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

    data = batch_inputs(tmp_path / "in", 3)
    fast = ["--method", "fast", "--checkpoint", assets["checkpoint"], *CLI_CPU]
    address = client.cluster.scheduler_address
    assert main(["batch", str(data), "-o", str(tmp_path / "a"), "--scheduler", address,
                 *fast]) == 0  # fmt: skip
    before = child_pids()
    assert main(["batch", str(data), "-o", str(tmp_path / "b"), "--workers", "1", *fast]) == 0
    assert not new_children(before), "the local cluster was not shut down"
    assert written_images(tmp_path / "a").keys() == written_images(tmp_path / "b").keys()
    assert len(written_images(tmp_path / "a")) == 3
    threads = {r["batch"]["threads"] for r in sidecars(tmp_path / "b").values()}
    assert threads == {os.cpu_count()}  # one worker: all the cores
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    assert main(["batch", str(data), "-o", str(tmp_path / "c"), "--scheduler",
                 "tcp://127.0.0.1:9", *fast]) == 2  # fmt: skip
    assert "cannot reach the Dask scheduler" in one_line_error(capsys, last_line=True)


@pytest.mark.slow
def test_cluster_wct_batch_and_stack_match_in_process(tmp_path, client):
    from napari_nst.batch.stack import prepare_run
    from napari_nst.core import prepare
    from napari_nst.core.api import run_to_end

    data, style = batch_inputs(tmp_path / "in", 4), tmp_path / "style.png"
    iio.imwrite(style, batch_photo(9)[::-1])
    run = {"method": "wct", "style": str(style), "device": "cpu", "threads": 1,
           "levels": ["relu2_1", "relu1_1"]}  # fmt: skip
    local = batch.run_batch([str(data)], tmp_path / "local", **run)
    remote = batch.run_batch([str(data)], tmp_path / "remote", client=client, **run)
    assert len(local.done) == len(remote.done) == 4 and not remote.failed
    expected, got = written_images(tmp_path / "local"), written_images(tmp_path / "remote")
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    records = sidecars(tmp_path / "remote").values()
    assert [r["levels"] for r in records] == [["relu2_1", "relu1_1"]] * 4
    # A whole stack on the cluster: plane by plane, as in this process.
    stack = np.stack([batch_photo(k) for k in range(3)])
    options = {"method": "adain", "stack": "all", "device": "cpu", "precision": "fp32"}
    on_dask = prepare_run(stack, iio.imread(style), client.cluster.scheduler_address, **options)
    here = prepare(stack, iio.imread(style), **options)
    result = run_to_end(on_dask).image
    assert result.dtype == np.uint8 and result.shape == stack.shape
    assert np.abs(result.astype(int) - run_to_end(here).image).max() <= 1  # thread counts
    assert on_dask.info()["decoders"]["source"] == "shipped"
