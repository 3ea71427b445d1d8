"""The classroom server settings in .streamlit/config.toml (issue 6): every option is one
Streamlit knows (a typo would be silently ignored), and the classroom values are set."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[3] / ".streamlit" / "config.toml"


@pytest.fixture(scope="module")
def settings() -> dict[str, object]:
    raw = tomllib.loads(CONFIG.read_text())
    return {f"{section}.{key}": value for section, opts in raw.items() for key, value in opts.items()}


def test_every_option_is_a_streamlit_option(settings):
    from streamlit import config

    known = set(config.get_config_options())
    unknown = sorted(set(settings) - known)
    assert not unknown, f"not Streamlit options: {unknown}"


@pytest.mark.parametrize(
    "option, value",
    [
        ("client.showErrorDetails", "none"),  # no tracebacks for students
        ("server.enableXsrfProtection", True),
        ("browser.gatherUsageStats", False),
        ("server.maxUploadSize", 20),
        ("server.disconnectedSessionTTL", 120),  # disconnected sessions are freed
        ("runner.postScriptGC", False),  # a full GC per rerun cost ~30 % of the server under load
    ],
)
def test_classroom_values(settings, option, value):
    assert settings.get(option) == value
