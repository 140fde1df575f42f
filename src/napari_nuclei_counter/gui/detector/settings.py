"""Parameters that persist between napari sessions (a small JSON file)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ...core.io.images import atomic_write
from ...core.params import DetectionParams

log = logging.getLogger(__name__)


def settings_path() -> Path:
    """``$NUCLEI_COUNTER_CONFIG_DIR/settings.json``, else the user config folder."""
    env = os.environ.get("NUCLEI_COUNTER_CONFIG_DIR")
    if env:
        return Path(env) / "settings.json"
    from platformdirs import user_config_dir

    return Path(user_config_dir("napari-nuclei-counter")) / "settings.json"


def load_settings() -> dict:
    """Return the saved settings; an unreadable file gives defaults (and a log line)."""
    path = settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except Exception as exc:
        log.warning("ignoring unreadable settings %s: %s", path, exc)
        return {}


def saved_params() -> DetectionParams:
    """The parameters of the last session, or the defaults."""
    try:
        return DetectionParams.from_dict(load_settings().get("params", {}))
    except (TypeError, ValueError):
        return DetectionParams()


def save_settings(**entries) -> None:
    """Merge ``entries`` into the settings file (atomically)."""
    data = load_settings()
    data.update(entries)
    try:
        with atomic_write(settings_path(), encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
    except OSError as exc:  # a read-only home must not break the GUI
        log.warning("cannot save settings: %s", exc)
