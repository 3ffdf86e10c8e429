"""Test-wide guards: CPU only, no network beyond 127.0.0.1, no threads left behind."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading

import numpy as np
import pytest
import torch

from napari_nst.core.vgg import CONV_INDICES, random_convs


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


# ``precision="auto"`` means fp32 in tests and in every process they start (CLI runs,
# Dask workers of module-wide clusters too), so the suite computes the same numbers
# on CPUs with and without native bf16.
os.environ["NAPARI_NST_PRECISION"] = "fp32"


@pytest.fixture(autouse=True)
def _native_precision_where_marked(request, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests marked ``native_precision`` see what this machine picks (bf16 where fast)."""
    if request.node.get_closest_marker("native_precision") is not None:
        monkeypatch.delenv("NAPARI_NST_PRECISION", raising=False)


@pytest.fixture(autouse=True)
def _own_settings_folder(tmp_path_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's widget starts from the defaults: no settings remembered by another
    test (or by the person running the suite)."""
    monkeypatch.setenv("NAPARI_NST_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only loopback connections: a test that reaches the internet is a broken test."""
    original = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if isinstance(address, tuple):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise OSError(f"network access blocked in tests: {address!r}")
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only_getaddrinfo(socket.getaddrinfo))


def _loopback_only_getaddrinfo(original):
    def lookup(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            raise socket.gaierror(f"name resolution blocked in tests: {host}")
        return original(host, *args, **kwargs)

    return lookup


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> object:
    before = {thread.ident for thread in threading.enumerate()}
    yield
    leftover = [
        thread
        for thread in threading.enumerate()
        if thread.ident not in before and thread.is_alive() and not thread.daemon
    ]
    assert not leftover, f"test left threads running: {leftover}"


WAIT_MS = 60_000
"""Upper bound for waiting on a widget's run in tests (runs take seconds)."""


@pytest.fixture
def widget(make_napari_viewer, qtbot, content_rgb, style_rgb):
    """The Style Transfer widget in a viewer with a photo and a painting, set up for speed."""
    viewer = make_napari_viewer()
    viewer.add_image(content_rgb, name="photo", scale=(0.5, 0.5), translate=(10, -3))
    viewer.add_image(style_rgb, name="painting")
    from qtpy.QtCore import QThreadPool

    from napari_nst._widget import StyleTransferWidget

    widget = StyleTransferWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Style Transfer")
    widget.content.value = viewer.layers["photo"]
    widget.style.value = viewer.layers["painting"]
    widget.vgg.value = "random"
    widget.device.value = "cpu"
    widget.size.value = 64
    widget.session.preview_interval = 0.0
    yield widget
    if widget.running:
        widget.cancel.clicked.emit()
        qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)


@pytest.fixture
def torch_home(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """An empty torch cache, so nothing from the machine's real cache is used."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def vgg19_state_dict(seed: int = 0, prefix: str = "features.") -> dict[str, torch.Tensor]:
    """Seeded random VGG19 weights in torchvision's key layout (tiny classifier stand-in)."""
    state: dict[str, torch.Tensor] = {}
    for index, (weight, bias) in random_convs(seed).items():
        state[f"{prefix}{index}.weight"] = weight
        state[f"{prefix}{index}.bias"] = bias
    if prefix == "features.":
        state["classifier.0.weight"] = torch.zeros(4, 4)
    assert len(CONV_INDICES) == 16
    return state


@pytest.fixture
def files(tmp_path, content_rgb, style_rgb):
    """The photo and the painting as PNG files, for the CLI: (content, style, folder)."""
    import imageio.v3 as iio

    content, style = tmp_path / "content.png", tmp_path / "style.png"
    iio.imwrite(content, content_rgb)
    iio.imwrite(style, style_rgb)
    return content, style, tmp_path


@pytest.fixture
def content_rgb() -> np.ndarray:
    """A 48×64 uint8 photo-like image with structure at several scales."""
    y, x = np.mgrid[0:48, 0:64] / 64.0
    channels = [np.sin(9 * x) * np.cos(7 * y), np.sin(17 * (x + y)), np.cos(5 * x * y * 9)]
    image = (np.stack(channels, axis=-1) + 1) / 2
    return np.rint(image * 255).astype(np.uint8)


@pytest.fixture
def style_rgb() -> np.ndarray:
    """A 40×56 striped 'painting' with a different colour palette."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:40, 0:56]
    stripes = (np.sin((x + 0.5 * y) / 2.0) > 0).astype(np.float32)
    image = np.stack([stripes, 1 - stripes, rng.random((40, 56))], axis=-1)
    return np.rint(image * 255).astype(np.uint8)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on a Dask cluster (the ``client`` fixture) is ``slow``, like the ones that
    start a process or soak the widget, which say so themselves."""
    for item in items:
        if "client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
