"""bench/harness/ws_client.py picks the rerun's fragment as the browser does (no server needed; the real server run is in
tests/e2e/test_fragment_steps.py)."""

from __future__ import annotations

from harness.ws_client import StreamlitSession, Widget  # bench/ is on pytest's pythonpath (pyproject.toml)


def _session() -> StreamlitSession:
    s = StreamlitSession("http://127.0.0.1:1")
    s.widgets = {
        "fwd_t": Widget("$$ID-a-fwd_t", "slider", "Timestep t", None, "frag1"),
        "fwd_schedule": Widget("$$ID-b-fwd_schedule", "radio", "Schedule", None, "frag1"),
        "den_t": Widget("$$ID-c-den_t", "slider", "Timestep t", None, "frag2"),
        "image_source": Widget("$$ID-d-image_source", "radio", "Image source", None, ""),
    }
    return s


def test_widgets_of_one_fragment_rerun_that_fragment_once():
    s = _session()
    s.set_slider("fwd_t", 300)
    s.set_radio("fwd_schedule", "cosine")
    assert s._fragment_to_rerun(None) == "frag1"
    assert s._fragment_to_rerun(None) == ""  # nothing changed since: the whole script


def test_anything_else_reruns_the_whole_script():
    s = _session()
    s.set_slider("fwd_t", 300)
    s.set_radio("image_source", "Upload")  # the sidebar is outside every fragment
    assert s._fragment_to_rerun(None) == ""
    s.set_slider("fwd_t", 301)
    s.set_slider("den_t", 5)  # two fragments
    assert s._fragment_to_rerun(None) == ""
    s.set_slider("fwd_t", 302)
    assert s._fragment_to_rerun("denoise") == ""  # a page change runs the new page's whole script


class _MediaServer:
    """A tiny HTTP/1.1 server on a free port: counts connections and requests; ``mode`` picks how it answers."""

    def __init__(self, mode: str = "length") -> None:
        self.mode = mode  # "length": Content-Length, kept open; "chunked"; "drop": closes after each answer, silently
        self.connections = 0
        self.requests = 0

    async def handle(self, reader, writer) -> None:
        import asyncio

        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                body = b"x" * (100 + self.requests)
                close = b"connection: close" in head.lower()
                if self.mode == "chunked":
                    payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + payload)
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                if close or self.mode == "drop":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _fetch_all(mode: str, keep_alive: bool, n: int = 5) -> tuple[list[int], _MediaServer]:
    import asyncio

    server = _MediaServer(mode)

    async def main() -> list[int]:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        s = StreamlitSession(f"http://127.0.0.1:{port}", timeout=10, keep_alive=keep_alive)
        try:
            sizes = []
            for i in range(n):
                sizes.append(await s._get(f"http://127.0.0.1:{port}/media/{i}.jpg"))
                await asyncio.sleep(0.01)  # let a dropped connection's close arrive first
            return sizes
        finally:
            await s.__aexit__(None, None, None)
            srv.close()
            await srv.wait_closed()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # a thread of its own: Playwright's sync API keeps a loop in this one
        return pool.submit(asyncio.run, main()).result(timeout=60), server


def test_pictures_come_over_one_kept_alive_connection_as_in_a_browser():
    sizes, server = _fetch_all("length", keep_alive=True)
    assert sizes == [101, 102, 103, 104, 105] and server.connections == 1 and server.requests == 5


def test_connection_close_opens_one_connection_per_picture():
    sizes, server = _fetch_all("length", keep_alive=False)
    assert sizes == [101, 102, 103, 104, 105] and server.connections == 5


def test_a_chunked_answer_is_read_whole():
    sizes, server = _fetch_all("chunked", keep_alive=True)
    assert sizes == [101, 102, 103, 104, 105] and server.connections == 1


def test_a_kept_connection_the_server_closed_is_retried_on_a_new_one():
    sizes, server = _fetch_all("drop", keep_alive=True)
    assert sizes == [101, 102, 103, 104, 105] and server.connections == 5 and server.requests == 5


def test_the_proxied_session_takes_what_load_ws_student_passes():
    """bench/failover.py passes its ProxiedSession to harness.students.ws_student for a StreamlitSession: same
    constructor."""
    import inspect

    from harness.cluster import ProxiedSession

    session = ProxiedSession("http://127.0.0.1:1", timeout=5, keep_alive=False)
    assert session.keep_alive is False and session.timeout == 5
    assert list(inspect.signature(ProxiedSession).parameters) == list(inspect.signature(StreamlitSession).parameters)
