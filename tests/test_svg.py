"""Tests for svg.py: every chart is well-formed XML with one mark per data point, drawn where the
data says, and every text is escaped."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

import svg

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(document):
    return ET.fromstring(document)


def texts(root, cls=None):
    return [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if cls is None or t.get("class") == cls]


def test_nice_ticks_are_round_and_cover_the_range():
    assert svg.nice_ticks(0, 5) == [0, 1, 2, 3, 4, 5]
    assert svg.nice_ticks(0.27, 0.69) == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert svg.nice_ticks(0, 1000) == [0, 200, 400, 600, 800, 1000]  # step 200: 2 x 10^2
    one = svg.nice_ticks(3, 3)  # a single value lies inside, not on an edge
    assert one[0] < 3 < one[-1]
    # Two values a rounding apart (overall scores 0.2361... of sst 0/24, para 5/24 and of 1/24, 4/24)
    # are one value: their ticks, rounded to 12 digits, were all equal, and a chart divided by 0.
    near = svg.nice_ticks(0.23611111111111108, 0.23611111111111113)
    assert len(set(near)) > 1 and near[0] < 0.2361111111111111 < near[-1]
    parse(svg.line_chart({"a": [(1, 0.49999999999999994), (2, 0.5)]}, "t", "x", "y"))
    with pytest.raises(ValueError):
        svg.nice_ticks(0, float("nan"))


def test_tick_labels_have_the_decimals_of_the_step():
    assert svg.tick_label(0.3, [0.2, 0.3]) == "0.3"
    assert svg.tick_label(0.25, [0.2, 0.25]) == "0.25"
    assert svg.tick_label(400, [0, 200]) == "400"


def test_line_chart_has_one_marker_per_point_a_line_per_series_and_a_legend():
    series = {"sst": [(1, 0.3), (2, 0.4), (3, 0.45)], "sts": [(1, 0.1), (2, 0.5)]}
    root = parse(svg.line_chart(series, "dev", "epoch", "accuracy"))
    assert len(root.findall(".//s:circle[@class='point']", NS)) == 5
    assert len(root.findall(".//s:polyline", NS)) == 2
    assert texts(root, "legend") == ["sst", "sts"]
    assert texts(root, "tick")[-3:] == ["1", "2", "3"]  # the x ticks come last
    # The second line is dashed, so it shows even where it lies on the first.
    assert [p.get("stroke-dasharray") for p in root.findall(".//s:polyline", NS)] == [None, svg.DASHES[1]]


def test_epoch_ticks_are_whole_numbers():
    two = parse(svg.line_chart({"a": [(1, 0.1), (2, 0.2)]}, "t", "epoch", "y"))
    assert texts(two, "tick")[-2:] == ["1", "2"]  # no tick at epoch 1.5
    one = parse(svg.line_chart({"a": [(1, 0.1)]}, "t", "epoch", "y"))
    assert texts(one, "tick")[-3:] == ["0", "1", "2"]


def test_line_chart_places_points_by_their_values():
    root = parse(svg.line_chart({"a": [(1, 0.0), (2, 1.0)]}, "t", "epoch", "y"))
    first, second = root.findall(".//s:circle", NS)
    assert float(first.get("cx")) < float(second.get("cx"))
    assert float(first.get("cy")) > float(second.get("cy"))  # higher values are higher up: smaller y


def test_text_is_escaped():
    name = "a <b> & \"c\" 'd'"
    document = svg.line_chart({name: [(1, 1.0)]}, f"title {name}", "x & y", "<y>")
    root = parse(document)  # would raise on an unescaped < or &
    assert name in texts(root, "legend") and "x & y" in texts(root) and "<y>" in texts(root)
    assert "<b>" not in document


def test_scatter_draws_every_point_and_the_given_line():
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(0, 5, 40), rng.uniform(0, 5, 40)
    slope, intercept = 0.5, 1.0
    root = parse(svg.scatter(xs, ys, "sts", "gold", "predicted", line=(slope, intercept)))
    assert len(root.findall(".//s:circle[@class='point']", NS)) == 40
    fit = root.find(".//s:line[@class='fit']", NS)
    # Read the line's two ends back into data coordinates with the chart's own frame.
    ticks = svg.nice_ticks(min(xs.min(), ys.min()), max(xs.max(), ys.max()))
    frame = svg.Frame(ticks, ticks)
    for end in ("1", "2"):
        px, py = float(fit.get("x" + end)), float(fit.get("y" + end))
        x = ticks[0] + (px - frame.left) / frame.width * (ticks[-1] - ticks[0])
        y = ticks[0] + (frame.top + frame.height - py) / frame.height * (ticks[-1] - ticks[0])
        assert y == pytest.approx(slope * x + intercept, abs=0.02)
    assert "least-squares fit" in texts(root, "legend")


def test_scatter_rejects_unequal_arrays():
    with pytest.raises(ValueError):
        svg.scatter([1, 2], [1], "t", "x", "y")


def test_heatmap_has_a_cell_per_pair_with_counts_and_row_shares():
    counts = np.array([[8, 2, 0], [1, 1, 2], [0, 0, 0]])
    root = parse(svg.heatmap(counts, ["0", "1", "2"], "confusion"))
    cells = root.findall(".//s:rect[@class='cell']", NS)
    assert len(cells) == 9
    assert [int(t.strip("()")) for t in texts(root, "count")] == counts.ravel().tolist()
    assert texts(root, "share")[:3] == ["0.80", "0.20", "0.00"]  # shares of the row, not of the total
    assert texts(root, "share")[6:] == ["0.00", "0.00", "0.00"]  # an empty row stays 0, not NaN
    # The darker the cell, the larger its share: 0.8 darker than 0.5 darker than 0.
    darkness = [sum(map(int, cells[i].get("fill")[4:-1].split(","))) for i in (0, 5, 2)]
    assert darkness[0] < darkness[1] < darkness[2]


def test_heatmap_rejects_a_matrix_that_does_not_match_the_labels():
    with pytest.raises(ValueError, match=r"\(2, 2\) matrix"):
        svg.heatmap(np.zeros((3, 3)), ["a", "b"], "t")
