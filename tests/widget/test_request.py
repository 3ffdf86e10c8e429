"""The run request (``_widget/request.py``): it says its kind and where it goes, and the
dock's holds the prepared run."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst.core.fast import FastTransfer
from napari_nst.core.gatys import StyleTransfer


def test_a_run_request_says_its_kind_and_where_it_goes():
    from napari_nst._widget.request import RunRequest

    new = RunRequest(run="job", name="photo × painting", selection=None,  # type: ignore[arg-type]
                     sources={"content": "photo"})  # fmt: skip
    assert new.kind == "new" and not new.extends_curve and new.sweep is None
    record, layer, target = object(), object(), object()
    again = new.continuing("job 2", record, layer, target)  # type: ignore[arg-type]
    assert (again.kind, again.run, again.output, again.target) == ("continue", "job 2", layer,
                                                                    target)  # fmt: skip
    assert again.extends_curve and again.name == new.name
    full = again.at_full_size("job 3", record)  # type: ignore[arg-type]
    assert full.kind == "full size" and full.name == "photo × painting (full size)"
    assert full.output is None and full.target is None and full.extends_curve
    swept = new.in_sweep(target, "sweep layer", "style_weight = 3")  # type: ignore[arg-type]
    assert swept.kind == "sweep" and swept.sweep is target and swept.name == "sweep layer"
    assert swept.label == "style_weight = 3" and new.kind == "new"  # requests are values


@pytest.mark.parametrize("kind", ["gatys", "fast"])
def test_the_dock_request_holds_the_prepared_run(widget, kind):
    widget.method.value = kind
    widget.iterations.value = 2
    request = widget.prepare()
    assert request.kind == "new" and request.record is None
    assert request.sources["content"] == widget.content.value.name
    assert isinstance(request.run, FastTransfer if kind == "fast" else StyleTransfer)
    assert np.shares_memory(request.selection.data, widget.content.value.data) is False
