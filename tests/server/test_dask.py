"""``napari-nst serve --scheduler``: the same jobs, run as batch items on a Dask cluster."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst import stylize
from napari_nst.core.devices import torch_threads
from tests.helpers import SERVER_URL, TINY_JOB, decoded, job_form, local_client, wait_finished


@pytest.mark.slow
def test_jobs_run_on_a_dask_cluster_give_the_same_images(tmp_path, images, content_rgb, style_rgb):
    from fastapi.testclient import TestClient

    from napari_nst.server.app import create_app
    from napari_nst.server.service import Service

    with local_client() as dask_client:
        service = Service(tmp_path / "data", dask_client=dask_client)
        with TestClient(create_app(service), base_url=SERVER_URL) as client:
            key = {"X-NST-Key": "me"}
            jobs = [
                client.post(
                    "/jobs", files=images, data=job_form(TINY_JOB | {"seed": s}), headers=key
                )
                for s in range(4)
            ]
            assert [job.status_code for job in jobs] == [201] * 4
            ids = [job.json()["id"] for job in jobs]
            two_styles = {"content": images["content"], "style": images["style"]}
            blend = client.post(
                "/jobs", files=[("content", two_styles["content"]),
                                ("style", two_styles["style"]), ("style", two_styles["style"])],
                data=job_form(),
            )  # fmt: skip
            assert blend.status_code == 400 and "Dask" in blend.json()["detail"]
            wait_finished(service, ids, timeout=300)
            states = [client.get(f"/jobs/{i}").json() for i in ids]
            assert [state["status"] for state in states] == ["done"] * 4
            for seed, job_id in enumerate(ids):
                record = client.get(f"/jobs/{job_id}/record").json()
                assert record["batch"]["recipe"]["id"] == job_id
                with torch_threads(record["threads"]):
                    expected = stylize(content_rgb, style_rgb, **TINY_JOB | {"seed": seed})
                image = decoded(client.get(f"/jobs/{job_id}/result").content)
                assert np.array_equal(image, expected)
