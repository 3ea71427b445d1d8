"""Warm the server up before the first visitor, and say when it is ready.

Streamlit runs the app's script only when a browser connects, so the first visitor of a fresh server paid for
everything: the imports, loading the bundled models and their fidelity guard, the TorchScript graph, Start here's
pictures (50 s to the first heading on a busy 2-core machine). :func:`main` is that first visitor instead: started by
``python -m app.launch`` (``make app`` and the container) beside the server, it waits until the server answers,
opens Start here (``/``) through the server's own websocket as a browser would, waits for the script run to finish
and prints one line, ``diffusion-lens: ready …``, with the seconds it took. Nothing of the visit is kept but the
server's caches (the models, graphs and pictures that every session shares).

    python -m app.server.warm_start http://127.0.0.1:8501   # the address app/launch.py worked out (base_url)
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence

READY = "diffusion-lens: ready"
START_TIMEOUT_S = 600.0  # the server must answer within this (a cold container on a slow disk)
VISIT_TIMEOUT_S = 900.0  # and the first run of Start here finish within this
XSRF_COOKIE = "_streamlit_xsrf"


def option(args: Sequence[str], name: str, default: str) -> str:
    """The value of ``--name value`` or ``--name=value`` in Streamlit's command-line options, else ``default``."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def base_url(args: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Where the server started with Streamlit options ``args`` and environment ``env`` (its STREAMLIT_SERVER_*
    variables, which app/launch.py hands over) answers on this machine (all interfaces: through loopback)."""
    env = env or {}
    port = option(args, "--server.port", env.get("STREAMLIT_SERVER_PORT", "8501"))
    host = option(args, "--server.address", env.get("STREAMLIT_SERVER_ADDRESS", "")) or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host
    path = option(args, "--server.baseUrlPath", env.get("STREAMLIT_SERVER_BASE_URL_PATH", "")).strip("/")
    return f"http://{host}:{port}" + (f"/{path}" if path else "")


def wait_until_serving(base: str, timeout: float = START_TIMEOUT_S) -> str:
    """Poll the health endpoint until the server answers; returns the XSRF token its cookie carries ("" if none)."""
    deadline = time.monotonic() + timeout
    while True:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        try:
            with opener.open(base + "/_stcore/health", timeout=5) as r:
                if r.status == 200:
                    return next((c.value for c in jar if c.name == XSRF_COOKIE), "")
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server at {base} did not answer within {timeout:.0f} s")
        time.sleep(0.25)  # polling a server that is still starting (no event to wait on from another process)


async def visit(base: str, xsrf: str, timeout: float = VISIT_TIMEOUT_S) -> None:
    """Open Start here as a browser tab would and return once its script run has finished."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    headers = {"Origin": base}
    if xsrf:
        headers["Cookie"] = f"{XSRF_COOKIE}={xsrf}"
    url = "ws" + base[len("http") :] + "/_stcore/stream"
    protocols = ["streamlit", xsrf] if xsrf else ["streamlit"]
    async with websockets.connect(url, subprotocols=protocols, additional_headers=headers, max_size=None) as ws:
        msg = BackMsg()
        msg.rerun_script.page_name = ""
        msg.rerun_script.query_string = ""
        await ws.send(msg.SerializeToString())
        async with asyncio.timeout(timeout):
            async for raw in ws:
                fwd = ForwardMsg()
                fwd.ParseFromString(raw)
                done = fwd.WhichOneof("type") == "script_finished"
                if done and fwd.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    return


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    base = args[0].rstrip("/") if args and args[0].startswith("http") else base_url(args)
    start = time.perf_counter()
    try:
        xsrf = wait_until_serving(base)
        up = time.perf_counter() - start
        asyncio.run(visit(base, xsrf))
    except Exception as exc:  # noqa: BLE001 -- the server serves anyway; the first visitor then warms it
        print(f"diffusion-lens: warm-up visit failed ({type(exc).__name__}: {exc}); serving cold", file=sys.stderr)
        return 1
    total = time.perf_counter() - start
    print(
        f"{READY}: warmed up in {total:.1f} s (server up after {up:.1f} s; the bundled models, their graphs and "
        f"Start here's pictures are in memory); open {base}/",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
