"""Denoise draws its input before the network runs (issue 38): x_t and the true noise need no forward pass, so a
slider step shows them at once on a busy server while the pass waits for its turn."""

from __future__ import annotations

import streamlit as st
import torch
from conftest import APP_ENTRY, image_captions
from streamlit.testing.v1 import AppTest

from app.compute import reverse

RES = 32


def test_x_t_and_the_true_noise_are_drawn_before_the_pass(one_torch_thread, tiny_model_dir, monkeypatch):
    st.cache_data.clear()

    def no_network(*args, **kwargs):
        raise RuntimeError("the network is still busy")

    monkeypatch.setattr(reverse, "denoise_at", no_network)
    at = AppTest.from_file(APP_ENTRY, default_timeout=180)
    at.session_state["model_source"] = str(tiny_model_dir)
    at.session_state["resolution"] = RES
    at.session_state["den_t"] = 300
    at.switch_page("views/denoise.py")
    at.run()
    caps = image_captions(at)
    assert "x_t: the input at t = 300" in caps and "ε: the true noise" in caps  # drawn before the pass ...
    assert not any("predicted noise" in c for c in caps)  # ... which never came
    st.cache_data.clear()


def test_the_early_x_t_is_the_one_the_network_sees(one_torch_thread, tiny_model_dir):
    from model.nets.network import load_model

    net = load_model(str(tiny_model_dir))
    x0 = torch.rand((1, 3, RES, RES), generator=torch.Generator().manual_seed(3)) * 2 - 1
    early = reverse.noised_at.__wrapped__("img", RES, "m", 400, 5, x0, net)
    full = reverse.denoise_at.__wrapped__("img", RES, "m", 400, 5, x0, net)
    assert torch.equal(early["x_t"], full["x_t"]) and torch.equal(early["eps"], full["eps"])
