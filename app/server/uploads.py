"""Pictures are decoded once per upload and a few at a time: the app's policy around ``model.images.decode``.

* Once: the decoded picture (an 8-bit RGB Pillow image of at most about 1024 px a side, see
  :data:`model.images.decode.WORK_MAX_SIDE`) is kept by the sha256 of the bytes, and so is a refusal, so a
  rerun, another resolution or another student with the same file costs no second decode. Sessions
  asking for bytes that are being decoded wait for that decode instead of starting their own.
* A few at a time: at most :func:`app.server.admission.decode_slots` decodes run at once (``DIFFUSION_LENS_DECODE_SLOTS``,
  default 2), so eight students uploading their worst files hold at most two decoders' memory, and the
  other sessions' slider steps keep their CPU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future

from PIL import Image

from app.server import admission
from model.images.decode import ImageLoadError, decode_image

KEEP = 32  # decoded pictures (or refusals) kept: at most ~4 MB each
_lock = threading.Lock()
_done: OrderedDict[str, Future] = OrderedDict()  # key -> finished or running decode (LRU order)
_stats = {"decodes": 0, "running": 0, "peak_running": 0}


def decoded(key: str, data: bytes, name: str | None = None) -> Image.Image:
    """The picture ``data`` (whose sha256 is ``key``) decoded by :func:`decode_image`; raises ImageLoadError.

    The first caller for a key decodes (waiting for a decode slot, app/server/admission.py); the others get its result.
    """
    with _lock:
        fut = _done.get(key)
        owner = fut is None
        if owner:
            fut = _done[key] = Future()
            while len(_done) > KEEP:
                _done.popitem(last=False)
        else:
            _done.move_to_end(key)
    if owner:
        _decode_into(fut, data, name)
    return fut.result()  # the picture, or the ImageLoadError raised again


def _decode_into(fut: Future, data: bytes, name: str | None) -> None:
    with admission.decode_slots():  # FIFO, DIFFUSION_LENS_DECODE_SLOTS at once (app/server/admission.py)
        with _lock:
            _stats["decodes"] += 1
            _stats["running"] += 1
            _stats["peak_running"] = max(_stats["peak_running"], _stats["running"])
        try:
            fut.set_result(decode_image(data, name=name))
        except ImageLoadError as exc:
            fut.set_exception(exc)
        except BaseException as exc:  # never leave waiters hanging; say it in one sentence
            fut.set_exception(ImageLoadError("This image could not be opened; please choose another photo."))
            if not isinstance(exc, Exception):
                raise
        finally:
            with _lock:
                _stats["running"] -= 1


def stats() -> dict[str, int]:
    """Decodes started, running now, and the most ever running at once (for tests and the server page)."""
    with _lock:
        return dict(_stats)


def forget() -> None:
    """Drop every kept picture (tests)."""
    with _lock:
        _done.clear()
        _stats.update(decodes=0, running=0, peak_running=0)
