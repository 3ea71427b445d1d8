"""The Particle lab's free-form inputs against a real `streamlit run`, sent as a student's script would send them
(bench/harness/ws_client.py speaks Streamlit's own protocol; AppTest cannot make a Plotly selection):

* the brush adds to the points and the added points show in the "Your points" box (issue 36, item 6: a second lasso
  replaced the first, 113 points became 103, and the box never showed them);
* a hand-made brush selection (point_index null, Infinity, a list or text, an entry that is not a dict, more
  entries than the grid has dots) gets one sentence, and the page keeps running (issue 32, item 7);
* text longer than the box's cap is cut to it by the server and answered with one sentence (issue 32, item 2).
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState

from harness.server import Server
from harness.ws_client import StreamlitSession
from model.particles import data

pytestmark = pytest.mark.e2e

GRID = data.brush_grid()


class LabSession(StreamlitSession):
    """A session that also notes the brush chart's widget id (the client knows text boxes and sliders only)."""

    brush_id: str | None = None
    points: int | None = None  # the points the last run's field chart was drawn for ("..., 13 point(s)")

    async def rerun(self, page: str | None = None):
        self.points = None
        return await super().rerun(page)

    def _element(self, el, fragment_id: str) -> None:
        if el.WhichOneof("type") == "plotly_chart":
            if "pl_brush" in el.plotly_chart.id:
                self.brush_id = el.plotly_chart.id
            title = json.loads(el.plotly_chart.spec or "{}").get("layout", {}).get("title", {}).get("text", "")
            if title.startswith("Exact field at"):
                self.points = int(title.rsplit(", ", 1)[1].split()[0])
        super()._element(el, fragment_id)

    def select(self, payload) -> None:
        """Send the brush a selection as the browser does: its JSON as the chart's string value."""
        value = payload if isinstance(payload, str) else json.dumps(payload)
        for old in [i for i in self.states if "pl_brush" in i]:  # charts no longer on the page: a browser drops them
            del self.states[old]
        self.states[self.brush_id] = WidgetState(id=self.brush_id, string_value=value)


def _lasso(indices) -> dict:
    points = [
        {"curve_number": 1, "point_number": i, "point_index": i, "x": float(GRID[i, 0]), "y": float(GRID[i, 1])}
        for i in indices
    ]
    return {"selection": {"points": points, "point_indices": list(indices), "box": [], "lasso": []}}


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    env = {"DIFFUSION_LENS_MODEL": str(tiny_model_dir), "DIFFUSION_LENS_THREADS": "1", "OMP_NUM_THREADS": "1"}
    srv = Server(env, log_path=tmp_path_factory.mktemp("particles") / "server.log")
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


async def _your_points(url: str) -> LabSession:
    s = LabSession(url, timeout=120)
    await s.__aenter__()
    await s.open("particles")
    s.set_radio("pl_data", "your points")
    await s.rerun()
    assert s.points == 3 and s.brush_id is not None  # the three typed points, and the brush
    return s


def _run(coro):
    """Run ``coro`` on an event loop of its own thread: in a full run Playwright's sync API already runs a loop on
    the main thread (asyncio.run refuses to start a second one there)."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(asyncio.wait_for(coro, 400))
        except BaseException as e:  # re-raised on the test's thread
            out["error"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(420)
    assert not th.is_alive(), "the websocket students did not finish"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def test_two_lassos_add_up_and_show_in_the_text_box(server):
    async def body():
        s = await _your_points(server.url)
        try:
            s.select(_lasso(range(0, 10)))
            run = await s.rerun()
            assert not run.alerts and s.points == 13
            s.select(_lasso(range(20, 26)))  # the brush is a fresh chart (no selection) since: a second lasso
            run = await s.rerun()
            assert s.points == 19  # 13 + 6: added, not replaced (it was 9 here)
            s.select(_lasso(range(5, 23)))  # overlaps both: only dots 10 .. 19 are new
            run = await s.rerun()
            assert s.points == 29
            box = s.widgets["pl_text"].proto  # what the "Your points" box shows
            assert box.set_value and len(data.parse_points(box.value)) == 29
            assert f"{float(GRID[25, 0]):.4g}, {float(GRID[25, 1]):.4g}" in box.value
        finally:
            await s.__aexit__(None, None, None)

    _run(body())


HAND_MADE = {
    "null": {"selection": {"points": [{"point_index": None}]}},
    "Infinity": '{"selection": {"points": [{"point_index": Infinity}]}}',
    "a list": {"selection": {"points": [{"point_index": [1, 2]}]}},
    "text": {"selection": {"points": [{"point_index": "abc"}]}},
    "not a dict": {"selection": {"points": [7]}},
    "points not a list": {"selection": {"points": "abc"}},
    "more than the grid": {"selection": {"points": [{"point_index": 1}] * 5000}},
}


def test_a_hand_made_brush_selection_gets_one_sentence_and_the_page_keeps_running(server):
    async def body():
        s = await _your_points(server.url)
        try:
            for name, payload in HAND_MADE.items():
                s.select(payload)
                run = await s.rerun()  # raises on an exception box
                assert len(run.alerts) == 1 and "brush selection" in run.alerts[0], (name, run.alerts)
                assert s.points == 3, name  # the typed points are still there
            s.select(_lasso([840]))
            run = await s.rerun()
            assert not run.alerts and s.points == 4  # and the brush still works
        finally:
            await s.__aexit__(None, None, None)

    _run(body())


def test_text_longer_than_the_box_is_cut_and_answered_in_one_sentence(server):
    async def body():
        s = await _your_points(server.url)
        try:
            s.set_text("pl_text", "0.1 0.2\n" * 12_000)  # 96,000 characters (under the 1 MB message cap)
            run = await s.rerun()
            assert len(run.alerts) == 1 and "characters" in run.alerts[0], run.alerts
            s.set_text("pl_text", "0.1 0.2\n" * 2_500)  # 20,000 characters but 2,500 points
            run = await s.rerun()
            assert len(run.alerts) == 1 and "2,000" in run.alerts[0], run.alerts
            s.set_text("pl_text", "0.1, 0.2\n-0.3, 0.4")
            run = await s.rerun()
            assert not run.alerts and s.points == 2
        finally:
            await s.__aexit__(None, None, None)

    _run(body())
