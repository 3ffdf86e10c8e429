"""The job queue (``_widget/queue.py``): Run while running queues the job."""

from __future__ import annotations

from napari_nst._layers import RECORD_KEY
from tests.helpers import WAIT_MS, iteration, outputs, shown


def test_run_while_running_queues_the_job_and_one_network_serves_the_queue(
    widget, viewer, qtbot, monkeypatch
):
    from napari_nst.core import vgg

    draws: list[int] = []
    original = vgg.random_convs
    monkeypatch.setattr(vgg, "random_convs", lambda seed: draws.append(seed) or original(seed))
    vgg._shared_random_convs.cache_clear()

    widget.iterations.value = 2000
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: iteration(widget) >= 2, timeout=WAIT_MS)
    assert widget.run.enabled and widget.run.text == "Add to queue"
    widget.iterations.value = 3
    widget.run.clicked.emit()
    widget.iterations.value = 5
    widget.run.clicked.emit()
    assert [request.run.options.iterations for request in widget.queue.jobs] == [3, 5]
    assert shown(widget, "queue") and len(widget.queue) == 2
    assert "(5 it.)" in widget.queue[1].job.value

    widget.queue[1].cancel.clicked.emit()  # per-job cancel
    assert [request.run.options.iterations for request in widget.queue.jobs] == [3]
    widget.cancel.clicked.emit()  # ends the first run; the queued one starts
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    assert not widget.queue.jobs and not shown(widget, "queue") and widget.run.text == "Run"
    records = [layer.metadata[RECORD_KEY] for layer in outputs(viewer)]
    assert [(r["status"], r["params"]["iterations"]) for r in records] == [
        ("cancelled", 2000),
        ("done", 3),
    ]
    assert records[1]["iteration"] == 3 and len(records[1]["history"]) == 3
    assert draws == [0]  # the weights were made once for both runs


def test_a_queued_job_is_validated_when_run_is_pressed(widget, qtbot, monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", errors.append)
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    widget.size.value = 32  # too small: refused now, not when its turn comes
    widget.run.clicked.emit()
    assert len(errors) == 1 and "at least 32 px" in errors[0]
    assert not widget.queue.jobs
