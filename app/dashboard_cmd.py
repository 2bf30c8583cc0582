"""How ``vidsense dashboard`` starts Streamlit (shared with the browser test)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The dashboard reads the folder it lists from this variable (Streamlit scripts take no CLI options).
FOLDER_ENV = "VIDSENSE_DASHBOARD_FOLDER"
# ... and the folder it is confined to from this one (default: its working directory).
ROOT_ENV = "VIDSENSE_DASHBOARD_ROOT"


def script() -> Path:
    """Path of the Streamlit script."""
    return Path(__file__).with_name("dashboard.py")


def command(
    *, port: int, max_upload_mb: int, folder: Path | None = None, root: Path | None = None, profile: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and environment for the dashboard.

    Served headless on 127.0.0.1 only; Streamlit's own upload limit is set to
    ``settings.max_upload_mb`` so the widget and the app agree. The page lists
    and plays only videos inside ``root`` (default: the current directory).

    Returns:
        The argv and the environment to run it with.
    """
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(script()),
        "--server.headless=true",
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        f"--server.maxUploadSize={max_upload_mb}",
        "--browser.gatherUsageStats=false",
        # Users see the page, not Streamlit's developer toolbar ("Deploy").
        "--client.toolbarMode=viewer",
        "--server.fileWatcherType=none",
    ]
    env = dict(os.environ)
    env[ROOT_ENV] = str((root or Path.cwd()).resolve())
    if folder is not None:
        env[FOLDER_ENV] = str(folder.resolve())
    if profile is not None:
        env["VIDSENSE_PROFILE"] = profile
    return cmd, env
