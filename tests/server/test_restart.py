"""Nothing lost: jobs and results live in the data folder, so a server that died
(even by SIGKILL, mid-run) resumes its queue and still serves what it finished."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_nst import stylize
from napari_nst.core.devices import torch_threads
from napari_nst.server.jobs import MAX_ATTEMPTS
from napari_nst.server.service import Service, Upload
from tests.helpers import TINY_JOB, ServerProcess, decoded, http_json, poll, wait_finished


def _submit(service, images, seed, **options):
    content, style = (Upload(name, data) for name, data, _ in images.values())
    return service.submit(content, [style], TINY_JOB | {"seed": seed} | options, key="k").job


def test_a_restarted_server_resumes_its_queue_and_serves_finished_results(tmp_path, images):
    data = tmp_path / "data"
    first = Service(data).start()
    done = _submit(first, images, 0)
    wait_finished(first, [done.id])
    first.stop()
    result = first.store.result(done).read_bytes()

    crashed = Service(data)  # never started: its runner "dies" after taking two jobs
    killed_once, killed_often, queued = (_submit(crashed, images, s) for s in (1, 2, 3))
    assert crashed.store.take("cpu") is killed_once
    assert crashed.store.take("cpu") is killed_often
    killed_often.attempts = MAX_ATTEMPTS
    crashed.store.set_status(killed_often, "running")
    (data / "incoming" / "half-uploaded").mkdir()

    again = Service(data)
    jobs = again.store.jobs
    assert [jobs[j.id].status for j in (done, killed_once, killed_often, queued)] == [
        "done", "queued", "failed", "queued",
    ]  # fmt: skip
    assert "queued again" in jobs[killed_once.id].message
    assert f"({MAX_ATTEMPTS} times)" in jobs[killed_often.id].message
    assert again.store.position(jobs[killed_once.id]) == 0
    assert not (data / "incoming" / "half-uploaded").exists()
    again.start()
    try:
        wait_finished(again, [killed_once.id, queued.id])
    finally:
        again.stop()
    assert jobs[killed_once.id].status == jobs[queued.id].status == "done"
    assert again.store.record(jobs[killed_once.id])["server"]["attempt"] == 2
    assert again.store.result(jobs[done.id]).read_bytes() == result
    assert again.store.describe(jobs[done.id])["iteration"] == 2


def test_a_job_running_when_the_server_stops_runs_again_at_the_next_start(tmp_path, images):
    import threading

    service = Service(tmp_path / "data")
    job = _submit(service, images, 0, iterations=400)
    progressed = threading.Event()
    service.hub.listen(lambda event: event["event"] == "progress" and progressed.set())
    service.start()
    assert progressed.wait(60)
    service.stop()  # Ctrl-C / SIGTERM: the job goes back to the queue, not cancelled
    again = Service(tmp_path / "data")
    assert again.store.jobs[job.id].status == "queued"
    assert again.store.jobs[job.id].attempts == 0


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_every_accepted_job_ends_done(
    tmp_path, images, content_rgb, style_rgb
):
    from .test_clients import submit_over_http

    data = tmp_path / "data"
    server = ServerProcess(data)
    try:
        long = submit_over_http(server.url, images, TINY_JOB | {"iterations": 40}, "long")
        short = [
            submit_over_http(server.url, images, TINY_JOB | {"seed": s}, f"s{s}") for s in (1, 2)
        ]
        poll(f"{server.url}/jobs/{long}", lambda job: job.get("iteration", 0) >= 1)
    finally:
        server.kill()
    assert json.loads((data / "jobs" / long / "state.json").read_text())["status"] == "running"

    server = ServerProcess(data)
    try:
        finished = [
            poll(f"{server.url}/jobs/{job}", lambda j: j["status"] not in ("queued", "running"))
            for job in [long, *short]
        ]
        assert [job["status"] for job in finished] == ["done", "done", "done"]
        record = http_json(f"{server.url}/jobs/{long}/record")
        assert record["server"]["attempt"] == 2 and record["iteration"] == 40
        for seed, job in zip((1, 2), short, strict=True):
            record = http_json(f"{server.url}/jobs/{job}/record")
            with torch_threads(record["threads"]):
                expected = stylize(content_rgb, style_rgb, **TINY_JOB | {"seed": seed})
            image = decoded((data / "jobs" / job / "result.png").read_bytes())
            assert np.array_equal(image, expected)
    finally:
        assert server.stop()
