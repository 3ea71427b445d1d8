"""A minimal Streamlit client speaking the app's own websocket protocol (no browser).

One :class:`StreamlitSession` is one real server session, exactly like a browser tab: it opens ``/_stcore/stream``
with the XSRF cookie the index page sets, asks for script runs with ``BackMsg.rerun_script`` and its widget states,
uploads files the way the frontend does (``file_urls_request``, then an HTTP PUT with the XSRF token, then the
uploader's widget state), follows ``st.navigation`` pages, and fetches every image of a run from ``/media`` as a
browser would: as soon as its element arrives, while the script goes on (``RunResult.shown`` says when each picture
was in). What it does not do is lay out and paint, so it costs the load-test machine far less CPU than a headless
browser; its HTTP fetches are plain asyncio connections, no threads: at most 6 at once, kept alive between pictures
as a browser's HTTP/1.1 connections are (``keep_alive=False`` opens a new one per picture, which costs the server an
accept and a new protocol object each time).

Only what the benchmarks and tests need: sliders, radios, text boxes, buttons, a file uploader, and ``send_raw`` for a
hand-made BackMsg (what a student's script could send); ``b.xsrf = a.xsrf`` before entering makes b a tab of a's
browser. Like the browser, a change of widgets that an ``st.fragment`` drew reruns only that fragment: each delta
names the fragment that sent it, and the rerun request carries that id.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import itertools
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlparse

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLsRequest, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

XSRF_COOKIE = "_streamlit_xsrf"


@dataclass
class Widget:
    id: str
    kind: str  # slider, radio, file_uploader, ...
    label: str
    proto: object
    fragment_id: str = ""  # the st.fragment that drew it ("" outside any fragment)


@dataclass
class RunResult:
    seconds: float  # request sent -> script finished -> all its images fetched
    fragment_id: str = ""  # the fragment this run reran ("": the whole script)
    fragment_run: bool = False  # the server said the run was a fragment's (FINISHED_FRAGMENT_RUN_SUCCESSFULLY)
    widgets: set[str] = field(default_factory=set)  # keys of the widgets the run drew
    query_string: str | None = None  # the address's query string, if the run changed it
    images: dict[str, str] = field(default_factory=dict)  # caption -> media URL
    shown: dict[str, float] = field(default_factory=dict)  # caption -> seconds from the request to its bytes fetched
    alerts: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)  # bodies of st.markdown elements (and captions)
    exceptions: list[str] = field(default_factory=list)


WIDGET_KINDS = ("slider", "radio", "file_uploader", "selectbox", "number_input", "button", "text_input", "text_area")
MEDIA_CONNECTIONS = 6  # a browser's HTTP/1.1 connections per host


class StreamlitError(RuntimeError):
    pass


class StreamlitSession:
    """One websocket session. Use ``async with StreamlitSession(url) as s: await s.open()``."""

    _ids = itertools.count(1)

    def __init__(self, base_url: str, timeout: float = 60.0, keep_alive: bool = True) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        # Pictures come over at most MEDIA_CONNECTIONS HTTP/1.1 connections kept open between fetches, as a
        # browser does; keep_alive=False opens a fresh connection per picture ("Connection: close").
        self.keep_alive = keep_alive
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._media_slots = asyncio.Semaphore(MEDIA_CONNECTIONS)
        self.ws = None
        self.session_id = ""
        self.xsrf = ""
        self.cookie_header = ""
        self.pages: dict[str, str] = {}  # url_pathname -> page_script_hash
        self.page_hash = ""
        self.widgets: dict[str, Widget] = {}  # key (user key or label) -> widget
        self.states: dict[str, WidgetState] = {}  # widget id -> state we send
        self._triggers: dict[str, WidgetState] = {}  # button presses: sent with the next run only
        self.query = ""  # the address's query string sent with each run (e.g. "present=1")
        self.largest = 0  # bytes of the largest message the server sent
        self._changed: set[str] = set()  # fragment ids of the widgets changed since the last run ("" = none)
        self._run: RunResult | None = None
        self._finished: asyncio.Event | None = None
        self._responses: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._fetches: dict[str, asyncio.Task] = {}  # media URL -> its fetch, for the run in progress
        self._run_start = 0.0
        self.closed_reason: str | None = None

    # ------------------------------------------------------------------ connection
    def _fetch_cookie(self) -> None:
        if self.xsrf:  # given one (another tab of the same browser): keep it
            self.cookie_header = f"{XSRF_COOKIE}={self.xsrf}"
            return
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(self.base + "/_stcore/health", timeout=self.timeout) as r:  # sets the XSRF cookie
            r.read()
        for c in jar:
            if c.name == XSRF_COOKIE:
                self.xsrf = c.value
        self.cookie_header = f"{XSRF_COOKIE}={self.xsrf}" if self.xsrf else ""

    async def __aenter__(self) -> StreamlitSession:
        await asyncio.to_thread(self._fetch_cookie)
        ws_url = "ws" + self.base[len("http") :] + "/_stcore/stream"
        protocols = ["streamlit", self.xsrf] if self.xsrf else ["streamlit"]
        headers = {"Origin": self.base}
        if self.cookie_header:
            headers["Cookie"] = self.cookie_header
        self.ws = await websockets.connect(
            ws_url, subprotocols=protocols, additional_headers=headers, max_size=None, open_timeout=self.timeout
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()
        if self._reader:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.largest = max(self.largest, len(raw))
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self._handle(msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection lost
            self.closed_reason = f"websocket closed: {exc}"
        else:
            self.closed_reason = "websocket closed by the server"
        if self._finished is not None:
            self._finished.set()

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            ns = msg.new_session
            if ns.initialize.session_id:
                self.session_id = ns.initialize.session_id
            self.page_hash = ns.page_script_hash or self.page_hash
        elif kind == "navigation":
            for page in msg.navigation.app_pages:
                self.pages[page.url_pathname] = page.page_script_hash
            if msg.navigation.page_script_hash:
                self.page_hash = msg.navigation.page_script_hash
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._element(msg.delta.new_element, msg.delta.fragment_id)
        elif kind == "page_info_changed" and self._run is not None:
            self._run.query_string = msg.page_info_changed.query_string
        elif kind == "file_urls_response":
            fut = self._responses.pop(msg.file_urls_response.response_id, None)
            if fut is not None and not fut.done():
                fut.set_result(msg.file_urls_response)
        elif kind == "script_finished":
            if msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN and self._finished is not None:
                if self._run is not None:
                    self._run.fragment_run = msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
                self._finished.set()
        elif kind == "session_event" and msg.session_event.WhichOneof("type") == "script_compilation_exception":
            if self._run is not None:
                self._run.exceptions.append("script compilation exception")
        elif kind == "ref_hash":
            # We never report cached hashes, so the server should not send references.
            if self._run is not None:
                self._run.exceptions.append("unexpected ref_hash message")

    def _element(self, el, fragment_id: str) -> None:
        kind = el.WhichOneof("type")
        run = self._run
        if kind in WIDGET_KINDS:
            proto = getattr(el, kind)
            key = proto.id.rsplit("-", 1)[-1] if "$$ID" in proto.id and not proto.id.endswith("-None") else proto.label
            self.widgets[key] = Widget(proto.id, kind, proto.label, proto, fragment_id)
            if run is not None:
                run.widgets.add(key)
        elif kind == "imgs" and run is not None:
            for img in el.imgs.imgs:
                url = urljoin(self.base + "/", img.url)
                run.images[img.caption] = url
                self._fetch_soon(run, img.caption, url)
        elif kind == "alert" and run is not None:
            run.alerts.append(el.alert.body)
        elif kind == "markdown" and run is not None:
            run.markdown.append(el.markdown.body)
        elif kind == "exception" and run is not None:
            run.exceptions.append(f"{el.exception.type}: {el.exception.message}")

    # ------------------------------------------------------------------ actions
    def _fetch_soon(self, run: RunResult, caption: str, url: str) -> None:
        """Fetch a picture as soon as its element arrives, as a browser does; note when its bytes are in."""
        task = self._fetches.get(url)
        if task is None:
            task = self._fetches[url] = asyncio.get_running_loop().create_task(self._get(url))

        def done(_task: asyncio.Task, start: float = self._run_start) -> None:
            if not _task.cancelled() and _task.exception() is None:
                run.shown.setdefault(caption, time.perf_counter() - start)

        task.add_done_callback(done)

    async def _get(self, url: str) -> int:
        """GET ``url`` (asyncio, no thread): the body's length; raises unless HTTP 200.

        Over an idle kept-alive connection if there is one (a browser's HTTP/1.1 behaviour), else a new one; a
        kept connection the server has closed meanwhile is retried once on a new one."""
        u = urlparse(url)
        path = u.path + (f"?{u.query}" if u.query else "")
        async with self._media_slots:
            while True:
                reused = bool(self._idle) and self.keep_alive
                if reused:
                    reader, writer = self._idle.pop()
                else:
                    conn = asyncio.open_connection(u.hostname, u.port or 80)
                    reader, writer = await asyncio.wait_for(conn, self.timeout)
                try:
                    status, body, keep = await asyncio.wait_for(
                        self._request(reader, writer, u.netloc, path), self.timeout
                    )
                except (ConnectionError, asyncio.IncompleteReadError):
                    writer.close()
                    if reused:
                        continue  # the server closed it while idle: once more on a fresh connection
                    raise
                if keep and self.keep_alive:
                    self._idle.append((reader, writer))
                else:
                    writer.close()
                break
        if status != b"200":
            raise StreamlitError(f"GET {u.path}: HTTP {status.decode(errors='replace')}")
        return len(body)

    async def _request(self, reader, writer, host: str, path: str) -> tuple[bytes, bytes, bool]:
        """One HTTP/1.1 GET on an open connection: (status, body, whether the connection may be reused)."""
        cookie = f"Cookie: {self.cookie_header}\r\n" if self.cookie_header else ""
        connection = "keep-alive" if self.keep_alive else "close"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: {connection}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)[1].encode() if len(lines[0].split(" ")) > 1 else b"?"
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # the empty trailer
            body = b"".join(parts)
        else:  # delimited by the end of the connection
            return status, await reader.read(), False
        return status, body, headers.get("connection", "").lower() != "close"

    def _fragment_to_rerun(self, page: str | None) -> str:
        """The fragment this rerun is confined to, as the browser decides: the one fragment that drew every widget
        changed since the last run; "" (the whole script) for a page change, no change, or a widget outside
        fragments or in several."""
        changed, self._changed = self._changed, set()
        if page is not None or len(changed) != 1:
            return ""
        return next(iter(changed))

    async def rerun(self, page: str | None = None) -> RunResult:
        """Run the script with the current widget states (on ``page``, a url path, if given).

        A change of widgets drawn by one ``st.fragment`` reruns only that fragment (``ClientState.fragment_id``,
        as the browser sends it); anything else reruns the whole script."""
        if self.closed_reason:
            raise StreamlitError(self.closed_reason)
        fragment_id = self._fragment_to_rerun(page)
        if page is not None:
            self.page_hash = self.pages.get(page, "")
        msg = BackMsg()
        cs = msg.rerun_script
        cs.page_script_hash = self.page_hash
        cs.page_name = page or ""
        cs.fragment_id = fragment_id
        cs.query_string = self.query
        for state in {**self.states, **self._triggers}.values():
            cs.widget_states.widgets.append(state)
        self._triggers = {}
        self._run = RunResult(seconds=0.0, fragment_id=fragment_id)
        self._finished = asyncio.Event()
        self._fetches = {}
        start = self._run_start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        try:
            await asyncio.wait_for(self._finished.wait(), self.timeout)
        except TimeoutError as exc:
            raise StreamlitError(f"no script_finished within {self.timeout:.0f} s") from exc
        if self.closed_reason:
            raise StreamlitError(self.closed_reason)
        run = self._run
        await asyncio.gather(*self._fetches.values())  # every picture of the run, fetched since its element came
        run.seconds = time.perf_counter() - start
        if run.exceptions:
            raise StreamlitError("; ".join(run.exceptions))
        return run

    async def send_raw(self, msg: BackMsg) -> None:
        """Send a hand-made BackMsg as is (e.g. ``BackMsg(clear_cache=True)``); no run is awaited."""
        await self.ws.send(msg.SerializeToString())

    async def open(self, page: str = "forward") -> RunResult:
        """The first run of the session on ``page`` (a url path; "" is the app's default page, Start here)."""
        return await self.rerun(page or None)

    def set_slider(self, key: str, value: float) -> None:
        w = self.widgets[key]
        st = WidgetState(id=w.id)
        st.double_array_value.data.append(float(value))
        self.states[w.id] = st
        self._changed.add(w.fragment_id)

    def slider_value(self, key: str) -> float:
        w = self.widgets[key]
        st = self.states.get(w.id)
        if st is not None:
            return st.double_array_value.data[0]
        return (list(w.proto.value) or list(w.proto.default))[0]

    def set_text(self, key: str, value: str) -> None:
        """Type ``value`` into the text box (text_input or text_area) ``key``."""
        w = self.widgets[key]
        self.states[w.id] = WidgetState(id=w.id, string_value=value)
        self._changed.add(w.fragment_id)

    def click(self, key: str) -> None:
        """Press the button ``key`` (sent with the next :meth:`rerun` only, as a browser's press is)."""
        w = self.widgets[key]
        self._triggers[w.id] = WidgetState(id=w.id, trigger_value=True)
        self._changed.add(w.fragment_id)

    def set_radio(self, key: str, option: str) -> None:
        w = self.widgets[key]
        self.states[w.id] = WidgetState(id=w.id, string_value=option)
        self._changed.add(w.fragment_id)

    async def upload(self, key: str, name: str, data: bytes, mime: str = "image/jpeg") -> None:
        """Upload one file into the file_uploader ``key`` (no rerun: call :meth:`rerun` after)."""
        w = self.widgets[key]
        request_id = uuid.uuid4().hex
        fut = asyncio.get_running_loop().create_future()
        self._responses[request_id] = fut
        msg = BackMsg(
            file_urls_request=FileURLsRequest(request_id=request_id, file_names=[name], session_id=self.session_id)
        )
        await self.ws.send(msg.SerializeToString())
        resp = await asyncio.wait_for(fut, self.timeout)
        urls = resp.file_urls[0]
        upload_url = urls.upload_url if urlparse(urls.upload_url).scheme else self.base + urls.upload_url
        await asyncio.to_thread(self._put, upload_url, name, data, mime)
        info = UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id)
        info.file_urls.CopyFrom(urls)
        st = WidgetState(id=w.id)
        st.file_uploader_state_value.uploaded_file_info.append(info)
        self.states[w.id] = st
        self._changed.add(w.fragment_id)

    def _put(self, url: str, name: str, data: bytes, mime: str) -> None:
        boundary = f"----diffusionlens{next(self._ids)}{uuid.uuid4().hex}"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f"Content-Type: {mime}\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Origin": self.base}
        if self.xsrf:
            headers["X-Xsrftoken"] = self.xsrf
            headers["Cookie"] = self.cookie_header
        req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            if r.status not in (200, 204):
                raise StreamlitError(f"upload failed: HTTP {r.status}")
