"""The container's entry point: refuse to serve with the placeholder cookie secret or a setting the app cannot
use (app/settings.py), else run the app.

``deploy/secret.yaml`` is committed with a placeholder value, to be replaced before the first deploy. A cluster
that applied it unchanged would sign every session cookie with a secret anyone can read on GitHub, so the
server refuses to start with it, in one sentence that says how to make a real one (the pod then fails to start
and ``kubectl logs`` shows the sentence). An unset secret is allowed: one ``docker run`` then gets a random
secret of its own from Streamlit (several replicas need a shared one: deploy/secret.yaml).

    python -m app.launch [streamlit options]   # what the Dockerfile's CMD runs
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

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
    args = [sys.executable, "-m", "streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    os.execv(sys.executable, args)  # the server replaces this process: signals reach it directly
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
