"""The live loss curve (``_widget/loss_plot.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst._layers import RECORD_KEY
from tests.helpers import WAIT_MS, outputs, press_and_wait


def test_the_loss_curve_follows_the_run_and_its_continuation_and_clears_on_the_next(
    widget, viewer, qtbot
):
    widget.iterations.value = 6
    seen: list[bool] = []
    take_step = widget.session._take_step

    def counting(step, record):
        seen.append(bool(step.losses))
        take_step(step, record)

    widget.session._take_step = counting
    press_and_wait(widget, qtbot)

    plot = widget.loss_plot
    assert sum(seen) == 6 and plot.count() == 6
    assert set(plot.terms) == {"content", "style", "tv", "total"}
    iterations, total = plot.series("total")
    np.testing.assert_array_equal(iterations, np.arange(1, 7))
    (output,) = outputs(viewer)
    record = output.metadata[RECORD_KEY]
    np.testing.assert_allclose(total, [entry["losses"]["total"] for entry in record["history"]])
    plot.grab()  # paints without error, decimation included

    widget.iterations.value = 2
    widget.continue_run.clicked.emit()  # the same run goes on: so does its curve
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    np.testing.assert_array_equal(plot.series("total")[0], np.arange(1, 9))

    widget.run.clicked.emit()
    assert plot.count() == 0 and plot.terms == ()  # steps arrive through the event loop
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert plot.count() == 2 == len(plot.series("total")[0])


def test_the_loss_curve_skips_a_cancelled_repeat_and_steps_without_losses(widget):
    from napari_nst.core import Step

    plot = widget.loss_plot
    plot.add(Step(iteration=0, total=5, losses={}, elapsed=0.0))
    for iteration in (1, 2, 3):
        plot.add(Step(iteration, 5, {"total": 10.0 / iteration, "tv": 0.0}, 0.0))
    plot.add(Step(3, 5, {"total": 3.0}, 0.0, done=True, cancelled=True))
    assert plot.count() == 3
    np.testing.assert_allclose(plot.series("total")[1], [10.0, 5.0, 10 / 3])


def test_the_loss_curve_draws_at_most_two_points_per_pixel_column():
    from napari_nst._widget.loss_plot import _decimate, _polygon

    px = np.linspace(0, 199.9, 10_000)  # 10,000 iterations across 200 px
    values = np.sin(px) + (px == px[5000]) * 5  # one spike
    columns, kept = _decimate(px, values)
    assert len(columns) == len(kept) == 400
    assert kept.max() == values.max() and kept.min() == pytest.approx(values.min(), abs=1e-3)
    sparse = np.arange(50) * 4.0  # fewer points than pixels: every point stays
    np.testing.assert_array_equal(_decimate(sparse, values[:50])[1], values[:50])
    polygon = _polygon(columns, kept)
    assert len(polygon) == 400 and polygon[7].x() == columns[7] and polygon[7].y() == kept[7]
