"""The slider-reset bug (issue 17): adding a photo with the uploader made the t slider jump to 0 in the browser
while the pictures kept the old t. The cause: while the upload is on its way there is no image, the page stopped
before drawing its settings, and a widget that disappears and comes back mounts at its default in the browser.
The settings now stay on screen while there is no image, and slider and pictures agree after the upload."""

from __future__ import annotations

import pytest
import torch
from conftest import APP_ENTRY, png_bytes
from streamlit.testing.v1 import AppTest

torch.set_num_threads(1)

# page, its t slider, the caption prefix of the picture that shows t
PAGES = [
    ("views/forward.py", "fwd_t", "x_t at t = "),
    ("views/denoise.py", "den_t", "x_t: the input at t = "),
    ("views/inside.py", "ins_t", "x_t: the input at t = "),
]


@pytest.mark.parametrize(("page", "key", "caption"), PAGES, ids=["forward", "denoise", "inside"])
def test_t_stays_put_when_a_photo_is_uploaded(tiny_model_dir, page, key, caption):
    at = AppTest.from_file(APP_ENTRY, default_timeout=240)
    at.session_state["model_source"] = str(tiny_model_dir)
    at.session_state["resolution"] = 32
    if page:
        at.switch_page(page)
    at.run()
    at.slider(key=key).set_value(600).run()
    at.radio(key="image_source").set_value("Upload").run()  # no image yet: the page asks for one
    assert not at.exception
    assert at.slider(key=key).value == 600  # still on screen, so the browser never re-mounts it at 0
    at.sidebar.get("file_uploader")[0].set_value(("mine.png", png_bytes((48, 40)), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["upload_name"] == "mine.png"
    assert at.slider(key=key).value == 600
    caps = [c for img in at.image for c in img.captions]
    assert f"{caption}600" in caps, caps
    assert "img" in at.query_params and at.query_params["img"] == "upload"


def test_trajectory_settings_stay_while_the_photo_uploads(tiny_model_dir):
    at = AppTest.from_file(APP_ENTRY, default_timeout=240)
    at.session_state["model_source"] = str(tiny_model_dir)
    at.session_state["resolution"] = 32
    at.switch_page("views/trajectory.py").run()
    at.slider(key="traj_t_start").set_value(450).run()
    at.radio(key="image_source").set_value("Upload").run()
    assert not at.exception
    assert at.slider(key="traj_t_start").value == 450
