"""The bad-input matrix: one table, each case's exact behaviour in the widget.

Every case runs through the Style Transfer widget as a user would (Run clicked)
and asserts: the outcome (a clear notification, or a finished run), no
exception escaping to napari, and the input layers byte-identical afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_nst._layers import RECORD_KEY
from tests.conftest import WAIT_MS, vgg19_state_dict
from tests.test_fast import transformer_state

RNG = np.random.default_rng(0)


def content(data, **layer_options):
    def setup(w, tmp_path):
        values = data() if callable(data) else data
        layer = w._viewer.add_image(values, name="input", **layer_options)
        w.reset_choices()
        w.content.value = layer

    return setup


def options(**values):
    def setup(w, tmp_path):
        for name, value in values.items():
            value = value(tmp_path) if callable(value) else value
            getattr(w, name).value = value

    return setup


def _file(name: str, state: object):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        torch.save(state() if callable(state) else state, path)
        return path

    return make


def _truncated(tmp_path: Path) -> Path:
    whole = _file("whole.pth", vgg19_state_dict)(tmp_path)
    path = tmp_path / "vgg19-truncated.pth"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return path


class Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _malicious(tmp_path: Path) -> Path:
    exploit = Exploit()
    exploit.marker = str(tmp_path / "pwned")
    return _file("mosaic.pth", {"conv1.conv2d.weight": exploit})(tmp_path)


def _lazy_dask():
    import dask.array as da

    return da.from_array(RNG.random((3, 40, 48)).astype(np.float32), chunks=(1, 40, 48))


def _lazy_zarr():
    import zarr

    array = zarr.zeros((3, 40, 48), chunks=(1, 40, 48), dtype="f4")
    array[:] = RNG.random((3, 40, 48))
    return array


# zarr and dask (as napari displays a dask layer) start lasting thread pools on first
# use; start them now so the leftover-thread check sees only threads of our making.
_lazy_zarr()
_lazy_dask().sum().compute()


def _nan_patches():
    data = RNG.random((48, 48))
    data[:8, :8], data[20, 20] = np.nan, np.inf
    return data


def _both(*setups):
    def setup(w, tmp_path):
        for step in setups:
            step(w, tmp_path)

    return setup


FAST = {"method": "fast"}
ERROR, DONE = "error", "done"
CASES = [
    ("no layers", lambda w, _: w._viewer.layers.clear(), ERROR, "choose a content image layer"),
    ("same layer twice", lambda w, _: setattr(w.style, "value", w.content.value), ERROR,
     "same layer"),
    ("1×1 image", content(np.ones((1, 1))), ERROR, "16 px on each side"),
    ("2×2 image", content(np.arange(4.0).reshape(2, 2)), ERROR, "16 px on each side"),
    ("100000 px side", content(np.tile(np.arange(100_000) % 251, (40, 1)).astype(np.uint8)),
     ERROR, "the shorter side must be at least 32 px"),
    ("all NaN", content(np.full((40, 40), np.nan)), ERROR, "no finite values"),
    ("NaN and Inf patches", content(_nan_patches), DONE, None),
    ("constant image", content(np.full((40, 40), 3.0)), ERROR, "constant"),
    ("negative floats", content(RNG.random((40, 40)) - 5), DONE, None),
    ("bool", content(RNG.random((40, 40)) > 0.5), DONE, None),
    ("uint16 full range", content(RNG.integers(0, 65536, (40, 40), dtype=np.uint16)), DONE,
     None),
    ("int32", content(RNG.integers(-1000, 1000, (40, 40), dtype=np.int32)), DONE, None),
    ("float64 RGB above 1", content(RNG.random((40, 40, 3)) * 300, rgb=True), DONE, None),
    ("2 channels last", content(RNG.random((40, 40, 2))), ERROR, "16 px on each side"),
    ("5 channels last", content(RNG.random((40, 40, 5))), ERROR, "16 px on each side"),
    ("RGB with channel first (a 3-slice stack to napari)", content(RNG.random((3, 40, 40))),
     DONE, None),
    ("multiscale pyramid", content([RNG.random((64, 64)), RNG.random((32, 32))],
                                   multiscale=True), DONE, None),
    ("dask-backed lazy stack", _both(content(_lazy_dask), options(stack="all")), DONE, None),
    ("zarr-backed lazy stack", _both(content(_lazy_zarr), options(stack="all")), DONE, None),
    ("weights file missing", options(vgg="file", vgg_file="/nonexistent/vgg19.pth"),
     ERROR, "VGG19 file not found"),
    ("weights file truncated", options(vgg="file", vgg_file=_truncated), ERROR,
     "could not read VGG19 file"),
    ("weights of another architecture",
     options(vgg="file", vgg_file=_file("net.pth", {"fc.weight": torch.zeros(2, 2)})),
     ERROR, "does not hold VGG19 convolution weights"),
    ("checkpoint of another architecture",
     options(method="fast", checkpoint=_file("vgg.pth", vgg19_state_dict)), ERROR,
     "not a fast-style TransformerNet checkpoint"),
    ("checkpoint that runs code", options(method="fast", checkpoint=_malicious), ERROR,
     "pickle that tries to run code is refused"),
    ("checkpoint missing", options(method="fast", checkpoint="/nonexistent/candy.pth"), ERROR,
     "checkpoint not found"),
    ("fast with a gray stack", _both(content(RNG.random((2, 40, 48))),
                                     options(method="fast", stack="all",
                                             checkpoint=_file("ok.pth", transformer_state))),
     DONE, None),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "outcome", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_matrix(widget, qtbot, monkeypatch, tmp_path, setup, outcome, message):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    widget.iterations.value = 1
    setup(widget, tmp_path)
    before = {layer.name: _snapshot(layer.data) for layer in widget._viewer.layers}
    widget.run.clicked.emit()  # must not raise, whatever the input
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    outputs = [layer for layer in widget._viewer.layers if RECORD_KEY in layer.metadata]
    if outcome == ERROR:
        assert len(shown) == 1 and message in shown[0], shown
        assert all(o.metadata[RECORD_KEY]["status"] == "failed" for o in outputs)
    else:
        assert not shown
        (output,) = outputs
        assert output.metadata[RECORD_KEY]["status"] == "done"
        assert np.isfinite(np.asarray(output.data, dtype=np.float64)).all()
    for layer in widget._viewer.layers:
        if layer.name in before:
            for old, new in zip(before[layer.name], _snapshot(layer.data), strict=True):
                np.testing.assert_array_equal(old, new)
    assert not (tmp_path / "pwned").exists()


def _snapshot(data) -> list[np.ndarray]:
    levels = data if isinstance(data, list) or hasattr(data, "levels") else [data]
    return [np.array(level, copy=True) for level in levels]


def test_only_image_layers_are_offered(widget):
    viewer = widget._viewer
    viewer.add_labels(np.zeros((40, 40), np.uint8), name="labels")
    viewer.add_points([[1, 1]], name="points")
    viewer.add_shapes([[[0, 0], [5, 5], [0, 5]]], shape_type="polygon", name="shapes")
    widget.reset_choices()
    for picker in (widget.content, widget.style):
        assert {layer.name for layer in picker.choices} == {"photo", "painting"}


def test_layer_deleted_or_replaced_during_a_run(widget, qtbot, content_rgb):
    viewer = widget._viewer
    widget.iterations.value = 30
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: (r := widget.session.record) is not None and r.iteration >= 2,
                    timeout=WAIT_MS)  # fmt: skip
    replacement = np.zeros((20, 20, 3), np.uint8)
    viewer.layers["painting"].data = replacement
    viewer.layers.remove("photo")
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = [layer for layer in viewer.layers if RECORD_KEY in layer.metadata]
    assert output.metadata[RECORD_KEY]["status"] == "done"
    assert output.data.shape == content_rgb.shape  # the run used its own snapshot
    np.testing.assert_array_equal(viewer.layers["painting"].data, replacement)
