"""The flags (``cli/options.py``): built from the option table, each under its group's
heading with the table's help, reaching the engine as the option of the same name;
old flag names still work."""

from __future__ import annotations

import argparse
import json

import pytest

from napari_nst.cli import build_parser
from napari_nst.core.options import GROUPS, TABLE, Options


def test_the_cli_takes_the_pyramid_flags():
    from napari_nst.cli import build_parser

    flags = ["--pyramid", "on", "--pyramid-iterations", "7"]
    args = build_parser().parse_args(["stylize", "a.png", "b.png", "-o", "c.png", *flags])
    assert (args.pyramid, args.pyramid_iterations) == ("on", 7)
    assert Options.from_kwargs({"pyramid": "on", "pyramid_iterations": 7}).pyramid_iterations == 7
    with pytest.raises(ValueError, match="pyramid must be one of"):
        Options(pyramid="sometimes")


NON_DEFAULT = {
    "int": lambda spec: int(spec.range[1]),
    "float": lambda spec: float(spec.range[1] if spec.default != spec.range[1] else spec.range[0]),
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
    if spec.name in ("vgg", "device", "checkpoint", "decoders"):
        return  # free text, checked when the run starts
    engine = Options.from_kwargs(options)
    assert getattr(engine, spec.name) != spec.default


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
