"""Jobs through the HTTP API: results as the engine makes them, idempotent submission,
the queue's order, cancelling (only by the submitter), events over a WebSocket."""

from __future__ import annotations

import json
import threading

import numpy as np

from napari_nst import stylize
from napari_nst.server.service import Upload
from tests.helpers import SERVER_URL, TINY_JOB, decoded, job_form, png_bytes, wait_finished


def test_a_job_gives_the_image_stylize_gives_bit_for_bit(
    api, service, images, content_rgb, style_rgb
):
    answer = api.post("/jobs", files=images, data=job_form())
    assert answer.status_code == 201
    job = answer.json()
    assert job["status"] in ("queued", "running") and job["key"] and not job["existing"]
    wait_finished(service, [job["id"]])

    state = api.get(f"/jobs/{job['id']}").json()
    assert (state["status"], state["iteration"], state["total"]) == ("done", 2, 2)
    result = api.get(f"/jobs/{job['id']}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    image = decoded(result.content)
    expected = stylize(content_rgb, style_rgb, **TINY_JOB)
    assert image.dtype == np.uint8 and image.shape == content_rgb.shape
    assert np.array_equal(image, expected)

    record = api.get(f"/jobs/{job['id']}/record").json()
    assert record["status"] == "done" and record["params"]["iterations"] == 2
    assert [step["iteration"] for step in record["steps"]] == [1, 2]
    assert record["server"]["id"] == job["id"]
    assert [j["id"] for j in api.get("/jobs").json()["jobs"]] == [job["id"]]


def test_the_same_job_submitted_again_is_the_same_job(api, service, images, style_rgb):
    first = api.post("/jobs", files=images, data=job_form(id="mine")).json()
    again = api.post("/jobs", files=images, data=job_form(id="mine"))
    same_inputs = api.post("/jobs", files=images, data=job_form())
    assert again.status_code == same_inputs.status_code == 200
    assert again.json()["id"] == same_inputs.json()["id"] == first["id"] == "mine"
    assert again.json()["existing"] and "key" not in again.json()

    other = images | {"style": ("other.png", png_bytes(style_rgb[::-1].copy()), "image/png")}
    taken = api.post("/jobs", files=other, data=job_form(id="mine"))
    assert taken.status_code == 409 and "taken" in taken.json()["detail"]
    wait_finished(service, ["mine"])
    assert len(api.get("/jobs").json()["jobs"]) == 1
    assert len(list(service.store.jobs_dir.iterdir())) == 1


def _submit(service, images, seed, key="k", front=False):
    content, style = (Upload(name, data) for name, data, _ in images.values())
    return service.submit(content, [style], TINY_JOB | {"seed": seed}, key=key, front=front).job


def test_jobs_run_one_at_a_time_in_order_and_front_of_queue_goes_first(service, images):
    jobs = [_submit(service, images, seed) for seed in range(3)]
    urgent = _submit(service, images, 9, front=True)
    assert [service.store.position(job) for job in [*jobs, urgent]] == [1, 2, 3, 0]

    started, running = [], []
    lock = threading.Lock()

    def seen(event):
        with lock:
            if event["event"] == "started":
                started.append(event["id"])
                running.append(sum(j.status == "running" for j in service.store.all()))

    service.hub.listen(seen)
    service.start()
    try:
        wait_finished(service, [job.id for job in [*jobs, urgent]])
    finally:
        service.stop()
    assert started == [urgent.id] + [job.id for job in jobs]
    assert running == [1, 1, 1, 1]
    assert {job.status for job in service.store.all()} == {"done"}


def test_only_the_submitter_can_cancel_a_queued_job(api, service, images):
    owner = {"X-NST-Key": "owner-secret"}
    job = api.post(
        "/jobs", files=images, data=job_form(TINY_JOB | {"iterations": 400}), headers=owner
    )
    queued = api.post("/jobs", files=images, data=job_form(), headers=owner).json()
    assert queued["status"] == "queued" and queued["position"] in (0, 1)  # first may wait

    assert api.post(f"/jobs/{queued['id']}/cancel").status_code == 403
    other = api.post(f"/jobs/{queued['id']}/cancel", headers={"X-NST-Key": "guess"})
    assert other.status_code == 403 and "only the client that submitted" in other.json()["detail"]
    cancelled = api.post(f"/jobs/{queued['id']}/cancel", headers=owner)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.post(f"/jobs/{queued['id']}/cancel", headers=owner).status_code == 409
    assert api.get(f"/jobs/{queued['id']}/result").status_code == 409
    rerun = api.post("/jobs", files=images, data=job_form(), headers=owner)  # runs it again
    assert rerun.status_code == 201 and rerun.json()["id"] != queued["id"]
    same_id = api.post("/jobs", files=images, data=job_form(id=queued["id"]), headers=owner)
    assert same_id.status_code == 200 and same_id.json()["status"] == "cancelled"

    running = api.post(f"/jobs/{job.json()['id']}/cancel", headers=owner).json()
    assert running["status"] == "cancelled" and running["iteration"] < 400


def test_a_running_job_cancelled_ends_at_once_with_its_best_image(api, service, images):
    owner = {"X-NST-Key": "owner-secret"}
    job = api.post(
        "/jobs", files=images, data=job_form(TINY_JOB | {"iterations": 400}), headers=owner
    ).json()
    progressed = threading.Event()
    service.hub.listen(lambda e: e["event"] == "progress" and progressed.set())
    assert progressed.wait(60)
    answer = api.post(f"/jobs/{job['id']}/cancel", headers=owner).json()
    assert answer["status"] == "cancelled" and 1 <= answer["iteration"] < 400
    record = api.get(f"/jobs/{job['id']}/record").json()
    assert record["status"] == "cancelled"
    result = api.get(f"/jobs/{job['id']}/result")
    assert result.status_code == 200 and result.headers["x-nst-status"] == "cancelled"
    assert decoded(result.content).shape == (48, 64, 3)


def test_a_running_job_pauses_between_two_steps_and_resumes_where_it_was(api, service, images):
    owner = {"X-NST-Key": "owner-secret"}
    job = api.post(
        "/jobs", files=images, data=job_form(TINY_JOB | {"iterations": 30}), headers=owner
    ).json()
    seen: list[dict] = []
    arrived = threading.Condition()

    def listen(event: dict) -> None:
        with arrived:
            seen.append(event)
            arrived.notify_all()

    def progress() -> list[int]:
        return [e["iteration"] for e in seen if e["event"] == "progress"]

    service.hub.listen(listen)
    with arrived:
        assert arrived.wait_for(lambda: progress(), 60)
    assert api.post(f"/jobs/{job['id']}/pause", headers={"X-NST-Key": "guess"}).status_code == 403
    answer = api.post(f"/jobs/{job['id']}/pause", headers=owner).json()
    assert answer["status"] == "running" and answer["paused"] is True
    with arrived:
        held = progress()[-1]
        # Held: at most the step in flight ends; none after it within two seconds.
        assert not arrived.wait_for(lambda: progress()[-1] > held + 1, timeout=2.0)
    assert "paused" not in api.post(f"/jobs/{job['id']}/resume", headers=owner).json()
    wait_finished(service, [job["id"]])
    assert service.store.get(job["id"]).status == "done"
    assert progress() == list(range(1, 31))  # every step once: nothing lost or repeated
    kinds = [e["event"] for e in seen]
    assert kinds.index("paused") < kinds.index("resumed") < kinds.index("done")
    done = api.post(f"/jobs/{job['id']}/pause", headers=owner)
    assert done.status_code == 409 and "only a running job pauses" in done.json()["detail"]


def test_a_websocket_streams_a_job_from_queued_to_done(api, service, images):
    blocker = api.post("/jobs", files=images, data=job_form(TINY_JOB | {"iterations": 3})).json()
    job = api.post("/jobs", files=images, data=job_form(TINY_JOB | {"seed": 5})).json()
    url = f"ws://127.0.0.1:8765/jobs/{job['id']}/events?previews=1"
    with api.websocket_connect(url) as socket:
        events = [socket.receive_json()]
        while events[-1]["event"] not in ("done", "failed", "cancelled"):
            events.append(socket.receive_json())
    kinds = [event["event"] for event in events]
    assert kinds[0] == "status" and kinds[-1] == "done"
    assert kinds.count("started") == 1 and kinds.index("started") < kinds.index("progress")
    assert [e["iteration"] for e in events if e["event"] == "progress"] == [1, 2]
    previews = [e for e in events if e["event"] == "preview"]
    assert len(previews) <= 2
    assert all(decoded(_b64(p["png"])).shape == (48, 64, 3) for p in previews)
    wait_finished(service, [blocker["id"]])
    # a finished job's stream says so at once
    with api.websocket_connect(f"ws://127.0.0.1:8765/jobs/{job['id']}/events") as socket:
        assert socket.receive_json()["status"] == "done"
        assert socket.receive_json()["event"] == "done"


def _b64(text):
    import base64

    return base64.b64decode(text)


def test_options_are_recorded_and_a_recipe_is_data(api, service, images):
    recipe = {"params": TINY_JOB | {"seed": 3}, "threads": 1, "status": "done"}
    job = api.post(
        "/jobs", files=images, data={"options": json.dumps({"iterations": 1}),
                                     "recipe": json.dumps(recipe)},
    ).json()  # fmt: skip
    wait_finished(service, [job["id"]])
    record = api.get(f"/jobs/{job['id']}/record").json()
    assert (record["params"]["seed"], record["params"]["iterations"]) == (3, 1)
    assert record["threads"] == 1
    assert api.get("/").json()["jobs"]["done"] == 1
    assert SERVER_URL.startswith("http://127.0.0.1")


def test_a_16_bit_gray_tiff_comes_back_as_a_16_bit_gray_tiff(api, service, style_rgb):
    import tifffile

    y, x = np.mgrid[0:48, 0:64]
    scan = (1000 + 800 * np.sin(x / 5.0) * np.cos(y / 7.0)).astype(np.uint16)
    buffer = __import__("io").BytesIO()
    tifffile.imwrite(buffer, scan, photometric="minisblack")
    files = {"content": ("scan.tif", buffer.getvalue()), "style": ("p.png", png_bytes(style_rgb))}
    job = api.post("/jobs", files=files, data=job_form()).json()
    wait_finished(service, [job["id"]])
    answer = api.get(f"/jobs/{job['id']}/result")
    assert answer.headers["content-type"] == "image/tiff"
    image = tifffile.imread(__import__("io").BytesIO(answer.content))
    expected = stylize(scan, style_rgb, **TINY_JOB)
    assert image.dtype == np.uint16 and image.shape == scan.shape
    assert np.array_equal(image, np.clip(np.rint(expected), 0, 65535).astype(np.uint16))


def test_a_clients_stream_carries_its_jobs_only(api, service, images):
    mine, theirs = {"X-NST-Key": "mine"}, {"X-NST-Key": "theirs"}
    with api.websocket_connect("ws://127.0.0.1:8765/events", headers=mine) as socket:
        job = api.post("/jobs", files=images, data=job_form(), headers=mine).json()
        other = api.post(
            "/jobs", files=images, data=job_form(TINY_JOB | {"seed": 1}), headers=theirs
        )
        events = [socket.receive_json()]
        while events[-1]["event"] != "done":
            events.append(socket.receive_json())
    assert {event["id"] for event in events} == {job["id"]}
    assert [e["event"] for e in events][:2] == ["queued", "started"]
    wait_finished(service, [other.json()["id"]])


def test_a_finished_job_is_deleted_by_its_submitter_only(api, service, images):
    owner = {"X-NST-Key": "owner-secret"}
    job = api.post("/jobs", files=images, data=job_form(), headers=owner).json()
    wait_finished(service, [job["id"]])
    folder = service.store.folder(service.store.jobs[job["id"]])
    assert api.delete(f"/jobs/{job['id']}", headers={"X-NST-Key": "guess"}).status_code == 403
    assert api.delete(f"/jobs/{job['id']}", headers=owner).json()["deleted"]
    assert api.get(f"/jobs/{job['id']}").status_code == 404
    assert not folder.exists() and list(service.store.incoming.iterdir()) == []
    again = api.post("/jobs", files=images, data=job_form(), headers=owner)
    assert again.status_code == 201  # its inputs are a new job now

    running = api.post(
        "/jobs", files=images, data=job_form(TINY_JOB | {"iterations": 400}), headers=owner
    )
    answer = api.delete(f"/jobs/{running.json()['id']}", headers=owner)
    assert answer.status_code == 409 and "cancel it first" in answer.json()["detail"]


def test_a_wct_job_streams_a_step_per_level_and_its_decoders_stay_in_the_models_folder(
    api, service, images, content_rgb, style_rgb
):
    options = {"method": "wct", "device": "cpu", "levels": ["relu2_1", "relu1_1"]}
    job = api.post("/jobs", files=images, data=job_form(options)).json()
    wait_finished(service, [job["id"]])
    state = api.get(f"/jobs/{job['id']}").json()
    assert (state["status"], state["iteration"], state["total"]) == ("done", 2, 2)
    image = decoded(api.get(f"/jobs/{job['id']}/result").content)
    assert np.array_equal(image, stylize(content_rgb, style_rgb, **options))
    record = api.get(f"/jobs/{job['id']}/record").json()
    assert record["decoders"]["source"] == "shipped" and record["levels"] == options["levels"]
    outside = api.post("/jobs", files=images, data=job_form({**options, "decoders": "/tmp"}))
    assert outside.status_code == 400 and "decoders" in outside.json()["detail"]
