"""Charts as SVG text, written by hand: line charts, scatter plots with a fitted line, heatmaps, bars.

The design card keeps the runtime packages to four (torch, numpy, tokenizers, requests), so the
project draws its own figures. An SVG file is plain XML: shapes (`<line>`, `<circle>`, `<rect>`,
`<polyline>`) and `<text>` placed in pixel coordinates, y growing downwards. Each chart maps its
data onto a plot box with a `Frame`, draws the axes with "nice" ticks (steps of 1, 2 or 5 times a
power of ten), then its marks, then a legend. pages.py puts the charts in a web page (report.py's
and reproduce.py's).

    svg.line_chart({"sst": [(1, 0.41), (2, 0.47)], "sts": [(1, 0.62), (2, 0.70)]},
                   title="dev metric per epoch", x_label="epoch", y_label="accuracy or r")
    svg.scatter(gold, pred, "similarity", x_label="gold", y_label="predicted", line=(slope, intercept))
    svg.heatmap(counts, labels=["0", "1"], title="paraphrase")   # counts (K, K): rows gold, columns predicted
    svg.bar_chart(["cross", "bi"], {"overall": [(0.75, 0.01), (0.70, 0.02)]}, title="pair encoding", y_label="dev")

Each function returns the whole document as a string; files.write_text writes it. Every piece of
text goes through `escape`: sentences and run names may hold `<`, `&` or quotes.
"""

import html
import math
from dataclasses import dataclass

import numpy as np

WIDTH, HEIGHT = 600, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 56  # margins around the plot box: room for ticks and titles
FONT = "font-family:Helvetica,Arial,sans-serif;font-size:13px"
# Okabe and Ito's palette: eight colours that stay distinct for colour-blind readers
# Lines also differ in their dashes, so a line drawn over an equal one still shows through.
DASHES = (None, "8 4", "2 3", "10 3 2 3")
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def escape(text):
    """Text made safe to put inside an XML element or attribute."""
    return html.escape(str(text), quote=True)


def nice_ticks(lo, hi, count=5):
    """About `count` round values covering [lo, hi]: a step of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"cannot place ticks on [{lo}, {hi}]")
    if hi - lo <= 1e-9 * max(abs(lo), abs(hi), 1e-300):  # one value (or two a rounding apart): widen
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    rough = (hi - lo) / count
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    first = math.floor(lo / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < hi - 1e-9 * step:
        ticks.append(first + len(ticks) * step)
    return [round(t, 12) for t in ticks]


def tick_label(value, ticks):
    """A tick value with as many decimals as the step between ticks needs."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    decimals = max(0, -math.floor(math.log10(abs(step)) + 1e-9))
    return f"{value:.{decimals}f}"


@dataclass
class Frame:
    """Maps data coordinates onto the plot box, whose top-left corner is (left, top) in pixels."""

    x_ticks: list
    y_ticks: list
    left: float = LEFT
    top: float = TOP
    width: float = WIDTH - LEFT - RIGHT
    height: float = HEIGHT - TOP - BOTTOM

    def x(self, value):
        lo, hi = self.x_ticks[0], self.x_ticks[-1]
        return self.left + (value - lo) / (hi - lo) * self.width

    def y(self, value):
        lo, hi = self.y_ticks[0], self.y_ticks[-1]
        return self.top + self.height - (value - lo) / (hi - lo) * self.height  # SVG's y grows downwards


def text(x, y, content, anchor="middle", size=None, weight=None, fill=None, rotate=None, cls=None):
    attrs = f'x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"'
    attrs += f' font-size="{size}"' * bool(size) + f' font-weight="{weight}"' * bool(weight)
    attrs += f' fill="{fill}"' * bool(fill) + f' class="{cls}"' * bool(cls)
    if rotate is not None:
        attrs += f' transform="rotate({rotate} {x:.1f} {y:.1f})"'
    return f"<text {attrs}>{escape(content)}</text>"


def document(body, width=WIDTH, height=HEIGHT, title=""):
    """The SVG document around a list of elements, on a white background."""
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" style="{FONT}">',
            f"<title>{escape(title)}</title>",
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def axes(frame, title, x_label, y_label, x_tick_labels=None, y_tick_labels=None):
    """Title, grid lines, the two axes with ticks and tick labels, and the axis titles."""
    out = [text(frame.left + frame.width / 2, 22, title, size=15, weight="bold")]
    bottom, right = frame.top + frame.height, frame.left + frame.width
    for i, value in enumerate(frame.y_ticks):
        y = frame.y(value)
        label = y_tick_labels[i] if y_tick_labels else tick_label(value, frame.y_ticks)
        out.append(f'<line x1="{frame.left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<line x1="{frame.left - 5}" y1="{y:.1f}" x2="{frame.left}" y2="{y:.1f}" stroke="#333"/>')
        out.append(text(frame.left - 8, y + 4, label, anchor="end", cls="tick"))
    for i, value in enumerate(frame.x_ticks):
        x = frame.x(value)
        label = x_tick_labels[i] if x_tick_labels else tick_label(value, frame.x_ticks)
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="#333"/>')
        out.append(text(x, bottom + 19, label, cls="tick"))
    out.append(f'<line x1="{frame.left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>')
    out.append(f'<line x1="{frame.left}" y1="{frame.top}" x2="{frame.left}" y2="{bottom}" stroke="#333"/>')
    out.append(text(frame.left + frame.width / 2, bottom + 42, x_label))
    out.append(text(18, frame.top + frame.height / 2, y_label, rotate=-90))
    return out


def legend(entries, x, y):
    """One row per (label, colour, style): a short line in the series' style (style "dot": a dot),
    then its name."""
    out = []
    for i, (label, color, dash) in enumerate(entries):
        row = y + 20 * i
        if dash == "dot":
            out.append(f'<circle cx="{x + 11}" cy="{row}" r="4" fill="{color}"/>')
        else:
            out.append(
                f'<line x1="{x}" y1="{row}" x2="{x + 22}" y2="{row}" stroke="{color}" stroke-width="2.5"'
                + f' stroke-dasharray="{dash}"' * bool(dash)
                + "/>"
            )
        out.append(text(x + 28, row + 4, label, anchor="start", cls="legend"))
    return out


def legend_width(entries):
    """Room on the right for the legend: its swatch and its longest label (about 7.5 px a character)."""
    return 50 + round(7.5 * max(len(str(label)) for label, _, _ in entries))


# ----------------------------------------------------------------------------
# the four charts


def line_chart(series, title, x_label, y_label, integer_x=True):
    """series: {name: [(x, y), ...]}, one line with a marker per point each, in the order given.
    integer_x puts ticks on whole numbers only (epochs)."""
    points = [p for values in series.values() for p in values]
    if not points:
        raise ValueError("line_chart needs at least one point")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = nice_ticks(min(xs), max(xs), count=min(8, max(2, len(set(xs)))))
    if integer_x and x_ticks[1] - x_ticks[0] < 1:  # no tick at epoch 1.5
        lo, hi = math.floor(min(xs)), math.ceil(max(xs))
        x_ticks = list(range(lo, hi + 1)) if hi > lo else [lo - 1, lo, lo + 1]
    frame = Frame(x_ticks, nice_ticks(min(ys), max(ys)))
    body = axes(frame, title, x_label, y_label)
    entries = []
    for i, (name, values) in enumerate(series.items()):
        color, dash = COLORS[i % len(COLORS)], DASHES[i % len(DASHES)]
        coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in values)
        style = f'stroke="{color}" stroke-width="2.5"' + f' stroke-dasharray="{dash}"' * bool(dash)
        body.append(f'<polyline points="{coords}" fill="none" {style}/>')
        for x, y in values:
            body.append(
                f'<circle class="point" cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="3.5" fill="{color}">'
                f"<title>{escape(name)}: {escape(f'{y:.4g}')} at {escape(f'{x:g}')}</title></circle>"
            )
        entries.append((name, color, dash))
    body += legend(entries, WIDTH + 10, TOP + 10)
    return document(body, width=WIDTH + legend_width(entries), title=title)


def bar_chart(categories, series, title, y_label):
    """Grouped bars: series {name: [(mean, std) or None, ...]}, one value per category, a bar per
    series in each category's group; std > 0 draws a whisker of +- std, None draws no bar."""
    values = [v for vs in series.values() for v in vs if v is not None]
    if not values:
        raise ValueError("bar_chart needs at least one value")
    lo, hi = min(0.0, min(m - s for m, s in values)), max(0.0, max(m + s for m, s in values))  # bars start at 0
    # a shorter plot box: the category names stand slanted below it
    frame = Frame([0, len(categories)], nice_ticks(lo, hi), height=HEIGHT - TOP - 150)
    body = axes(frame, title, "", y_label, x_tick_labels=["", ""])
    group = 0.8 / len(series)  # the share of a category's width each bar takes
    entries = []
    for k, (name, vs) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        for i, v in enumerate(vs):
            if v is None:
                continue
            mean, std = v
            x0, x1 = frame.x(i + 0.1 + k * group), frame.x(i + 0.1 + (k + 1) * group)
            y0, y1 = frame.y(max(mean, 0.0)), frame.y(min(mean, 0.0))
            body.append(
                f'<rect class="bar" x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                f'fill="{color}"><title>{escape(name)}: {escape(f"{mean:.4f}")}</title></rect>'
            )
            if std > 0:
                xm = (x0 + x1) / 2
                ya, yb = frame.y(mean - std), frame.y(mean + std)
                body.append(f'<line x1="{xm:.1f}" y1="{ya:.1f}" x2="{xm:.1f}" y2="{yb:.1f}" stroke="#333"/>')
        entries.append((name, color, None))
    bottom = frame.top + frame.height
    for i, label in enumerate(categories):
        short = label if len(label) <= 30 else label[:29] + "…"
        body.append(text(frame.x(i + 0.5), bottom + 14, short, anchor="end", size=11, rotate=-30))
    body += legend(entries, WIDTH + 10, TOP + 10)
    return document(body, width=WIDTH + legend_width(entries), title=title)


def scatter(xs, ys, title, x_label, y_label, line=None, line_label="least-squares fit", diagonal=True):
    """One dot per (x, y); line=(slope, intercept) draws y = slope * x + intercept across the x range;
    diagonal draws y = x dashed, where perfect predictions would lie."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)  # (N,), (N,)
    if xs.shape != ys.shape or xs.size == 0:
        raise ValueError("scatter needs two equally long, non-empty arrays")
    lo, hi = min(xs.min(), ys.min()), max(xs.max(), ys.max())
    ticks = nice_ticks(lo, hi)  # the same scale on both axes, so the diagonal is at 45 degrees
    frame = Frame(ticks, ticks)
    body = axes(frame, title, x_label, y_label)
    # Many points overlap: small, half-transparent dots show where they pile up.
    for x, y in zip(xs, ys):
        cx, cy = frame.x(x), frame.y(y)
        body.append(f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="#0072B2" fill-opacity="0.35"/>')
    entries = [("predictions", "#0072B2", "dot")]
    if diagonal:
        a, b = ticks[0], ticks[-1]
        body.append(
            f'<line x1="{frame.x(a):.1f}" y1="{frame.y(a):.1f}" x2="{frame.x(b):.1f}" y2="{frame.y(b):.1f}" '
            'stroke="#888" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        entries.append(("y = x", "#888", "6 4"))
    if line is not None:
        slope, intercept = line
        x0, x1 = xs.min(), xs.max()
        body.append(
            f'<line class="fit" x1="{frame.x(x0):.1f}" y1="{frame.y(slope * x0 + intercept):.1f}" '
            f'x2="{frame.x(x1):.1f}" y2="{frame.y(slope * x1 + intercept):.1f}" stroke="#D55E00" stroke-width="2.5"/>'
        )
        entries.append((line_label, "#D55E00", None))
    body += legend(entries, WIDTH + 10, TOP + 10)
    return document(body, width=WIDTH + legend_width(entries), title=title)


def blue(share):
    """White for 0 to dark blue for 1: the colour of a cell holding `share` of its row."""
    light, dark = np.array([247, 251, 255]), np.array([8, 48, 107])
    r, g, b = (light + (dark - light) * min(max(share, 0.0), 1.0)).round().astype(int)
    return f"rgb({r},{g},{b})"


def heatmap(counts, labels, title, x_label="predicted", y_label="gold"):
    """A confusion matrix: counts (K, K), rows gold, columns predicted. A cell's colour is its share
    of the row (recall along the diagonal), so rare classes read as clearly as common ones; each cell
    prints the share and the count."""
    counts = np.asarray(counts)  # (K, K)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"heatmap needs a ({k}, {k}) matrix for {k} labels, got {counts.shape}")
    rows = counts.sum(axis=1, keepdims=True)  # (K, 1)
    shares = counts / np.maximum(rows, 1)  # (K, K); an empty row stays 0
    side = 340  # the plot box is square
    frame = Frame([0, k], [0, k], width=side, height=side)
    cell = side / k
    body = [text(frame.left + side / 2, 22, title, size=15, weight="bold")]
    for i in range(k):
        for j in range(k):
            x, y = frame.left + j * cell, frame.top + i * cell
            ink = "white" if shares[i, j] > 0.5 else "#222"
            body.append(
                f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                f'fill="{blue(shares[i, j])}" stroke="white"/>'
            )
            body.append(text(x + cell / 2, y + cell / 2, f"{shares[i, j]:.2f}", size=15, fill=ink, cls="share"))
            body.append(text(x + cell / 2, y + cell / 2 + 17, f"({counts[i, j]})", size=11, fill=ink, cls="count"))
    for i, label in enumerate(labels):
        body.append(text(frame.left - 8, frame.top + (i + 0.5) * cell + 4, label, anchor="end", cls="tick"))
        body.append(text(frame.left + (i + 0.5) * cell, frame.top + side + 19, label, cls="tick"))
    body.append(text(frame.left + side / 2, frame.top + side + 42, x_label))
    body.append(text(18, frame.top + side / 2, y_label, rotate=-90))
    body += colour_bar(frame.left + side + 30, frame.top, side)
    width = frame.left + side + 110
    return document(body, width=width, height=frame.top + side + BOTTOM, title=title)


def colour_bar(x, y, height):
    """The heatmap's legend: the colour scale from 0 (bottom) to 1 (top) of the row's examples."""
    steps = 20
    out = []
    for s in range(steps):
        share = 1 - (s + 0.5) / steps
        out.append(
            f'<rect x="{x}" y="{y + s * height / steps:.1f}" width="16" height="{height / steps + 0.5:.1f}" '
            f'fill="{blue(share)}"/>'
        )
    out.append(f'<rect x="{x}" y="{y}" width="16" height="{height}" fill="none" stroke="#999"/>')
    for value in (0.0, 0.5, 1.0):
        out.append(text(x + 22, y + (1 - value) * height + 4, f"{value:.1f}", anchor="start", cls="tick"))
    out.append(text(x + 60, y + height / 2, "share of the gold row", rotate=90))
    return out
