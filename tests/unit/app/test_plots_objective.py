"""Pure Plotly builders of the "Training objective" page, tested without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest

from app.charts import objective as po
from model.diffusion import likelihood as lk
from model.diffusion.schedule import make_schedule


def test_eps_mse_chart_mean_band_and_log_axis():
    ts, mean, std = [0, 10, 100, 999], [0.5, 0.2, 0.05, 0.0], [0.1, 0.3, 0.01, 0.0]
    fig = po.eps_mse_chart(ts, mean, std, n_draws=3, T=1000)
    assert fig.layout.yaxis.type == "log"
    hi, lo, m = fig.data
    assert list(m.x) == ts and m.y[0] == 0.5
    assert m.y[-1] == po.FLOOR  # a zero is drawn at the floor, not dropped
    assert hi.y[1] == pytest.approx(0.5) and lo.y[1] == pytest.approx(0.2 * 0.05)  # std > mean: band clipped > 0
    assert lo.fill == "tonexty" and "3 draws" in lo.name
    assert all(lo.y[i] <= m.y[i] <= hi.y[i] for i in range(4))
    assert tuple(fig.layout.xaxis.range) == (0, 999)
    # the spread is visible: a tinted fill, edges drawn, and whiskers on the points
    assert "0.35" in lo.fillcolor and lo.line.width == 1 and list(m.error_y.array)[0] == pytest.approx(0.1)
    one = po.eps_mse_chart(ts, mean, [0.0] * 4, n_draws=1, T=1000)
    assert "2 or more draws" in one.data[1].name


def test_bound_terms_chart_separates_the_decoder_and_sorts():
    fig = po.bound_terms_chart([5, 0, 2, 5], [0.01, 2.0, 0.1, 0.02], exact=False, T=10)
    kl, dec = fig.data
    assert list(kl.x) == [2, 5, 5] and kl.mode == "markers"
    assert list(dec.x) == [0] and list(dec.y) == [2.0] and "decoder" in dec.name
    # the legend calls the term what the page's formula calls it, in plain text (no raw LaTeX braces)
    assert "Lₜ₋₁" in kl.name and "{" not in kl.name and "\\" not in kl.name  # plain text; x_t as on every page
    assert fig.layout.yaxis.type == "log"
    line = po.bound_terms_chart([3, 2, 1], [0.1, 0.2, 0.3], exact=True)
    assert len(line.data) == 1 and line.data[0].mode == "lines"


def test_weights_chart_from_the_real_weights():
    w = lk.loss_weights(make_schedule("linear"))
    vlb, simple = w.normalised()
    fig = po.weights_chart(vlb.tolist(), simple.tolist())
    a, b = fig.data
    assert len(a.y) == 1000 and np.mean(a.y) == pytest.approx(1.0) and set(b.y) == {1.0}
    assert a.y[1] > 1 > a.y[999]  # the VLB curve crosses the flat simple-loss line
    assert fig.layout.yaxis.type == "log"


def test_bits_chart_and_train_step_chart():
    fig = po.bits_chart({"bound": 4.2, "PNG": 5.0, "JPEG": 2.1}, {"bound": 0.3})
    bar = fig.data[0]
    assert list(bar.y) == ["bound", "PNG", "JPEG"] and list(bar.x) == [4.2, 5.0, 2.1]
    assert list(bar.error_x.array) == [0.3, 0.0, 0.0] and bar.error_x.visible
    assert po.bits_chart({"a": 1.0}).data[0].error_x.visible is False
    ts = po.train_step_chart(1.0, 0.9, "v")
    assert list(ts.data[0].y) == [1.0, 0.9] and "against v" in ts.layout.yaxis.title.text


def test_builders_do_not_import_streamlit():
    import ast

    from conftest import ROOT

    tree = ast.parse((ROOT / "app" / "charts" / "objective.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "plotly" in names and "streamlit" not in names


def test_weights_chart_draws_extra_weightings_dotted():
    fig = po.weights_chart([2.0, 0.5], [1.0, 1.0], {"v-loss": [0.1, 1.9]})
    assert len(fig.data) == 3 and fig.data[2].name == "v-loss" and fig.data[2].line.dash == "dot"
