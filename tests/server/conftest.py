"""Helpers for the job server's tests: an in-process app (FastAPI's TestClient) or a
real ``napari-nst serve`` process, and tiny jobs (64 px, random weights, CPU)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BASE = "http://127.0.0.1:8765"
TINY = {"vgg": "random", "device": "cpu", "iterations": 2, "size": 64}
DEADLINE = 120.0


def png(image: np.ndarray) -> bytes:
    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, image, extension=".png")
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(io.BytesIO(data)))


def form(options: dict[str, Any] | None = None, **fields: str) -> dict[str, str]:
    return {"options": json.dumps(TINY if options is None else options)} | fields


@pytest.fixture
def images(content_rgb, style_rgb) -> dict[str, tuple[str, bytes, str]]:
    return {
        "content": ("photo.png", png(content_rgb), "image/png"),
        "style": ("painting.png", png(style_rgb), "image/png"),
    }


@pytest.fixture
def service(tmp_path):
    from napari_nst.server.service import Service

    return Service(tmp_path / "data")


@pytest.fixture
def api(service) -> Iterator[Any]:
    """The app on the service, its runners running (the app's lifespan); not named
    ``client``, which tests/conftest.py takes for a Dask client (and marks slow)."""
    from fastapi.testclient import TestClient

    from napari_nst.server.app import create_app

    with TestClient(create_app(service), base_url=BASE) as test_client:
        yield test_client


def wait_finished(service, job_ids, timeout: float = DEADLINE) -> None:
    from napari_nst.server.jobs import FINISHED

    store = service.store
    with store.changed:
        assert store.changed.wait_for(
            lambda: all(store.jobs[i].status in FINISHED for i in job_ids), timeout
        ), {i: store.jobs[i].status for i in job_ids}


class ServerProcess:
    """``napari-nst serve --port 0`` in a subprocess; ``url`` once it listens."""

    def __init__(self, data: Path, *extra: str) -> None:
        env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "napari_nst.cli", "serve", "--port", "0", "--data",
             str(data), *extra],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        self.url = ""
        self.lines: list[str] = []
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                return
        self.process.kill()
        raise AssertionError("the server did not start: " + "".join(self.lines))

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(DEADLINE)
        self.process.stderr.close()

    def stop(self) -> bool:
        """SIGTERM; whether the server shut down cleanly (uvicorn re-raises the signal)."""
        self.process.terminate()
        code = self.process.wait(DEADLINE)
        self.process.stderr.close()
        return code in (0, -signal.SIGTERM)


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> Any:
    import urllib.request

    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def poll(url: str, done, timeout: float = DEADLINE) -> Any:
    """GET ``url`` until ``done(answer)``; a client of a separate process can only poll."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http(url)
        if done(answer):
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)
