"""The unit of progress the engine streams to every consumer (widget, CLI, scripts)."""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .images import native_size

if TYPE_CHECKING:
    import torch

    from .images import Layout, Rendering
    from .options import Options

STOP = "stop"
"""Send this into a running :func:`iter_stylize` generator to end it early.

The generator answers with one last ``Step`` (``done=True, cancelled=True``) that
carries the best image found so far, so "Cancel" never throws work away.
"""


@dataclass(frozen=True)
class Step:
    """One optimisation iteration as seen from outside the engine.

    ``image`` is only filled every ``preview_every`` iterations (and on each plane's
    last step) because converting and copying it to the host is the expensive part
    of observing a run. In a stack run ``image`` is one plane, at ``index``;
    ``iteration`` and ``total`` count over the whole run, so one progress bar fits.
    """

    iteration: int
    total: int
    losses: dict[str, float]
    elapsed: float
    image: np.ndarray | None = field(default=None, repr=False)
    done: bool = False
    cancelled: bool = False
    evaluations: int = 0
    """Loss-and-gradient evaluations so far (a line-search iteration may need several)."""
    index: tuple[int, ...] = ()
    """Position of ``image`` in the content's leading (stack) axes; () for a 2-D run."""
    plane: int = 0
    """Number of the plane being optimised, counting from 0, in C order over ``index``."""
    planes: int = 1
    plane_done: bool = False
    """True on the step that carries a plane's final image (the best one found)."""
    saved: str | None = None
    """A file written at this step (training checkpoints)."""
    converged: bool = False
    """True on a plane's final step when early stopping ended it before ``iterations``."""
    level: int = 0
    """Coarse-to-fine level of this step, counting from 0; ``levels - 1`` is full size."""
    levels: int = 1
    reweighted: dict[str, Any] = field(default_factory=dict)
    """Weights ``send``-ed mid-run, on the first step whose losses use them."""
    remaining: float | None = None
    """Estimated seconds until the run ends (None until the first iterations were timed)."""


@runtime_checkable
class Run(Protocol):
    """What every prepared run offers its driver (widget, CLI, batch, Dask, scripts).

    ``steps()`` streams :class:`Step` s; ``send(STOP)`` into it or ``cancel()`` (from any
    thread) ends it with the best image so far. The flags say what else a driver may do:
    hold the stream to pause (``pausable``), send loss weights into it (``steerable``),
    go on after it ends (``continuable``: ``continued(iterations, size=None)``, which
    raises ``ValueError`` on a run that is not), and give its finished result again with
    another ``alpha`` from features it kept (``redecodable``: ``redecoded(alpha)``, the
    universal methods' slider; ``ValueError`` elsewhere).
    """

    options: Options
    layout: Layout
    """The content as the run reads it (planes, dtype, window)."""
    rendering: Rendering
    """How the result comes back: shape, dtype, range."""
    device: torch.device | str
    """Where it runs (``str()`` names it: ``cpu``, ``cuda:0``, a server's address)."""
    shape: tuple[int, int]
    """The working (H, W) of a plane."""
    last_iteration: int
    """The last iteration a continuable run finished; a continuation goes on from it."""
    pausable: bool
    steerable: bool
    continuable: bool
    redecodable: bool

    @property
    def planes(self) -> int: ...

    @property
    def full_size(self) -> int:
        """The working size at the content's own resolution."""
        ...

    def continued(self, iterations: int, size: int | None = None) -> Run: ...

    def redecoded(self, alpha: float) -> np.ndarray: ...

    def steps(self) -> Generator[Step, Any, Any]: ...

    def cancel(self) -> None: ...

    def hold(self, paused: bool) -> None:
        """Pause (or resume) the computation itself, where holding the stream does not
        (a run on a server); a run in this process pauses when its stream is held."""
        ...

    def info(self) -> dict[str, Any]: ...


class LocalRun:
    """What the runs computed in this process share (Gatys, fast, WCT and AdaIN): the
    plane count, the native size, a stop flag for any thread, and the answers of a run
    that cannot go on or redecode. Each sets ``layout``, ``options`` and ``_stop``."""

    layout: Layout
    options: Options
    _stop: threading.Event
    one_pass = "one network pass"
    """What the method computes, for the message of a run that cannot be continued."""

    @property
    def planes(self) -> int:
        return len(self.layout.indices)

    @property
    def full_size(self) -> int:
        """The working size at the content's own resolution (the finer pixel spacing)."""
        return native_size(self.layout.plane_shape, self.options.spacing)

    def hold(self, paused: bool) -> None:
        """Nothing to do: the run pauses while its stream is held (see :class:`Run`)."""

    def cancel(self) -> None:
        """Ask the run to stop from any thread; seen before every level, tile and batch."""
        self._stop.set()

    def continued(self, iterations: int, size: int | None = None) -> Run:
        raise ValueError(
            f"a {self.options.method} run is {self.one_pass}: there is nothing to continue"
        )

    def redecoded(self, alpha: float) -> np.ndarray:
        raise ValueError("only wct and adain runs can be redecoded with another alpha")
