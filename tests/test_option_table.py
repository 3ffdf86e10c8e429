"""The option table: the CLI, the README (and, in test_widget_options.py, the widget and
recipes) are built from it and agree with the engine's options."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import pytest

from napari_nst.cli import build_parser
from napari_nst.core.options import BOTH, BY_NAME, GROUPS, TABLE, Options, markdown

README = Path(__file__).resolve().parents[1] / "README.md"
NON_DEFAULT = {
    "int": lambda spec: int(spec.range[1]),
    "float": lambda spec: float(spec.range[1]),
    "floats": lambda spec: {
        "contrast_limits": "0.5,9",
        "spacing": "1,2.5",
        "style_layer_weights": "2,1,1,1,1",
    }.get(spec.name, "2,1"),
    "names": lambda spec: "relu2_1,relu3_1",
    "mapping": lambda spec: "1:0,2:content",
}
"""A value other than the default for each kind, as typed on the command line."""


def _actions(subcommand: str) -> dict[str, tuple[str, argparse.Action]]:
    """Each flag of a subcommand's parser: (the heading it is listed under, its action)."""
    commands = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    parser = commands.choices[subcommand]
    return {
        action.option_strings[0]: (group.title, action)
        for group in parser._action_groups
        for action in group._group_actions
        if action.option_strings
    }


def test_the_table_describes_every_option_of_the_engine_once():
    names = [spec.name for spec in TABLE]
    assert len(names) == len(set(names))
    assert set(names) == {f.name for f in fields(Options)}
    assert [spec.group for spec in TABLE] == sorted(
        (spec.group for spec in TABLE), key=list(GROUPS).index
    )  # listed group by group, in the widget's order
    for spec in TABLE:
        assert spec.help and not spec.help.endswith(".")  # a phrase: help, tooltip, README
        assert set(spec.methods) <= set(BOTH) and spec.methods
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


@pytest.mark.parametrize("subcommand", ["stylize", "batch"])
def test_every_option_is_a_flag_under_its_groups_heading_with_the_tables_help(subcommand):
    actions = _actions(subcommand)
    for spec in TABLE:
        if subcommand == "batch" and spec.name == "label_styles":
            assert spec.flag not in actions  # no label images in a batch
            continue
        heading, action = actions[spec.flag]
        assert heading == f"{GROUPS[spec.group].lower()} options"
        assert action.help.startswith(spec.help) and action.default is argparse.SUPPRESS
        assert action.choices == (list(spec.choices) if spec.choices else None)


@pytest.mark.parametrize("spec", TABLE, ids=lambda s: s.name)
def test_a_flag_reaches_the_engine_as_the_option_of_the_same_name(spec):
    args = ["stylize", "c.png", "s.png", "-o", "o.png"]
    if spec.kind == "bool":
        args.append(f"--no-{spec.flag[2:]}")
    else:
        choices = [c for c in spec.choices or () if c != spec.default]
        value = choices[0] if choices else NON_DEFAULT.get(spec.kind, lambda s: "x")(spec)
        args += [spec.flag, str(value)]
    parsed = vars(build_parser().parse_args(args))
    skip = {"command", "content", "style", "output", "labels", "recipe", "threads"}
    options = {k: v for k, v in parsed.items() if k not in skip | {"log_json", "quiet"}}
    assert list(options) == [spec.name]
    if spec.name in ("vgg", "device", "checkpoint"):
        return  # free text, checked when the run starts
    engine = Options.from_kwargs(options)
    assert getattr(engine, spec.name) != spec.default


def test_the_readmes_option_table_is_the_tables():
    text = README.read_text(encoding="utf-8")
    start = "<!-- option table: made by docs/option_table.py -->\n"
    assert start in text, "the README lost its option-table markers"
    table = text.split(start, 1)[1].split("\n<!-- end of option table -->", 1)[0]
    assert table == markdown(), "run `python docs/option_table.py` to update the README"
    for spec in TABLE:
        assert f"| `{spec.name}` |" in table
    assert BY_NAME["size"].methods == BOTH


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


def test_old_flag_names_run_with_a_note_and_record_todays_names(tmp_path, content_rgb, capsys):
    import imageio.v3 as iio

    from napari_nst.cli import main

    content, style, log = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "run.json"
    iio.imwrite(content, content_rgb)
    iio.imwrite(style, content_rgb[::-1])
    code = main(["stylize", str(content), str(style), "-o", str(tmp_path / "o.png"),
                 "--weights", "random", "--init", "blend", "--iterations", "1", "--size", "48",
                 "--device", "cpu", "--quiet", "--log-json", str(log)])  # fmt: skip
    assert code == 0
    notes = capsys.readouterr().err.splitlines()
    assert "napari-nst: note: --weights is now --vgg; the old name still works" in notes
    assert "napari-nst: note: --init blend is now --init noisy; the old name still works" in notes
    params = json.loads(log.read_text())["params"]
    assert params["vgg"] == "random" and params["init"] == "noisy" and "weights" not in params
    assert "--weights" not in build_parser().format_help()  # not advertised
