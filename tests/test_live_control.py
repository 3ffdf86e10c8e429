"""Steering a run from outside: new weights mid-run, continuing a finished run, and
the coarse-to-fine schedule that starts a run."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst.core import STOP, gatys, iter_stylize, prepare
from napari_nst.core.options import Options
from napari_nst.core.provenance import RunRecord

TINY = {"size": 64, "vgg": "random", "device": "cpu", "seed": 0, "preview_every": 1}


def test_pyramid_sizes_climb_in_root_two_steps_to_the_target():
    assert gatys.sizes(512) == [128, 181, 256, 362, 512]
    assert gatys.sizes(600) == [128, 181, 256, 362, 600]  # 512 is too close to 600
    assert gatys.sizes(128) == [128] and gatys.sizes(100) == [100]
    assert gatys.wanted(Options(size=384)) and not gatys.wanted(Options(size=256))
    assert gatys.wanted(Options(size=256, pyramid="on"))
    assert not gatys.wanted(Options(size=2048, pyramid="off"))


def test_a_pyramid_run_climbs_its_levels_and_starts_full_size_ahead(
    content_rgb, style_rgb, monkeypatch
):
    monkeypatch.setattr(gatys, "START", 32)
    options = TINY | {"iterations": 6, "pyramid_iterations": 4}
    job = prepare(content_rgb, style_rgb, pyramid="on", **options)
    # 32 px would make the 48×64 photo 24 px high, under the network's minimum: skipped.
    assert gatys.sizes(64) == [32, 45, 64]
    assert [level.size for level in job.levels] == [45, 64]
    steps = [step for step in job.steps() if not step.cancelled]
    assert [step.level for step in steps] == [0] * 4 + [1] * 6
    assert [step.iteration for step in steps] == list(range(1, 11))
    assert steps[-1].total == 10 and steps[-1].done and steps[-1].image.shape == (48, 64, 3)
    assert [level["size"] for level in job.info()["pyramid"]] == [45, 64]

    # On the loss scale of 0.1 (raw MSE, its style and TV weights), where this margin
    # was measured; at this tiny size (45 px, then 64) the normalised loss gains less.
    raw = options | {"loss_norm": "none", "style_weight": 1e6, "tv_weight": 1.0}
    climbed = [s for s in prepare(content_rgb, style_rgb, pyramid="on", **raw).steps()]
    single = list(iter_stylize(content_rgb, style_rgb, pyramid="off", **raw))
    first_full_size = climbed[4].losses["total"]
    # Upsampled from the coarse levels, the full-size start is far along already.
    assert first_full_size < 0.5 * single[0].losses["total"]


def test_weights_sent_mid_run_hold_from_the_next_iteration_and_are_recorded(
    content_rgb, style_rgb
):
    steps = iter_stylize(content_rgb, style_rgb, iterations=8, **TINY)
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
    steps = iter_stylize(content_rgb, style_rgb, iterations=4, **TINY)
    next(steps)
    with pytest.raises(ValueError, match="content_weight, style_weight, tv_weight"):
        steps.send({"learning_rate": 1.0})


def test_continue_goes_on_from_the_result_with_the_numbering_of_the_same_run(
    content_rgb, style_rgb
):
    job = prepare(content_rgb, style_rgb, iterations=5, **TINY)
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
    job = prepare(content_rgb, style_rgb, iterations=3, **TINY)
    steps = job.steps()
    next(steps)
    steps.send({"style_weight": 10.0})
    for _ in steps:
        pass
    assert job.continued(2).options.style_weight == 10.0


def test_a_run_stopped_early_can_be_continued_and_one_never_run_cannot(content_rgb, style_rgb):
    job = prepare(content_rgb, style_rgb, iterations=20, **TINY)
    steps = job.steps()
    for step in steps:
        if step.iteration == 3:
            final = steps.send(STOP)
    # The loop then ends: the stopped step was the generator's last.
    assert final.cancelled and final.iteration == 3 and job.last_iteration == 3
    assert [step.iteration for step in job.continued(2).steps()] == [4, 5]
    with pytest.raises(ValueError, match="no finished result"):
        prepare(content_rgb, style_rgb, iterations=2, **TINY).continued(2)


def test_the_cli_takes_the_pyramid_flags():
    from napari_nst.cli import build_parser

    flags = ["--pyramid", "on", "--pyramid-iterations", "7"]
    args = build_parser().parse_args(["stylize", "a.png", "b.png", "-o", "c.png", *flags])
    assert (args.pyramid, args.pyramid_iterations) == ("on", 7)
    assert Options.from_kwargs({"pyramid": "on", "pyramid_iterations": 7}).pyramid_iterations == 7
    with pytest.raises(ValueError, match="pyramid must be one of"):
        Options(pyramid="sometimes")


def _steered_run(content, style, **options):
    """A run steered as a user would: weights changed at iteration 3, then continued."""
    job = prepare(content, style, iterations=5, **TINY, **options)
    record = RunRecord(job.options.to_dict())
    steps = job.steps()
    for step in steps:
        record.update(step)
        if step.iteration == 2:
            record.update(steps.send({"style_weight": 3e5, "tv_weight": 0.5}))
    result = None
    for step in job.continued(3).steps():
        record.update(step)
        result = step.image if step.image is not None else result
    return record.to_dict(), result


def test_a_steered_and_continued_run_is_recorded_and_replays_exactly(content_rgb, style_rgb):
    from napari_nst.core import stylize

    record, result = _steered_run(content_rgb, style_rgb)
    assert record["weight_changes"] == [{"iteration": 3, "style_weight": 3e5, "tv_weight": 0.5}]
    assert record["continued"] == [{"after": 5, "iterations": 3}]
    assert record["iteration"] == 8 and len(record["history"]) == 8
    assert record["status"] == "done"
    replayed = stylize(content_rgb, style_rgb, recipe=record)
    assert np.array_equal(replayed, result)
    plain = dict(record, weight_changes=[], continued=[])
    assert not np.array_equal(stylize(content_rgb, style_rgb, recipe=plain), result)


def test_the_cli_replays_a_steered_record(content_rgb, style_rgb, tmp_path):
    import json

    from skimage import io

    from napari_nst.cli import main

    record, result = _steered_run(content_rgb, style_rgb)
    io.imsave(tmp_path / "content.png", content_rgb, check_contrast=False)
    io.imsave(tmp_path / "style.png", style_rgb, check_contrast=False)
    (tmp_path / "recipe.json").write_text(json.dumps(record))
    out, log = tmp_path / "out.png", tmp_path / "log.json"
    code = main([
        "stylize", str(tmp_path / "content.png"), str(tmp_path / "style.png"), "-o", str(out),
        "--recipe", str(tmp_path / "recipe.json"), "--log-json", str(log), "--quiet",
    ])  # fmt: skip
    assert code == 0
    assert np.array_equal(io.imread(out), result)
    replay = json.loads(log.read_text())
    assert replay["weight_changes"] == record["weight_changes"]
    assert replay["continued"] == record["continued"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"weight_changes": [{"iteration": 2, "lr": 1}]}, "can change"),
        ({"weight_changes": [{"iteration": "2", "style_weight": 1}]}, "whole numbers"),
        ({"continued": [{"after": 3}]}, "whole numbers"),
        ({"continued": "soon"}, "must be a list"),
    ],
)
def test_bad_steering_in_a_recipe_is_refused(content_rgb, style_rgb, entry, message):
    from napari_nst.core.provenance import RecipeError

    record = {"params": {"iterations": 3, **TINY}, **entry}
    with pytest.raises(RecipeError, match=message):
        prepare(content_rgb, style_rgb, recipe=record)
