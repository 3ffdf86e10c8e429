"""How the records in this folder were written: by napari-nst at commit bf95956, before
the engine's refactor and the renames (``weights=``, ``init='blend'``), with the results
they made, for ``tests/core/test_provenance.py``. Run against that commit's source:

    git worktree add /tmp/before bf95956
    PYTHONPATH=/tmp/before/src python tests/data/records_0.3/make_records.py tests/data/records_0.3
"""

import json
import os
import sys
from pathlib import Path

os.environ["NAPARI_NST_PRECISION"] = "fp32"  # as in the tests

import numpy as np
import torch

from napari_nst.core import prepare
from napari_nst.core.provenance import RunRecord

out = Path(sys.argv[1])
y, x = np.mgrid[0:48, 0:64] / 64.0
channels = [np.sin(9 * x) * np.cos(7 * y), np.sin(17 * (x + y)), np.cos(5 * x * y * 9)]
content = np.rint((np.stack(channels, axis=-1) + 1) / 2 * 255).astype(np.uint8)
rng = np.random.default_rng(7)
yy, xx = np.mgrid[0:40, 0:56]
stripes = (np.sin((xx + 0.5 * yy) / 2.0) > 0).astype(np.float32)
style = np.rint(np.stack([stripes, 1 - stripes, rng.random((40, 56))], axis=-1) * 255).astype(
    np.uint8
)
torch.set_num_threads(1)


def save(name, record, result):
    record["threads"] = 1
    (out / f"{name}.json").write_text(json.dumps(record, indent=1))
    np.save(out / f"{name}.npy", result)


# 1. A run steered mid-way and continued, with the option names of that time.
tiny = {"size": 64, "weights": "random", "device": "cpu", "seed": 0, "preview_every": 1}
run = prepare(content, style, iterations=5, init="blend", **tiny)
record = RunRecord(run.options.to_dict())
steps = run.steps()
for step in steps:
    record.update(step)
    if step.iteration == 2:
        record.update(steps.send({"style_weight": 3.0, "tv_weight": 0.5}))
result = None
for step in run.continued(3).steps():
    record.update(step)
    result = step.image if step.image is not None else result
data = record.to_dict() | run.info()
save("steered_noisy_start", data, result)

# 2. A gray content, luminance only, coarse to fine, a preset.
gray = np.rint(content.mean(-1) * 16).astype(np.uint16)
options = {
    "size": 48,
    "weights": "random",
    "device": "cpu",
    "iterations": 4,
    "preset": "faithful",
    "pyramid": "on",
    "pyramid_iterations": 2,
}
run = prepare(gray, style, **options)
record = RunRecord(run.options.to_dict())
image = None
for step in run.steps():
    record.update(step)
    image = step.image if step.image is not None else image
save("gray_pyramid_faithful", record.to_dict() | run.info(), image)
np.save(out / "gray_content.npy", gray)

# 3. The fast method with the model napari-nst ships.
run = prepare(content, method="fast", device="cpu")
record = RunRecord(run.options.to_dict())
image = None
for step in run.steps():
    record.update(step)
    image = step.image if step.image is not None else image
save("fast_sample_model", record.to_dict() | run.info(), image)
print(sorted(p.name for p in out.iterdir()))
