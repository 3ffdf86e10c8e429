"""What the dock asks the run session for: one typed request per run.

A request holds the prepared engine run (validated and with its inputs copied, so
later edits of layers or boxes do not change it) and where its result goes. Its
``kind`` says what sort of run it is; the fields a kind needs are set by the
constructor that makes it, so nothing is switched on by the presence of a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np
    from napari.layers import Image, Layer

    from .._layers import Selection
    from ..core.provenance import RunRecord
    from ..core.step import Run

Kind = Literal["new", "continue", "full size", "sweep"]


class Target(Protocol):
    """The array a run's planes are written into (``_layers.OutputTarget``)."""

    @property
    def array(self) -> np.ndarray: ...

    def write(self, index: tuple[int, ...], image: np.ndarray) -> None: ...


class SweepTarget(Target, Protocol):
    """One run's plane of a sweep's shared layer (``sweep.SweepPlane``)."""

    parameter: str

    def publish(self, record: dict[str, Any]) -> dict[str, Any]: ...

    def add_layer(self, viewer: Any, data: Any, name: str, geometry: Any, record: dict,
                  rgb: bool, display: dict[str, Any] | None = None) -> Image: ...  # fmt: skip


@dataclass(frozen=True)
class RunRequest:
    """A run and its destination."""

    run: Run
    """The engine run: ``StyleTransfer``, ``FastTransfer`` or ``StackOnDask``."""
    name: str
    """The output layer's name."""
    selection: Selection
    """What of the content layer the run reads, and where its result lies in the world."""
    sources: dict[str, Any] = field(default_factory=dict)
    """The layers the record names (content, style(s), labels, plane)."""
    colormap: str | None = None
    """A gray content's colormap, for a gray result (None: colour)."""
    kind: Kind = "new"
    record: RunRecord | None = None
    """``continue`` and ``full size``: the record the run extends."""
    output: Image | None = None
    """``continue``: the layer it writes into."""
    target: Target | None = None
    """``continue``: the array behind that layer; ``sweep``: its plane of the sweep."""
    label: str | None = None
    """The queue's line for it (default: the output layer's name)."""

    @property
    def sweep(self) -> SweepTarget | None:
        return self.target if self.kind == "sweep" else None  # type: ignore[return-value]

    @property
    def extends_curve(self) -> bool:
        """A continuation (in its layer, or at full size in a new one) carries on its
        run's loss curve and record."""
        return self.record is not None

    def continuing(self, run: Run, record: RunRecord, output: Layer, target: Target) -> RunRequest:
        """The same destination, for ``run`` carrying on ``record`` into ``output``."""
        return replace(self, run=run, kind="continue", record=record, output=output, target=target)

    def at_full_size(self, run: Run, record: RunRecord) -> RunRequest:
        """A new layer beside this one for ``run``, a full-size continuation of ``record``."""
        return replace(
            self, run=run, kind="full size", name=f"{self.name} (full size)", record=record,
            output=None, target=None, label=None,
        )  # fmt: skip

    def in_sweep(self, plane: SweepTarget, name: str, label: str) -> RunRequest:
        """One plane of a sweep's shared layer ``name``."""
        return replace(self, kind="sweep", name=name, target=plane, label=label)
