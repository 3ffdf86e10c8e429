"""Records written by napari-nst 0.1 (raw MSE losses, torchvision weights by default,
512 px default size) replay bit for bit: the result each made is committed beside it
(``tests/data/records_0.1``, made by the 0.1 code with precision 'auto' as fp32)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_nst import stylize
from napari_nst.core.provenance import parse_recipe

RECORDS = Path(__file__).parent / "data" / "records_0.1"


@pytest.mark.parametrize("name", sorted(path.stem for path in RECORDS.glob("*.json")))
def test_a_record_from_before_normalisation_replays_bit_for_bit(name, content_rgb, style_rgb):
    record = json.loads((RECORDS / f"{name}.json").read_text())
    expected = np.load(RECORDS / f"{name}.npy")
    assert "loss_norm" not in record["params"]
    content = content_rgb if expected.ndim == 3 else content_rgb.mean(-1).astype(np.uint8)
    np.testing.assert_array_equal(stylize(content, style_rgb, recipe=record), expected)


def test_an_old_record_keeps_its_unnormalised_losses_and_the_defaults_of_its_time():
    record = json.loads((RECORDS / "default_size.json").read_text())
    options = parse_recipe(record).options
    assert options["loss_norm"] == "none"
    assert options["size"] == 512 and options["pyramid"] == "off"
    assert options["vgg"] == "random"
    strength = json.loads((RECORDS / "strength_gray_pyramid.json").read_text())
    options = parse_recipe(strength).options
    assert "style_strength" not in options
    assert options["style_weight"] == strength["params"]["style_weight"]
    # A plain dict of options is not a record: it takes today's defaults.
    assert "loss_norm" not in parse_recipe({"iterations": 3}).options


def test_a_record_whose_strength_meant_another_weight_replays_the_weight(content_rgb, style_rgb):
    """Strength 1 stood for style weight 10 before the slider's -2…2 became 0.1…10; the
    record's weight wins, and the result is the one that run made (``records_0.2``)."""
    folder = RECORDS.parent / "records_0.2"
    record = json.loads((folder / "strength_log10.json").read_text())
    assert record["params"]["style_strength"] == 1.0 and record["params"]["style_weight"] == 10
    options = parse_recipe(record).options
    assert "style_strength" not in options and options["style_weight"] == 10.0
    expected = np.load(folder / "strength_log10.npy")
    np.testing.assert_array_equal(stylize(content_rgb, style_rgb, recipe=record), expected)
    # A record of today's mapping keeps its strength, for the slider.
    today = record | {"params": record["params"] | {"style_weight": 10**0.5}}
    assert parse_recipe(today).options["style_strength"] == 1.0
