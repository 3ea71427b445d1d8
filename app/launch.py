"""The container's entry point: refuse to serve with the placeholder cookie secret or a setting the app cannot
use (app/settings.py), else run the app.

``deploy/secret.yaml`` is committed with a placeholder value, to be replaced before the first deploy. A cluster
that applied it unchanged would sign every session cookie with a secret anyone can read on GitHub, so the
server refuses to start with it, in one sentence that says how to make a real one (the pod then fails to start
and ``kubectl logs`` shows the sentence). An unset secret is allowed: one ``docker run`` then gets a random
secret of its own from Streamlit (several replicas need a shared one: deploy/secret.yaml).

Before the server starts, a warm-up visitor is started beside it (app/server/warm_start.py): it opens Start here once the
server answers, so the first student finds the models, graphs and pictures ready, and prints ``diffusion-lens:
ready …`` when they are. ``DIFFUSION_LENS_WARM_UP=0`` leaves it out.

    python -m app.launch [streamlit options]   # what the Dockerfile's CMD and `make app` run
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from app.server import warm_start

SECRET_ENV = "STREAMLIT_SERVER_COOKIE_SECRET"
PLACEHOLDER = "REPLACE-ME-with-64-random-hex-characters"  # the value committed in deploy/secret.yaml
APP = Path(__file__).resolve().parent / "streamlit_app.py"


def cookie_secret_problem(env: Mapping[str, str]) -> str | None:
    """One sentence if ``env`` holds the committed placeholder cookie secret (or anything starting like it)."""
    secret = env.get(SECRET_ENV, "").strip()
    if secret == PLACEHOLDER or secret.upper().startswith("REPLACE-ME"):
        return (
            f"{SECRET_ENV} is still the placeholder committed in deploy/secret.yaml, so anyone could forge this "
            "server's session cookies: create the secret with a random value (kubectl create secret generic "
            "diffusion-lens-cookie --from-literal=cookie-secret=\"$(python3 -c 'import secrets; "
            "print(secrets.token_hex(32))')\") and restart."
        )
    return None


def settings_problem(env: Mapping[str, str]) -> str | None:
    """One sentence if a ``DIFFUSION_LENS_*`` variable in ``env`` has a value the app cannot use (app/settings.py)."""
    from app.settings import Settings, SettingsError  # (imports streamlit: only once the secret is fine)

    try:
        Settings.from_env(env)
    except SettingsError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    problem = cookie_secret_problem(os.environ) or settings_problem(os.environ)
    if problem:
        print(f"diffusion-lens: refusing to start: {problem}", file=sys.stderr)
        return 2
    options = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("DIFFUSION_LENS_WARM_UP", "").strip().lower() not in ("0", "off", "false", "no"):
        # the first visitor, before any student: it opens Start here once the server answers, then prints
        # "diffusion-lens: ready …" (app/server/warm_start.py); it exits by itself
        base = warm_start.base_url(options, os.environ)
        subprocess.Popen([sys.executable, "-m", "app.server.warm_start", base])  # in the server's process group
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(APP), *options])  # signals reach it
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
