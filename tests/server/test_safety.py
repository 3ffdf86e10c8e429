"""Safe by default: malformed requests get a one-line 4xx and the server goes on;
foreign origins and hosts are refused; a token is needed where one is set; no file
outside the data folder is ever named by a client."""

from __future__ import annotations

import json
import shutil
from importlib import resources

import pytest

from napari_nst.server.security import Policy, is_loopback
from napari_nst.server.serve import announce, make_policy
from tests.helpers import SERVER_URL, TINY_JOB, job_form, wait_finished


def _one_line_4xx(answer, code):
    detail = answer.json()["detail"]
    assert answer.status_code == code, (answer.status_code, detail)
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert "Traceback" not in detail and "/data/incoming" not in detail
    return detail


BAD_OPTIONS = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"iterationz": 3}), "unknown option"),
    (json.dumps(TINY_JOB | {"iterations": -1}), "iterations"),
    (json.dumps(TINY_JOB | {"method": "magic"}), "method"),
    (json.dumps({"method": "fast", "checkpoint": "/etc/passwd"}), "models folder"),
    (json.dumps({"method": "fast", "checkpoint": "../../jobs/x/content.png"}), "models folder"),
    (json.dumps({"vgg": "/etc/hostname"}), "models folder"),
    (json.dumps({"weights": "/etc/hostname"}), "models folder"),  # its former name
    (json.dumps({"weights": "caffe:../secret.pth"}), "models folder"),
    (json.dumps({"style_layers": "../etc/passwd"}), "may not name a path"),
    (json.dumps({"labels": "labels.png"}), "labels come as a file"),
    (json.dumps({"device": "tpu"}), "device"),
]


@pytest.mark.parametrize(("options", "says"), BAD_OPTIONS)
def test_bad_options_get_a_400_that_says_why(api, images, options, says):
    detail = _one_line_4xx(api.post("/jobs", files=images, data={"options": options}), 400)
    assert says in detail


def test_malformed_requests_get_one_line_4xx_and_the_server_keeps_serving(api, service, images):
    content, style = images["content"], images["style"]
    not_png, exe = ("a.png", b"not a png", "image/png"), ("a.exe", content[1])
    cases = [
        (api.post("/jobs", content=b"garbage", headers={"content-type": "text/plain"}), 400),
        (api.post("/jobs", data=job_form()), 400),  # no content file
        (api.post("/jobs", files={"content": not_png, "style": style}, data=job_form()), 400),
        (api.post("/jobs", files={"content": exe, "style": style}, data=job_form()), 400),
        (api.post("/jobs", files={"content": content}, data=job_form()), 400),  # no style
        (api.post("/jobs", files=images, data=job_form(id="../escape")), 400),
        (api.post("/jobs", files=images, data=job_form(id="a/b")), 400),
        (api.post("/jobs", files={"content": content, "options": ("o.json", b"{}")}), 400),
        (api.get("/jobs/nope"), 404),
        (api.get("/jobs/nope/result"), 404),
        (api.post("/jobs/nope/cancel", headers={"X-NST-Key": "k"}), 404),
    ]
    for answer, code in cases:
        _one_line_4xx(answer, code)
    assert list((service.store.data / "incoming").iterdir()) == []  # nothing left staged
    assert service.store.all() == []

    job = api.post("/jobs", files=images, data=job_form()).json()
    assert api.get(f"/jobs/{job['id']}/record").status_code in (409, 200)
    wait_finished(service, [job["id"]])
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "done"


def test_uploads_over_the_limit_get_413(tmp_path, images):
    from fastapi.testclient import TestClient

    from napari_nst.server.app import create_app
    from napari_nst.server.service import Service

    service = Service(tmp_path / "data", Policy(max_upload=4096, max_pixels=1000))
    with TestClient(create_app(service), base_url=SERVER_URL) as api:
        huge = {"content": ("big.png", b"\0" * 5000, "image/png")}
        assert "limit" in _one_line_4xx(api.post("/jobs", files=huge, data=job_form()), 413)

        def chunks():
            for _ in range(10):
                yield b"x" * 1000

        streamed = api.post("/jobs", content=chunks(), headers={"content-type": "a/b"})
        _one_line_4xx(streamed, 413)
        # small file, too many pixels once decoded (48 x 64 x 3 > 1000)
        assert "limit" in _one_line_4xx(api.post("/jobs", files=images, data=job_form()), 413)
        assert api.get("/").status_code == 200


def test_foreign_origins_and_hosts_are_refused(api):
    assert api.get("/jobs", headers={"Origin": "http://127.0.0.1:8765"}).status_code == 200
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "file://"):
        _one_line_4xx(api.get("/jobs", headers={"Origin": origin}), 403)
    _one_line_4xx(api.get("/jobs", headers={"Host": "rebound.example:8765"}), 403)
    from starlette.websockets import WebSocketDisconnect

    with (
        pytest.raises(WebSocketDisconnect),
        api.websocket_connect("ws://127.0.0.1:8765/events", headers={"Origin": "http://x.y"}),
    ):
        pass


def test_a_token_is_needed_where_the_server_has_one(tmp_path, images):
    from fastapi.testclient import TestClient

    from napari_nst.server.app import create_app
    from napari_nst.server.service import Service

    service = Service(tmp_path / "data", Policy(loopback=False, token="s3cret"))
    with TestClient(create_app(service), base_url="http://192.0.2.1:8765") as api:
        _one_line_4xx(api.get("/jobs"), 401)
        _one_line_4xx(api.get("/jobs", headers={"X-NST-Token": "wrong"}), 401)
        assert api.get("/jobs", headers={"X-NST-Token": "s3cret"}).status_code == 200
        assert api.get("/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        url = "ws://192.0.2.1:8765/events?token=s3cret"
        with api.websocket_connect(url) as socket:
            socket.close()


def test_beyond_loopback_a_token_is_made_up_and_a_warning_printed(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    local = make_policy("127.0.0.1", None)
    assert local.token is None and local.loopback
    exposed = make_policy("0.0.0.0", None)
    assert exposed.token and len(exposed.token) >= 24 and not exposed.loopback
    lines = announce("0.0.0.0", 8765, exposed, tmp_path)
    assert lines[0].startswith("WARNING") and "clear text" in lines[0]
    assert exposed.token in lines[-1]
    assert not any("WARNING" in line for line in announce("127.0.0.1", 1, local, tmp_path))


def test_a_model_in_the_models_folder_may_be_used_and_nothing_outside(
    api, service, images, tmp_path
):
    shipped = resources.files("napari_nst") / "samples" / "starry_night.pth"
    shutil.copyfile(str(shipped), service.store.models / "starry.pth")
    outside = tmp_path / "outside.pth"
    shutil.copyfile(str(shipped), outside)
    (service.store.models / "link.pth").symlink_to(outside)
    fast = {"method": "fast", "device": "cpu"}
    only_content = {"content": images["content"]}
    linked = api.post(
        "/jobs", files=only_content, data=job_form(fast | {"checkpoint": "link.pth"})
    )
    assert "outside" in _one_line_4xx(linked, 400)
    model = job_form(fast | {"checkpoint": "starry.pth"})
    job = api.post("/jobs", files=only_content, data=model).json()
    wait_finished(service, [job["id"]])
    record = api.get(f"/jobs/{job['id']}/record").json()
    assert record["status"] == "done"
    assert record["params"]["checkpoint"] == str(service.store.models / "starry.pth")
