"""The janitor releases pictures and uploads of sessions Streamlit forgot without shutting them down."""

from __future__ import annotations

from types import SimpleNamespace

from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from app.server import janitor


def _runtime(live_ids):
    media = MediaFileManager(MemoryMediaFileStorage("/media"))
    uploads = MemoryUploadedFileManager("/_stcore/upload_file")
    infos = [SimpleNamespace(session=SimpleNamespace(id=sid)) for sid in live_ids]
    rt = SimpleNamespace(
        _session_mgr=SimpleNamespace(list_sessions=lambda: infos), media_file_mgr=media, uploaded_file_mgr=uploads
    )
    return rt, media, uploads


def _add_picture(media, monkeypatch, session_id: str, data: bytes, coord: str = "1.0") -> None:
    monkeypatch.setattr("streamlit.runtime.media_file_manager._get_session_id", lambda: session_id)
    media.add(data, "image/png", coord)


def test_sweep_frees_only_sessions_the_server_forgot(monkeypatch):
    rt, media, uploads = _runtime(live_ids=["alive", "resumable"])
    _add_picture(media, monkeypatch, "alive", b"a" * 100)
    _add_picture(media, monkeypatch, "resumable", b"r" * 100)
    _add_picture(media, monkeypatch, "expired", b"e" * 100)
    _add_picture(media, monkeypatch, "expired", b"a" * 100, coord="1.1")  # shared with a live session
    for sid in ("alive", "expired"):
        uploads.add_file(sid, UploadedFileRec(file_id=f"{sid}-1", name="x.png", type="image/png", data=b"x" * 10))
    store = media._storage._files_by_id
    assert len(store) == 3

    assert janitor.sweep(rt) == {"media_sessions": 1, "upload_sessions": 1}
    assert set(media._files_by_session_and_coord) == {"alive", "resumable"}
    assert len(store) == 2  # the expired session's own picture is gone; the shared one stays for "alive"
    assert set(uploads.file_storage) == {"alive"}
    assert janitor.sweep(rt) == {"media_sessions": 0, "upload_sessions": 0}  # nothing more to free


def test_sweep_without_a_running_server_does_nothing():
    assert janitor.sweep() == {}
