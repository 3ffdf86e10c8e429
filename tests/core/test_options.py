"""Options (``core/options.py``): validation with readable messages, presets and style
strength, the option table (the README's, the widget's ranges) and renamed options."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from napari_nst import iter_stylize
from napari_nst.core import prepare
from napari_nst.core.options import BY_NAME, GROUPS, METHODS, TABLE, Options, markdown
from tests.helpers import TINY


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"style_scale": 0}, "style_scale must be greater than 0"),
        ({"style_scale": -1}, "style_scale must be a finite number"),
        ({"preserve_color": "hue"}, "preserve_color must be one of none, histogram, luminance"),
        ({"preserve_color": "luminance", "luminance_only": False}, "contradicts"),
        ({"early_stop_tol": float("nan")}, "early_stop_tol must be a finite number"),
        ({"early_stop_patience": 0}, "early_stop_patience must be at least 1"),
    ],
)
def test_bad_artistic_options(content_rgb, style_rgb, options, message):
    with pytest.raises(ValueError, match=message):
        prepare(content_rgb, style_rgb, **TINY | options)


def test_blend_weights_must_fit_the_styles(content_rgb, style_rgb):
    with pytest.raises(ValueError, match="has 3 value"):
        prepare(content_rgb, [style_rgb, style_rgb], style_blend_weights=(1, 1, 1), **TINY)
    with pytest.raises(ValueError, match="greater than 0"):
        prepare(content_rgb, [style_rgb, style_rgb], style_blend_weights=(0, 0), **TINY)
    with pytest.raises(ValueError, match="style image 2 "):
        prepare(content_rgb, [style_rgb, np.zeros((3, 3))], **TINY)


def test_presets_fill_unset_options_and_style_strength_is_a_log_ratio():
    """Each unit of strength is √10 times more style: -2…2 spans the weights 0.1…10."""
    from napari_nst.core.options import DEFAULT_STYLE_WEIGHT, Options

    bold = Options.from_kwargs({"preset": "bold"})
    assert bold.style_weight == 3.0 and bold.tv_weight == 10.0 and bold.preset == "bold"
    assert Options.from_kwargs({"preset": "bold", "style_weight": 5.0}).style_weight == 5.0
    texture = Options.from_kwargs({"preset": "texture only"})
    assert texture.content_weight == 0 and texture.init == "noise"
    stronger = Options.from_kwargs({"style_strength": 1.0})
    assert stronger.style_weight == pytest.approx(10**0.5 * DEFAULT_STYLE_WEIGHT)
    assert Options.from_kwargs({"style_strength": 2}).style_weight == pytest.approx(10.0)
    assert Options.from_kwargs({"style_strength": -2}).style_weight == pytest.approx(0.1)
    for bad, message in [
        ({"preset": "loud"}, "preset must be one of"),
        ({"style_strength": 3}, "from -2 to 2"),
        ({"style_strength": "lots"}, "style_strength must be a number"),
        ({"style_strength": 1, "style_weight": 5.0}, "not both"),
        ({"ema": 1.0}, "between 0 and 1"),
        ({"padding": "wrap"}, "padding must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            Options.from_kwargs(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"iterations": 0}, "iterations must be at least 1"),
        ({"iterations": -5}, "iterations must be at least 1"),
        ({"size": 0}, "size must be at least 32"),
        ({"style_weight": -1.0}, "style_weight must be a finite number"),
        ({"content_weight": float("nan")}, "content_weight must be a finite number"),
        ({"optimizer": "sgd"}, "optimizer must be one of lbfgs, adam"),
        ({"pooling": "min"}, "pooling must be one of max, avg"),
        ({"style_layers": ["relu9_9"]}, "unknown VGG19 layer 'relu9_9'"),
        ({"style_layer_weights": [1, 2]}, "style_layer_weights has 2 value(s)"),
        ({"device": "tpu"}, "unknown device"),
        ({"device": "cuda"}, "CUDA was requested but no CUDA GPU is available"),
        ({"colour": "blue"}, "unknown option(s) 'colour'"),
        ({"vgg": "/nonexistent/vgg.pth"}, "VGG19 file not found"),
    ],
)
def test_bad_options_raise_readable_value_errors(content_rgb, style_rgb, options, message):
    run = {**TINY, **options}
    with pytest.raises(ValueError, match=None) as error:
        # Option problems surface at the call (file problems on first step), never later.
        next(iter_stylize(content_rgb, style_rgb, **run))
    assert message in str(error.value)


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_table_describes_every_option_of_the_engine_once():
    names = [spec.name for spec in TABLE]
    assert len(names) == len(set(names))
    assert set(names) == {f.name for f in fields(Options)}
    assert [spec.group for spec in TABLE] == sorted(
        (spec.group for spec in TABLE), key=list(GROUPS).index
    )  # listed group by group, in the widget's order
    for spec in TABLE:
        assert spec.help and not spec.help.endswith(".")  # a phrase: help, tooltip, README
        assert set(spec.methods) <= set(METHODS) and spec.methods
        for choice in spec.choices or ():
            Options.from_kwargs({spec.name: choice})  # every choice is accepted
        if spec.choices:
            with pytest.raises(ValueError, match=spec.name):
                Options.from_kwargs({spec.name: "no such choice"})


@pytest.mark.parametrize("spec", [s for s in TABLE if s.range], ids=lambda s: s.name)
def test_the_ranges_the_widget_offers_are_accepted_by_the_engine(spec):
    cast = int if spec.kind == "int" else float
    low, high = spec.range
    for value in (cast(low), cast(high)):
        if spec.name == "learning_rate" and value == 0:
            continue  # 0 is the box's "unset"
        Options.from_kwargs({spec.name: value})


def test_the_readmes_option_table_is_the_tables():
    text = README.read_text(encoding="utf-8")
    start = "<!-- option table: made by docs/option_table.py -->\n"
    assert start in text, "the README lost its option-table markers"
    table = text.split(start, 1)[1].split("\n<!-- end of option table -->", 1)[0]
    assert table == markdown(), "run `python docs/option_table.py` to update the README"
    for spec in TABLE:
        assert f"| `{spec.name}` |" in table
    assert BY_NAME["size"].methods == METHODS  # size applies to every method


def test_renamed_options_and_choices_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="option 'weights' is now 'vgg'"):
        options = Options.from_kwargs({"weights": "random"})
    assert options.vgg == "random"
    with pytest.warns(DeprecationWarning, match="init='blend' is now init='noisy'"):
        assert Options.from_kwargs({"init": "blend"}).init == "noisy"
    with pytest.raises(ValueError, match="give vgg or its old name weights, not both"):
        Options.from_kwargs({"weights": "random", "vgg": "bundled"})
    assert "weights" not in BY_NAME and "blend" not in BY_NAME["init"].choices
    # One word, one meaning: a *weight* is how much a loss term (or a style) counts.
    for spec in TABLE:
        if "weight" in spec.name:
            assert spec.group in ("loss", "styles", "stacks"), spec.name
