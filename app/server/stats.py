"""What the server holds in memory between reruns, for the soak benchmark (bench/soak.py).

Streamlit keeps every picture a page shows in its in-memory media store
(``MemoryMediaFileStorage``) until no session refers to it, uploads in its uploaded-file
manager until their session ends, and ``st.cache_data`` results in memory. Each of these
grows with sessions and reruns, and each is where a slow leak would show. (Streamlit
1.67 keeps no server-side cache of forward messages any more: messages are hashed, and the
browser caches them.)

:func:`start` adds :func:`snapshot` to the stats file that the server's Serving object rewrites every
second when ``$DIFFUSION_LENS_STATS_FILE`` is set (only benchmarks set it). It reads
Streamlit's runtime from the stats writer's thread: plain dict copies and lengths, no locks
taken, a few hundred entries, well under a millisecond.
"""

from __future__ import annotations

from app import settings


def snapshot() -> dict:
    """Streamlit's in-memory stores now: counts and bytes (``{}`` outside a running server).

    * ``media_files``, ``media_bytes``: files in the media store and their total size;
    * ``media_refs``, ``media_ref_sessions``: (session, element) references to media files, and the
      sessions holding any (a file is freed once no reference is left);
    * ``upload_files``, ``upload_bytes``: uploaded files still held for their sessions;
    * ``cache_data_functions``, ``cache_data_bytes``: cached functions holding ``st.cache_data`` results,
      and the results' (pickled) size, in all and per function (``cache_data_bytes_by_function``);
    * ``sessions_active``, ``sessions_held``: connected sessions, and those plus the disconnected ones
      kept for reconnection (``server.disconnectedSessionTTL``).
    """
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching import get_data_cache_stats_provider

    from app.server import janitor

    if not Runtime.exists():
        return {}
    rt = Runtime.instance()
    out: dict = {"janitor": janitor.freed()}  # sessions whose pictures / uploads app/server/janitor.py released
    mgr = rt.media_file_mgr
    files = getattr(getattr(mgr, "_storage", None), "_files_by_id", None)  # MemoryMediaFileStorage
    if files is not None:
        contents = [f.content for f in files.copy().values()]  # a copy: other threads add and delete
        out["media_files"] = len(contents)
        out["media_bytes"] = sum(len(c) for c in contents)
    by_session = getattr(mgr, "_files_by_session_and_coord", None)
    if by_session is not None:
        refs = [len(coords) for coords in by_session.copy().values()]
        out["media_refs"] = sum(refs)
        out["media_ref_sessions"] = sum(1 for n in refs if n)
    uploads = rt.uploaded_file_mgr
    if hasattr(uploads, "_file_count"):  # MemoryUploadedFileManager keeps running totals
        out["upload_files"] = uploads._file_count
        out["upload_bytes"] = uploads._total_bytes
    cached = [s for family in get_data_cache_stats_provider().get_stats().values() for s in family]
    out["cache_data_functions"] = len(cached)
    out["cache_data_bytes"] = sum(s.byte_length for s in cached)
    out["cache_data_bytes_by_function"] = {s.cache_name: s.byte_length for s in cached}
    sessions = getattr(rt, "_session_mgr", None)
    if sessions is not None:
        out["sessions_active"] = sessions.num_active_sessions()
        out["sessions_held"] = sessions.num_sessions()
    return out


def start() -> None:
    """Add :func:`snapshot` to the benchmark stats file, under ``"streamlit"`` (idempotent; a no-op without the file)."""
    settings.serving().add_stats_source("streamlit", snapshot)
