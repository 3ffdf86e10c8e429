"""Recipes: a run record makes the same image again, from Python, the CLI and the widget."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from napari_nst._layers import RECORD_KEY
from napari_nst.cli import main
from napari_nst.core import iter_stylize, prepare, stylize
from napari_nst.core.options import PRESETS
from tests.conftest import WAIT_MS

CPU = ["--vgg", "random", "--size", "64", "--device", "cpu", "--quiet"]


def _stylize_logged(files, name: str, *extra: str) -> tuple[np.ndarray, dict]:
    content, style, tmp = files
    out, log = tmp / f"{name}.png", tmp / f"{name}.json"
    assert main(["stylize", str(content), str(style), "-o", str(out), "--log-json", str(log),
                 *extra]) == 0  # fmt: skip
    return iio.imread(out), json.loads(log.read_text())


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("napari-nst: error: ")
    return err


def test_python_replays_a_cli_record_bit_for_bit_in_its_threads(files, content_rgb, style_rgb):
    threads = torch.get_num_threads()
    image, record = _stylize_logged(files, "cli", "--iterations", "3", "--seed", "3",
                                    "--style-strength", "0.5", "--init", "noisy", "--threads",
                                    "1", *CPU)  # fmt: skip
    assert record["threads"] == 1 and torch.get_num_threads() == threads
    assert np.array_equal(stylize(content_rgb, style_rgb, recipe=record), image)
    *_, last = iter_stylize(content_rgb, style_rgb, recipe=record)
    assert np.array_equal(last.image, image)
    assert torch.get_num_threads() == threads  # the recipe's count only while computing
    # Keywords override the recipe; the rest is the recipe's.
    options = prepare(content_rgb, style_rgb, recipe=record, iterations=1, tv_weight=2.0).options
    assert options.iterations == 1 and options.tv_weight == 2.0
    assert options.seed == 3 and options.init == "noisy" and options.style_strength == 0.5
    weighted = prepare(content_rgb, style_rgb, recipe=record, style_weight=5.0).options
    assert weighted.style_weight == 5.0 and weighted.style_strength is None
    faithful = prepare(content_rgb, style_rgb, recipe=record, preset="faithful").options
    faithful_weight = PRESETS["faithful"]["style_weight"]
    assert faithful.style_weight == faithful_weight and faithful.seed == 3  # not the recipe's
    with pytest.raises(ValueError, match=r"unknown option\(s\) 'colour'"):
        prepare(content_rgb, style_rgb, recipe={"colour": "red"})


def test_cli_replays_its_own_log_bit_for_bit_and_flags_override_it(files, capsys):
    image, record = _stylize_logged(files, "first", "--iterations", "3", "--seed", "5",
                                    "--tv-weight", "0.5", "--preset", "bold", "--threads", "1",
                                    *CPU)  # fmt: skip
    log = str(files[2] / "first.json")
    again, replay = _stylize_logged(files, "again", "--recipe", log, "--quiet")
    assert np.array_equal(again, image)
    assert replay["params"] == record["params"] and replay["threads"] == 1
    assert "note:" not in capsys.readouterr().err  # nothing ran unlike the recipe
    _, changed = _stylize_logged(files, "changed", "--recipe", log, "--iterations", "2",
                                 "--threads", "2", "--quiet")  # fmt: skip
    assert changed["params"] == record["params"] | {"iterations": 2}
    assert changed["threads"] == 2
    assert "unlike the recipe's run, threads was 1, now 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"iterations": "__import__('os').system('touch PWNED')"}, "iterations must be a whole"),
        ({"params": {"__class__": "os.system('touch PWNED')"}}, "unknown option(s) '__class__'"),
        ({"colour": "red", "iterations": 2}, "unknown option(s) 'colour'"),
        ({"vgg": "__import__('os').system('touch PWNED')"}, "VGG19 file not found"),
        ({"params": {"iterations": 2}, "threads": "os.system('touch PWNED')"}, "threads must be"),
        ("import os; os.system('touch PWNED')", "is not valid JSON"),
        (["iterations", 3], "must be a JSON object"),
    ],
)
def test_a_bad_recipe_exits_2_with_one_line_and_runs_nothing(
    files, capsys, monkeypatch, recipe, message
):
    content, style, tmp = files
    monkeypatch.chdir(tmp)
    path = tmp / "recipe.json"
    path.write_text(recipe if isinstance(recipe, str) else json.dumps(recipe))
    args = ["stylize", str(content), str(style), "-o", "out.png", "--recipe", str(path)]
    assert main([*args, "--device", "cpu", "--quiet"]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp / "PWNED").exists() and not (tmp / "out.png").exists()


# --- the widget -------------------------------------------------------------------------


def _run(widget, qtbot):
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = [layer for layer in widget._viewer.layers if RECORD_KEY in layer.metadata]
    assert output.metadata[RECORD_KEY]["status"] == "done"
    widget._viewer.layers.selection.active = output
    return output


@pytest.mark.slow
def test_an_exported_recipe_makes_the_layer_again_with_the_cli(widget, qtbot, files):
    """The acceptance round trip: widget run, Export recipe, `napari-nst stylize --recipe`."""
    content, style, tmp = files
    viewer = widget._viewer
    widget.content.value = viewer.add_image(iio.imread(content), name="content")
    widget.style.value = viewer.add_image(iio.imread(style), name="style")
    widget.iterations.value, widget.seed.value, widget.tv_weight.value = 3, 4, 0.5
    output = _run(widget, qtbot)

    widget.recipe_file.value = tmp / "r.json"
    widget.export_recipe.clicked.emit()
    recipe = json.loads((tmp / "r.json").read_text())
    assert recipe == json.loads(json.dumps(output.metadata[RECORD_KEY]))
    assert recipe["params"]["seed"] == 4 and recipe["params"]["vgg"] == "random"
    assert recipe["sources"] == {"content": "content", "style": "style"}
    # The widget's run leaves a core to napari; the recipe holds the count it used.
    from napari_nst._torch_in_gui import run_threads

    assert recipe["device"] == "cpu" and recipe["threads"] == run_threads()
    assert recipe["vgg"]["source"] == "random" and "torch" in recipe["versions"]

    done = subprocess.run(
        [sys.executable, "-m", "napari_nst.cli", "stylize", str(content), str(style),
         "--recipe", str(tmp / "r.json"), "-o", str(tmp / "out.png"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == ""
    assert np.array_equal(iio.imread(tmp / "out.png"), output.data)


def test_what_the_widget_takes_from_the_layer_is_in_the_recipe(widget, qtbot, style_rgb):
    """Gray content: its window and anisotropic pixels shape the result, and replay."""
    gray = np.random.default_rng(1).integers(0, 4000, (48, 48), dtype=np.uint16)
    layer = widget._viewer.add_image(gray, name="scan", scale=(1.0, 1.5))
    layer.contrast_limits = (500, 3000)
    widget.content.value = layer
    widget.iterations.value = 3
    output = _run(widget, qtbot)
    record = output.metadata[RECORD_KEY]
    assert record["params"]["contrast_limits"] == [500, 3000]
    assert record["params"]["spacing"] == [1.0, 1.5] and record["working_size"] == [43, 64]
    assert np.array_equal(stylize(gray, style_rgb, recipe=record), output.data)


def test_load_recipe_fills_every_field_and_the_layer_pickers(widget, qtbot, monkeypatch, tmp_path):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.recipes.show_info", shown.append)
    viewer = widget._viewer
    widget.preset.value = "bold"
    widget.iterations.value, widget.seed.value, widget.style_scale.value = 3, 7, 0.75
    widget.preserve_color.value, widget.output_range.value = "histogram", "unit"
    widget.early_stop_tol.value, widget.content_weight.value = 0.05, 2.5
    expected = widget.options()
    output = _run(widget, qtbot)

    widget.preset.value = "faithful"
    widget.iterations.value, widget.seed.value, widget.style_scale.value = 50, 0, 1.0
    widget.preserve_color.value, widget.output_range.value = "none", "original"
    widget.early_stop_tol.value, widget.vgg.value = 0.0, "torchvision"
    widget.content.value, widget.style.value = viewer.layers["painting"], output
    assert widget.options() != expected
    viewer.layers.selection.active = output
    widget.load_recipe.clicked.emit()
    assert widget.options() == expected
    assert widget.content.value is viewer.layers["photo"]
    assert widget.style.value is viewer.layers["painting"]
    assert shown == ["Settings of 'photo × painting' loaded"]
    # With no recipe file chosen, Export asks where (here: dismissed, then a path).
    asked: list[str] = []
    monkeypatch.setattr("napari_nst._widget.recipes._ask_path", lambda _, name: asked.append(name))
    widget.export_recipe.clicked.emit()
    chosen = tmp_path / "asked.json"
    monkeypatch.setattr("napari_nst._widget.recipes._ask_path", lambda *_: str(chosen))
    widget.export_recipe.clicked.emit()
    assert asked == ["photo × painting"] and widget.recipe_file.value == chosen
    assert json.loads(chosen.read_text())["params"] == output.metadata[RECORD_KEY]["params"]


def test_a_layer_without_a_record_is_refused_and_nothing_is_written(widget, tmp_path, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.recipes.show_error", shown.append)
    widget._viewer.layers.selection.active = widget._viewer.layers["photo"]
    before = widget.options()
    widget.load_recipe.clicked.emit()
    widget.recipe_file.value = tmp_path / "r.json"
    widget.export_recipe.clicked.emit()
    assert shown == [
        "Load recipe: layer 'photo' has no run record; select an output layer of a style "
        "transfer run",
        "Export recipe: layer 'photo' has no run record; select an output layer of a style "
        "transfer run",
    ]
    assert widget.options() == before and not (tmp_path / "r.json").exists()
