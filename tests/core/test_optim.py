"""One level's optimisation (``core/optim.py``): early stop, EMA, cancel inside a line
search, new weights mid-run, continuing a run, and the estimate of the time left."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst import stylize
from napari_nst.core import STOP, iter_stylize, optim, prepare
from napari_nst.core.provenance import RunRecord
from tests.helpers import TINY, TINY_SEEDED, TINY_UNSIZED


def test_early_stop_ends_a_converged_run_and_records_it(content_rgb, style_rgb):
    # Without style and TV terms, starting from the content is already the optimum.
    record = RunRecord({})
    steps = list(
        iter_stylize(
            content_rgb, style_rgb, iterations=50, style_weight=0, tv_weight=0,
            early_stop_tol=1e-3, early_stop_patience=3, **TINY,
        )
    )  # fmt: skip
    for step in steps:
        record.update(step)
    final = steps[-1]
    assert final.done and final.converged and not final.cancelled
    assert final.iteration < 50 and final.image is not None
    assert record.status == "done" and record.to_dict()["early_stop"] == [
        {"plane": 0, "iteration": final.iteration}
    ]


def test_early_stop_leaves_an_improving_run_alone(content_rgb, style_rgb):
    steps = list(iter_stylize(content_rgb, style_rgb, iterations=6, early_stop_tol=1e-6, **TINY))
    totals = [step.losses["total"] for step in steps]
    assert len(steps) == 6 and steps[-1].iteration == 6 and not steps[-1].converged
    assert totals[-1] < totals[0]


def test_ema_returns_a_smoothed_iterate_and_padding_changes_the_borders(content_rgb, style_rgb):
    run = {"iterations": 6, **TINY}
    plain = stylize(content_rgb, style_rgb, **run).astype(float)
    smooth = stylize(content_rgb, style_rgb, ema=0.8, **run).astype(float)
    # The average of iterates that started at the content still weighs the start by
    # 0.8⁶ ≈ 0.26: it lags behind the optimiser, nearer the content.
    content = content_rgb.astype(float)
    assert not np.array_equal(plain, smooth)
    assert np.abs(smooth - content).mean() < 0.9 * np.abs(plain - content).mean()

    # Adam: L-BFGS's line search answers any change anywhere by branching into
    # another trajectory, which would hide that padding only acts at the border.
    run = TINY | {"iterations": 4, "optimizer": "adam"}
    zeros = stylize(content_rgb, style_rgb, **run).astype(float)
    reflect = stylize(content_rgb, style_rgb, padding="reflect", **run)
    border = np.zeros(zeros.shape[:2], bool)
    border[:2], border[-2:], border[:, :2], border[:, -2:] = True, True, True, True
    change = np.abs(reflect.astype(float) - zeros).mean(-1)
    assert change[border].mean() > change[~border].mean() > 0


def test_cancel_inside_a_line_search_ends_within_one_evaluation(
    content_rgb, style_rgb, monkeypatch
):
    from napari_nst.core import optim, prepare

    job = prepare(content_rgb, style_rgb, iterations=50, **TINY)
    calls = []
    evaluate = optim.Objective.__call__

    def counting(self):
        calls.append(1)
        result = evaluate(self)
        if len(calls) == 3:  # the user clicks Cancel while the optimiser is evaluating
            job.cancel()
        return result

    monkeypatch.setattr(optim.Objective, "__call__", counting)
    steps = list(job.steps())
    assert len(calls) == 4  # the evaluation after the click raised instead of running
    final = steps[-1]
    assert final.done and final.cancelled and final.image is not None
    assert final.losses["total"] <= steps[0].losses["total"]


def test_weights_sent_mid_run_hold_from_the_next_iteration_and_are_recorded(
    content_rgb, style_rgb
):
    steps = iter_stylize(content_rgb, style_rgb, iterations=8, **TINY_SEEDED)
    record = RunRecord({})
    seen = []
    for step in steps:
        record.update(step)
        seen.append(step)
        if step.iteration == 3:
            step = steps.send({"style_weight": 0, "tv_weight": 2.0})
            record.update(step)
            seen.append(step)
    assert [step.reweighted for step in seen[:3]] == [{}, {}, {}]
    assert seen[3].iteration == 4 and seen[3].reweighted == {"style_weight": 0.0, "tv_weight": 2.0}
    assert all(step.losses["style"] == 0 for step in seen[3:])
    assert all(step.losses["style"] > 0 for step in seen[:3])
    assert record.to_dict()["weight_changes"] == [
        {"iteration": 4, "style_weight": 0.0, "tv_weight": 2.0}
    ]
    assert seen[-1].done and seen[-1].iteration == 8


def test_a_bad_weight_change_is_refused_with_a_message(content_rgb, style_rgb):
    steps = iter_stylize(content_rgb, style_rgb, iterations=4, **TINY_SEEDED)
    next(steps)
    with pytest.raises(ValueError, match="content_weight, style_weight, tv_weight"):
        steps.send({"learning_rate": 1.0})


def test_continue_goes_on_from_the_result_with_the_numbering_of_the_same_run(
    content_rgb, style_rgb
):
    job = prepare(content_rgb, style_rgb, iterations=5, **TINY_SEEDED)
    first = [step for step in job.steps()]
    more = job.continued(4)
    second = list(more.steps())
    assert [step.iteration for step in second] == [6, 7, 8, 9]
    assert {step.total for step in second} == {9} and second[-1].done
    # It starts where the first run ended: not from the content again.
    assert second[0].losses["total"] == pytest.approx(first[-1].losses["total"], rel=1e-4)
    assert second[-1].losses["total"] < first[-1].losses["total"]
    assert not np.array_equal(second[-1].image, first[-1].image)


def test_continue_keeps_weights_changed_during_the_run(content_rgb, style_rgb):
    job = prepare(content_rgb, style_rgb, iterations=3, **TINY_SEEDED)
    steps = job.steps()
    next(steps)
    steps.send({"style_weight": 10.0})
    for _ in steps:
        pass
    assert job.continued(2).options.style_weight == 10.0


def test_a_run_stopped_early_can_be_continued_and_one_never_run_cannot(content_rgb, style_rgb):
    job = prepare(content_rgb, style_rgb, iterations=20, **TINY_SEEDED)
    steps = job.steps()
    for step in steps:
        if step.iteration == 3:
            final = steps.send(STOP)
    # The loop then ends: the stopped step was the generator's last.
    assert final.cancelled and final.iteration == 3 and job.last_iteration == 3
    assert [step.iteration for step in job.continued(2).steps()] == [4, 5]
    with pytest.raises(ValueError, match="no finished result"):
        prepare(content_rgb, style_rgb, iterations=2, **TINY_SEEDED).continued(2)


def test_steps_estimate_the_time_left_from_the_first_iterations(content_rgb, style_rgb):
    steps = list(iter_stylize(content_rgb, style_rgb, size=64, **TINY_UNSIZED | {"iterations": 6}))
    remaining = [step.remaining for step in steps]
    assert remaining[0] is None  # the first iteration (with the setup) is not timed
    assert all(r is not None and r >= 0 for r in remaining[1:-1])
    assert remaining[-1] is None  # the final step: nothing left
    assert remaining[1] > remaining[-2]


def test_the_long_run_note_names_a_smaller_size_and_its_time():
    note = optim.long_run_note(240, 384, "cpu")
    assert note == (
        "this run will take about 4 min (384 px on cpu); size='256' would take about "
        "1 min 40 s, a CUDA GPU seconds"
    )
    assert optim.long_run_note(30, 384, "cpu") is None
