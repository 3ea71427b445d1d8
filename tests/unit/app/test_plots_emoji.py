"""The words-to-pictures page's Plotly builders, without Streamlit."""

from __future__ import annotations

import numpy as np

from app.charts import emoji as pe


def test_latent_channels_draws_four_square_heatmaps_on_one_scale():
    z = np.arange(256, dtype=np.float32).reshape(4, 8, 8) / 40 - 3
    fig = pe.latent_channels(z, 500)
    assert [t.type for t in fig.data] == ["heatmap"] * 4
    assert all(t.zmin == -pe.LATENT_RANGE and t.zmax == pe.LATENT_RANGE for t in fig.data)
    np.testing.assert_array_equal(fig.data[2].z, z[2][::-1])  # row 0 of the latent drawn at the top
    assert [fig.layout[f"yaxis{k}"].scaleanchor for k in ("", "2", "3", "4")] == ["x", "x2", "x3", "x4"]
    assert "t = 500" in fig.layout.title.text


def test_embedding_heatmap_has_one_row_per_token_first_on_top():
    emb = np.random.default_rng(0).normal(size=(3, 128))
    fig = pe.embedding_heatmap(emb, ["[START]", "red", "heart"])
    assert list(fig.data[0].y) == ["heart", "red", "[START]"]
    np.testing.assert_array_equal(fig.data[0].z[-1], emb[0])


def test_attention_over_steps_is_each_tokens_mean_share():
    att = np.zeros((2, 3, 8, 8), np.float32)
    att[:, 0], att[0, 1], att[1, 2] = 0.5, 0.5, 0.5
    fig = pe.attention_over_steps(att, ["[START]", "cat", "face"], [999, 0])
    assert [t.name for t in fig.data] == ["[START]", "cat", "face"]
    np.testing.assert_allclose(fig.data[1].y, [0.5, 0.0])
    np.testing.assert_allclose(fig.data[2].y, [0.0, 0.5])
