"""A live loss curve for the Style Transfer widget, painted with QPainter.

napari does not ship matplotlib and a plotting dependency for one small chart is
not worth its import time, so this is a plain ``QWidget``. It runs on the main
thread next to the canvas, so the cost of a step must stay tiny: ``add`` appends
to preallocated arrays and asks Qt for a repaint (Qt merges repaints that pile up
between two frames; the layout is never touched), and painting draws at most two
points per pixel column and term, however long the run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QLineF, QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

if TYPE_CHECKING:
    from ..core import Step

COLOURS = {
    "content": "#4ea1ff",
    "style": "#ff9f43",
    "tv": "#4cd17a",
    "slice": "#c58cff",
}
"""One colour per loss term; ``total`` takes the text colour (white on napari's dark theme)."""
SPARE_COLOURS = ("#ff6b81", "#f7d94c", "#3dd6d0")
HEIGHT = 170


class _Series:
    """Iterations and values of one term, in arrays that double when full."""

    def __init__(self) -> None:
        self.x = np.empty(256, dtype=np.float64)
        self.y = np.empty(256, dtype=np.float64)
        self.size = 0

    def append(self, x: float, y: float) -> None:
        if self.size == len(self.x):
            self.x = np.concatenate([self.x, np.empty_like(self.x)])
            self.y = np.concatenate([self.y, np.empty_like(self.y)])
        self.x[self.size], self.y[self.size] = x, y
        self.size += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.size], self.y[: self.size]


class LossPlot(QWidget):
    """Losses against iteration on a log scale: one line per term, legend, ticks."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loss_plot")
        self.setMinimumHeight(HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        # Opaque: a repaint of the plot then never repaints the dock behind it.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setToolTip("Weighted loss terms per iteration (log scale); they add up to total.")
        self._series: dict[str, _Series] = {}
        self._steps = 0
        self._last_iteration = -math.inf
        self._low = math.inf  # smallest and largest positive value, kept as they come,
        self._high = -math.inf  # so painting never scans the data for the y range

    # -- data ---------------------------------------------------------------------

    def add(self, step: Step) -> bool:
        """Take a step's losses; False for steps that add no point.

        Setup and fast-method steps carry no losses, and a cancelled run repeats
        the iteration it stopped at (with the best losses), which would draw a
        line back in time.
        """
        if not step.losses or step.iteration <= self._last_iteration:
            return False
        self._last_iteration = step.iteration
        self._steps += 1
        for term, value in step.losses.items():
            series = self._series.get(term)
            if series is None:
                series = self._series[term] = _Series()
            series.append(step.iteration, value)
            if value > 0 and math.isfinite(value):
                self._low, self._high = min(self._low, value), max(self._high, value)
        self.update()
        return True

    def clear(self) -> None:
        self._series.clear()
        self._steps = 0
        self._last_iteration = -math.inf
        self._low, self._high = math.inf, -math.inf
        self.update()

    def count(self) -> int:
        """Steps plotted (each adds one point to every term it reports)."""
        return self._steps

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(self._series)

    def series(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(iterations, values) of one term, as copies."""
        x, y = self._series[term].arrays()
        return x.copy(), y.copy()

    # -- painting -------------------------------------------------------------------

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        try:
            self._paint(painter)  # antialiased curves only: straight lines are faster without
        finally:
            painter.end()

    def _paint(self, painter: QPainter) -> None:
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        base = palette.color(QPalette.ColorRole.Window)
        painter.fillRect(self.rect(), base)
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        metrics = QFontMetrics(font)
        line = metrics.height()
        left = metrics.horizontalAdvance("1e-10") + 8
        plot = QRectF(left, line + 6, self.width() - left - 8, self.height() - 2 * line - 12)
        plot = QRectF(plot.toRect())  # whole pixels: crisp axes without antialiasing
        grid = QColor(  # opaque: blending a translucent pen costs more than the curves
            *(
                round(0.8 * b + 0.2 * t)
                for b, t in zip(base.getRgb()[:3], text.getRgb()[:3], strict=True)
            )
        )
        painter.setPen(_pen(grid))
        painter.drawRect(plot)
        if plot.width() < 10 or plot.height() < 10:
            return
        if not self._series or self._high <= 0:
            painter.setPen(text)
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, "loss curve: press Run")
            return
        x0, x1 = self._x_range()
        y0, y1 = self._y_range()
        sx = plot.width() / (x1 - x0)
        sy = plot.height() / (y1 - y0)

        def to_px(x: float, log_y: float) -> QPointF:
            return QPointF(plot.left() + (x - x0) * sx, plot.bottom() - (log_y - y0) * sy)

        labels: list[tuple[QPointF, str, bool]] = []
        lines: list[QLineF] = []
        for value, label in _log_ticks(y0, y1, plot.height() / (line + 2)):
            point = to_px(x0, value)
            lines.append(QLineF(point, QPointF(plot.right(), point.y())))
            labels.append((point, label, True))
        for value in _linear_ticks(x0, x1, plot.width() / (metrics.horizontalAdvance("0000") * 2)):
            point = to_px(value, y0)
            lines.append(QLineF(point, QPointF(point.x(), plot.top())))
            labels.append((point, f"{value:g}", False))
        painter.setPen(_pen(grid))
        painter.drawLines(lines)
        painter.setPen(text)
        for point, label, vertical in labels:
            if vertical:
                box = QRectF(0, point.y() - line / 2, left - 4, line)
                painter.drawText(box, Qt.AlignmentFlag.AlignRight, label)
            else:
                box = QRectF(point.x() - 40, plot.bottom() + 2, 80, line)
                painter.drawText(box, Qt.AlignmentFlag.AlignHCenter, label)

        painter.setClipRect(plot.adjusted(-1, -1, 1, 1))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        terms = sorted(self._series, key=lambda term: term == "total")  # total on top
        for term in terms:
            x, y = self._series[term].arrays()
            keep = (y > 0) & np.isfinite(y)  # a log axis has no place for 0 (tv off, say)
            if not keep.any():
                continue
            columns, log_y = _decimate((x[keep] - x0) * sx, np.log10(y[keep]))
            points = _polygon(plot.left() + columns, plot.bottom() - (log_y - y0) * sy)
            for offset in (0.0, 0.8) if term == "total" else (0.0,):
                painter.setPen(_pen(self._colour(term, text)))
                if len(points) == 1:
                    painter.drawEllipse(points[0], 1.5, 1.5)
                else:  # 1-px (cosmetic) pens are Qt's fast path; total is two of them
                    painter.drawPolyline(points.translated(0.0, offset))
        painter.setClipping(False)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        self._paint_legend(painter, metrics, plot, text)

    def _paint_legend(
        self, painter: QPainter, metrics: QFontMetrics, plot: QRectF, text: QColor
    ) -> None:
        x = plot.left()
        for term in self._series:
            colour = self._colour(term, text)
            middle = round(plot.top() - 4 - metrics.height() / 2)
            painter.fillRect(QRectF(x, middle - 1, 12, 2), colour)
            painter.setPen(text)
            box = QRectF(x + 15, plot.top() - 4 - metrics.height(), 200, metrics.height())
            painter.drawText(box, Qt.AlignmentFlag.AlignLeft, term)
            x += 15 + metrics.horizontalAdvance(term) + 12
        note = "log scale"
        if x + metrics.horizontalAdvance(note) < plot.right():  # only where it fits
            painter.setPen(text)
            box = QRectF(
                plot.left(), plot.top() - 4 - metrics.height(), plot.width(), metrics.height()
            )
            painter.drawText(box, Qt.AlignmentFlag.AlignRight, note)

    def _colour(self, term: str, text: QColor) -> QColor:
        if term == "total":
            return text
        if term in COLOURS:
            return QColor(COLOURS[term])
        others = [name for name in self._series if name not in COLOURS and name != "total"]
        return QColor(SPARE_COLOURS[others.index(term) % len(SPARE_COLOURS)])

    def _x_range(self) -> tuple[float, float]:
        first = min(series.x[0] for series in self._series.values() if series.size)
        return first, max(self._last_iteration, first + 1)

    def _y_range(self) -> tuple[float, float]:
        low, high = math.log10(self._low), math.log10(self._high)
        pad = max(0.05 * (high - low), 0.1)
        return low - pad, high + pad


def _pen(colour: QColor) -> QPen:
    pen = QPen(colour, 0.0)  # width 0: cosmetic, one pixel at any zoom (the fast path)
    pen.setCosmetic(True)
    return pen


def _polygon(xs: np.ndarray, ys: np.ndarray) -> QPolygonF:
    """A QPolygonF filled from arrays: PyQt lets numpy write into its memory, which
    is a hundred times faster than one QPointF per point (kept as the fallback)."""
    polygon = QPolygonF()
    try:
        polygon.resize(len(xs))
        buffer = polygon.data()
        buffer.setsize(16 * len(xs))
        target = np.frombuffer(buffer, dtype=np.float64).reshape(len(xs), 2)
        target[:, 0], target[:, 1] = xs, ys
    except (AttributeError, TypeError, ValueError):  # PySide: no writable buffer
        polygon = QPolygonF([QPointF(x, y) for x, y in zip(xs.tolist(), ys.tolist(), strict=True)])
    return polygon


def _decimate(px: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most two points per pixel column (its lowest and highest value).

    Keeps spikes visible, which thinning to every n-th point would drop, and makes
    the cost of a repaint depend on the width of the widget, not the run's length.
    """
    columns = np.floor(px)
    if len(px) <= 2 * (columns[-1] - columns[0] + 1):
        return px, values
    starts = np.flatnonzero(np.r_[True, columns[1:] != columns[:-1]])
    low = np.minimum.reduceat(values, starts)
    high = np.maximum.reduceat(values, starts)
    # Alternate so that each column is a short vertical stroke joined to the next.
    out_x = np.repeat(columns[starts] + 0.5, 2)
    out_y = np.empty(2 * len(starts))
    out_y[0::2], out_y[1::2] = high, low
    return out_x, out_y


def _log_ticks(low: float, high: float, room: float) -> list[tuple[float, str]]:
    """Tick positions (log10) and labels: decades, or 1-2-5 within a narrow range.

    Labels share one notation: plain numbers while every tick is between 0.1 and
    1000, otherwise all in ``1e-3`` form (a column of mixed notations is hard to read).
    """
    first, last = math.floor(low), math.ceil(high)
    mantissas = (1, 2, 5) if high - low < 1.5 else (1,)
    ticks = [
        (m, k)
        for k in range(first, last + 1)
        for m in mantissas
        if low <= math.log10(m) + k <= high
    ]
    ticks = ticks[:: max(1, math.ceil(len(ticks) / max(room, 1)))]
    if not ticks:  # less than a factor of two: label the ends
        return [(value, f"{10.0**value:.3g}") for value in (low, high)]
    plain = all(-1 <= k <= 3 for _, k in ticks)
    return [(math.log10(m) + k, f"{m * 10.0**k:g}" if plain else f"{m}e{k}") for m, k in ticks]


def _linear_ticks(low: float, high: float, room: float) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside [low, high]."""
    span = high - low
    raw = span / max(room, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0)  # iterations are whole numbers
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) // step) + 1)]
