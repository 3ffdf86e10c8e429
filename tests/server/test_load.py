"""Under load: many clients submitting at once, each job run exactly once, every result
the one ``core.stylize`` gives; cancelling another client's job is refused throughout."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_nst import stylize
from tests.helpers import TINY_JOB, decoded, job_form, wait_finished

CLIENTS, JOBS = 5, 4


@pytest.mark.slow
def test_many_clients_many_jobs_none_lost_none_duplicated_all_exact(
    api, service, images, content_rgb, style_rgb
):
    accepted: dict[int, list[dict]] = {}
    refused: list[int] = []
    failures: list[BaseException] = []
    ready = threading.Barrier(CLIENTS)

    def one_client(number: int) -> None:
        key = {"X-NST-Key": f"client-{number}"}
        try:
            ready.wait(60)
            mine = []
            for job in range(JOBS):
                options = TINY_JOB | {
                    "content_weight": 1 + (number * JOBS + job) / 100,
                    "iterations": 1,
                }
                answer = api.post("/jobs", files=images, data=job_form(options), headers=key)
                assert answer.status_code == 201, answer.text
                mine.append(answer.json())
            again = api.post("/jobs", files=images, data=job_form(options), headers=key)
            assert again.status_code == 200 and again.json()["id"] == mine[-1]["id"]
            accepted[number] = mine
        except BaseException as exc:
            failures.append(exc)
        try:
            ready.wait(60)  # every client has submitted: try to cancel the neighbour's job
            target = accepted[(number + 1) % CLIENTS][0]["id"]
            refused.append(api.post(f"/jobs/{target}/cancel", headers=key).status_code)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=one_client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures, failures
    assert refused == [403] * CLIENTS

    ids = [job["id"] for jobs in accepted.values() for job in jobs]
    assert len(ids) == len(set(ids)) == CLIENTS * JOBS
    wait_finished(service, ids, timeout=600)
    listed = api.get("/jobs").json()["jobs"]
    assert sorted(job["id"] for job in listed) == sorted(ids)
    assert {job["status"] for job in listed} == {"done"}
    for number, jobs in accepted.items():
        for index, job in enumerate(jobs):
            options = TINY_JOB | {
                "content_weight": 1 + (number * JOBS + index) / 100,
                "iterations": 1,
            }
            image = decoded(api.get(f"/jobs/{job['id']}/result").content)
            assert np.array_equal(image, stylize(content_rgb, style_rgb, **options)), job["id"]
