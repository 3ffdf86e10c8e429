"""Fixtures of the job server's tests: an in-process app (FastAPI's TestClient) on a
service in a temporary folder, and a photo and a painting as uploads (helpers for tiny
jobs and a real ``napari-nst serve`` process are in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import SERVER_URL, png_bytes


@pytest.fixture
def images(content_rgb, style_rgb) -> dict[str, tuple[str, bytes, str]]:
    return {
        "content": ("photo.png", png_bytes(content_rgb), "image/png"),
        "style": ("painting.png", png_bytes(style_rgb), "image/png"),
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

    with TestClient(create_app(service), base_url=SERVER_URL) as test_client:
        yield test_client
