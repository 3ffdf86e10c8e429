"""The widget's whole-stack mode on a Dask cluster: planes stream in, Cancel cancels.

One module-scoped ``LocalCluster`` (2 single-threaded worker processes on
127.0.0.1, no dashboard, one task per worker at a time) whose address is typed
into the widget; it is closed, workers and all, after the module.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from napari_nst._layers import RECORD_KEY
from tests.helpers import (
    WAIT_MS,
    child_pids,
    local_client,
    new_children,
    outputs,
    press_and_wait,
    transformer_state,
)

PLANES = 6


@pytest.fixture(scope="module")
def client():
    """A client of the cluster (``client.cluster``): Dask's threads start here, not in a test."""
    with local_client() as client:
        yield client


@pytest.fixture
def stack(widget, viewer):
    """A (6, 48, 48) uint16 stack in the viewer, chosen as content, whole-stack mode."""
    y, x = np.mgrid[0:48, 0:48]
    noise = np.random.default_rng(0).random((PLANES, 48, 48))
    planes = [np.sin(x / (4 + k)) * np.cos(y / 5.0) for k in range(PLANES)]
    data = (2000 + 1500 * np.stack(planes) + 300 * noise).astype(np.uint16)
    layer = viewer.add_image(data, name="cells", contrast_limits=(100, 3900))
    widget.reset_choices()
    widget.content.value = layer
    widget.stack.value = "all"
    return layer


@pytest.fixture
def fast(widget, stack, tmp_path):
    model = tmp_path / "candy.pth"
    torch.save(transformer_state(), model)
    widget.method.value = "fast"
    widget.checkpoint.value = model
    return model


def _ours(key: object) -> bool:
    """A task of a widget run: one plane of its task group."""
    return isinstance(key, tuple) and str(key[0]).startswith("napari-nst-plane-")


def test_the_scheduler_field_belongs_to_whole_stack_mode(widget, viewer):
    shown = lambda: widget.dask_scheduler.native.isVisibleTo(widget.native)  # noqa: E731
    widget.stack.value = "all"
    assert not shown()  # the photo is one plane: no stack controls at all
    widget.stack.value = "slice"
    planes = np.arange(3 * 32 * 32, dtype=np.float32).reshape(3, 32, 32)
    widget.content.value = viewer.add_image(planes, name="stack")
    assert not shown()
    widget.stack.value = "all"
    assert shown() and widget.dask_scheduler.label == "Dask scheduler"
    widget.stack.value = "slice"
    assert not shown()


def test_planes_stream_from_the_cluster_into_one_layer_as_in_process(
    widget, viewer, qtbot, client, fast, monkeypatch
):
    press_and_wait(widget, qtbot)  # in this process first: the reference
    (local,) = outputs(viewer)
    expected = np.array(local.data)
    viewer.layers.remove(local)

    steps: list = []
    take_step = widget.session._take_step
    monkeypatch.setattr(
        widget.session, "_take_step", lambda s, r: (steps.append(s), take_step(s, r))
    )
    refreshes: list[int] = []
    viewer.layers.events.inserted.connect(
        lambda event: event.value.events.set_data.connect(lambda _: refreshes.append(1))
    )
    widget.dask_scheduler.value = client.cluster.scheduler_address
    press_and_wait(widget, qtbot)

    (output,) = outputs(viewer)
    np.testing.assert_array_equal(output.data, expected)
    assert sorted(s.index for s in steps) == [(k,) for k in range(PLANES)]  # a step per plane
    assert all(s.plane_done and s.image is not None for s in steps)
    assert [s.done for s in steps] == [False] * (PLANES - 1) + [True]
    assert len(refreshes) >= PLANES - 1  # the one layer, refreshed as planes arrived
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done"
    assert record["planes"] == {"done": PLANES, "total": PLANES}
    assert record["dask"] == {"scheduler": client.cluster.scheduler_address, "workers": 2}
    assert record["checkpoint"]["path"] == str(fast) and record["device"] == "cpu"
    assert widget.run.enabled and not widget.cancel.enabled


def test_cancel_cancels_the_remaining_tasks_and_keeps_the_finished_planes(
    widget, viewer, qtbot, client, stack
):
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Transitions(SchedulerPlugin):
        name = "napari-nst-test-transitions"

        def __init__(self) -> None:
            self.seen: dict[int, list[tuple[str, str]]] = {}

        def transition(self, key, start, finish, *args, stimulus_id, **kwargs) -> None:
            if _ours(key):
                self.seen.setdefault(key[1], []).append((finish, stimulus_id))

    widget.iterations.value = 10  # Gatys planes of seconds: most are still to come
    widget.dask_scheduler.value = client.cluster.scheduler_address
    plugin = Transitions()
    client.cluster.scheduler.add_plugin(plugin)
    client.register_plugin(Executed())
    try:
        widget.run.clicked.emit()
        qtbot.waitUntil(
            lambda: (record := widget.session.record) is not None and record.planes["done"] >= 1,
            timeout=WAIT_MS,
        )
        press_and_wait(widget, qtbot, widget.cancel)
        tasks = client.cluster.scheduler.tasks
        qtbot.waitUntil(lambda: not any(_ours(key) for key in tasks), timeout=WAIT_MS)
        executed = client.run(lambda dask_worker: dask_worker.plugins[Executed.name].keys)
    finally:
        client.cluster.scheduler.remove_plugin(name=plugin.name)
        client.unregister_worker_plugin(Executed.name)

    (output,) = outputs(viewer)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "cancelled"
    assert record["dask"]["planes"].startswith("planes run independently")
    written = [k for k in range(PLANES) if output.data[k].std() > 0]
    assert 1 <= len(written) == record["planes"]["done"] < PLANES
    assert all(output.data[k].max() == 100 for k in range(PLANES) if k not in written)
    seen = plugin.seen
    assert sorted(seen) == list(range(PLANES))  # every plane was submitted
    computed = {k for k, moves in seen.items() if "memory" in {f for f, _ in moves}}
    cancelled = {
        k for k, moves in seen.items() if any(s.startswith("cancel-key") for _, s in moves)
    }
    assert set(written) <= computed
    assert set(range(PLANES)) - computed <= cancelled  # the rest were cancelled, not dropped
    # A plane can finish on its worker in the instant the client cancels it (the client
    # hears of the result a message later): computed and cancelled, never written.
    assert not (cancelled & set(written))
    ran = {key for keys in executed.values() for key in keys}
    assert computed <= ran and len(ran) < PLANES  # and some of them never ran at all
    assert widget.run.enabled and not widget.cancel.enabled


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # the cluster tests are skipped
    WorkerPlugin = object


class Executed(WorkerPlugin):
    """Worker plugin: the planes this worker started executing."""

    name = "napari-nst-test-executed"

    def setup(self, worker) -> None:
        self.keys: list[int] = []

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing" and _ours(key):
            self.keys.append(key[1])


def test_a_local_cluster_is_started_for_the_run_and_shut_down_after(
    widget, viewer, qtbot, client, fast
):

    press_and_wait(widget, qtbot)
    (local,) = outputs(viewer)
    expected = np.array(local.data)
    viewer.layers.remove(local)
    before = child_pids()
    widget.dask_scheduler.value = "local:1"
    press_and_wait(widget, qtbot)
    (output,) = outputs(viewer)
    np.testing.assert_array_equal(output.data, expected)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["dask"] == {"scheduler": "local", "workers": 1}
    assert not new_children(before), "the run's local cluster was not shut down"


def test_without_distributed_a_scheduler_says_how_to_install_it(
    widget, viewer, qtbot, stack, monkeypatch
):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    widget.dask_scheduler.value = "local"
    widget.run.clicked.emit()
    assert not widget.running and not outputs(viewer)
    assert shown == [
        "Style transfer: a Dask scheduler needs dask.distributed, which is not installed: "
        "pip install 'napari-nst[dask]'"
    ]


def test_an_unreachable_scheduler_fails_the_run_with_a_message(widget, qtbot, stack, monkeypatch):
    pytest.importorskip("distributed")
    from napari_nst.batch import cluster

    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    widget.dask_scheduler.value = "tcp://127.0.0.1:9"
    press_and_wait(widget, qtbot)
    assert len(shown) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in shown[0]
    assert widget.session.record.status == "failed" and widget.run.enabled
