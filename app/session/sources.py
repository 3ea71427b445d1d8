"""Which model sources students may choose: the classroom lock.

The environment variable ``DIFFUSION_LENS_SOURCES`` is a comma-separated list of what the sidebar's model
picker (and a shared link) may load, besides the two bundled models, which are always allowed:

* ``known``: the known pixel-space Hub DDPMs (``model.nets.hub.KNOWN_HUB_MODELS``);
* ``owner/name``: that Hub model;
* ``hub``: any Hub id (up to the loader's own size limit);
* ``local``: folders on the server;
* ``all``: all of the above; ``bundled``: nothing else (the bundled models only).

Unset, it depends on where students reach the server: ``DIFFUSION_LENS_PUBLIC_ADDRESS`` when a proxy publishes
it (``scripts/cluster.sh`` sets it to ``CLUSTER_BIND``: the replicas listen on 127.0.0.1 while haproxy may listen
on 0.0.0.0), else the server's own ``server.address``. On a loopback address it is ``all``, as before; anywhere
else (including Streamlit's default, all interfaces) it is ``known``, so a student can neither type a server path
into "Local folder" nor make the server download an arbitrary Hub repo.
The server's own default model (``DIFFUSION_LENS_MODEL``) is the teacher's choice and is not restricted.

The picker offers only what the policy allows, and :func:`check`, called by the loader of every session's model
(``app/session/which_model.py``), refuses the rest again. Under a policy without ``local`` a source is never looked up on
the server's disk: an existing path and a missing one get the same sentence, so the answer tells nothing about the
server's files.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import streamlit as st

from app import settings
from model.nets import hub, network

ENV = settings.SOURCES_ENV
PUBLIC_ENV = settings.PUBLIC_ADDRESS_ENV  # where a proxy in front of this server listens (scripts/cluster.sh)
LOCKED_DEFAULT = "known"


@dataclass(frozen=True)
class Policy:
    hub_any: bool  # any Hub id
    hub_ids: tuple[str, ...]  # these Hub ids (when not hub_any)
    local: bool  # folders on the server
    why: str  # one sentence for the sidebar: what is allowed and where that comes from
    problem: str | None = None  # a bad DIFFUSION_LENS_SOURCES value, said in one sentence

    @property
    def hub(self) -> bool:
        return self.hub_any or bool(self.hub_ids)

    @property
    def locked(self) -> bool:
        return not (self.hub_any and self.local)

    def refusal(self, source: str) -> str | None:
        """None when ``source`` (a bundled name, folder or Hub id) may be loaded, else one sentence why not."""
        if source in (None, "", "bundled", "fashion"):
            return None
        if not self.local:
            return self._refusal_without_disk(str(source))
        try:
            kind, where = network.parse_source(source)
        except network.ModelLoadError:
            return None  # the loader says what is wrong with it
        if kind == "hub" and not (self.hub_any or where in self.hub_ids):
            return self._not_offered(where)
        return None

    def _refusal_without_disk(self, source: str) -> str | None:
        """:meth:`refusal` when folders are not allowed: decided from the text alone, never from the disk."""
        text = source.strip()
        text = text[len("hf://") :].strip("/") if text.startswith("hf://") else text
        if not hub.is_hub_id(text):
            return "This classroom server only loads the bundled models and Hub models it lists, not folders or paths."
        if not (self.hub_any or text in self.hub_ids):
            return self._not_offered(text)
        return None

    def _not_offered(self, repo_id: str) -> str:
        offered = ", ".join(self.hub_ids) if self.hub_ids else "none"
        return f"This classroom server only loads these Hub models: {offered}; {repo_id} is not one of them."


def listens_beyond_loopback(address: str | None) -> bool:
    """True unless ``address`` is a loopback address or name (unset means all interfaces)."""
    if not address:
        return True
    if address.strip().lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return True  # a host name: assume it is reachable


def parse(text: str, origin: str) -> Policy:
    """The policy a ``DIFFUSION_LENS_SOURCES`` value describes (``origin`` says where it came from)."""
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    hub_any, local, ids, bad = False, False, [], []
    for tok in tokens:
        low = tok.lower()
        if low == "all":
            hub_any = local = True
        elif low == "bundled":
            pass
        elif low == "known":
            ids += list(hub.KNOWN_HUB_MODELS)
        elif low == "hub":
            hub_any = True
        elif low == "local":
            local = True
        elif "/" in tok and not tok.startswith((".", "/", "~")) and ".." not in tok:
            ids.append(tok)
        else:
            bad.append(tok)
    if bad:  # a typo must not open the server up: only the bundled models
        return Policy(False, (), False, "Only the bundled models are offered.",
                      f"{ENV} has entries it does not know ({', '.join(bad)}), so only the bundled models are offered.")  # fmt: skip
    ids = tuple(dict.fromkeys(ids))
    parts = ["the bundled models"]
    if hub_any:
        parts.append("any Hub model")
    elif ids:
        parts.append(f"{len(ids)} Hub model{'s' if len(ids) != 1 else ''} from the list")
    if local:
        parts.append("folders on the server")
    allowed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return Policy(hub_any, () if hub_any else ids, local, f"Classroom server: students may use {allowed} ({origin}).")


def public_address() -> str | None:
    """Where students reach this server: a proxy's address (``DIFFUSION_LENS_PUBLIC_ADDRESS``) if one is set,
    else the server's own ``server.address`` (None: all interfaces)."""
    return settings.current().public_address or st.get_option("server.address")


def policy() -> Policy:
    """The policy in force: from ``DIFFUSION_LENS_SOURCES``, else from where students reach the server."""
    text = settings.current().sources
    if text:
        return parse(text, f"set by {ENV}")
    if listens_beyond_loopback(public_address()):
        return parse(LOCKED_DEFAULT, f"the default when the server listens beyond this machine; set {ENV} to change it")
    return parse("all", "this server listens on this machine only")


def check(source: str) -> None:
    """Raise :class:`ModelLoadError` with one sentence if the policy in force refuses ``source``; the loader of
    every session's model calls this, so a source that got past the picker (or a link) is still refused."""
    refusal = policy().refusal(source)
    if refusal:
        raise network.ModelLoadError(refusal)
