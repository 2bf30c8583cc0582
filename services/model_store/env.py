"""The runtime side: :class:`ModelEnv`, what every loader is handed, and :func:`resolve`,
which turns a model setting (a bundled name, a local path, a hub id when allowed) into a
checked path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vidsense.services.errors import InputError
from vidsense.services.model_store import catalogue, integrity

log = logging.getLogger(__name__)

def resolve(name_or_path: str, home: Path, *, allow_hub: bool, role: str) -> str:
    """Turn a user's model reference into something a backend can load.

    A registry name becomes its store path; an existing local path is used as is;
    anything else is taken as a hub id only when ``allow_hub`` is on.

    Raises:
        InputError: an unknown name that is no local path, with hub access off.
    """
    if name_or_path in catalogue.MODELS:
        return str(integrity.ensure(name_or_path, home))
    p = Path(name_or_path).expanduser()
    if p.exists():
        return str(p)
    if allow_hub:
        return name_or_path
    raise InputError(
        f"{role} model {name_or_path!r}: not a bundled model name or an existing path "
        "(hub downloads are off; set allow_hub = true or VIDSENSE_ALLOW_HUB=1 to allow them)"
    )


@dataclass(frozen=True)
class ModelEnv:
    """Where every room's models come from and where they run.

    Built once from the settings by the Pipeline and handed to each room, so
    no model loader needs the whole product configuration.

    Attributes:
        home: the model store and cache root (``$VIDSENSE_HOME``).
        device: ``cpu`` or ``cuda`` (already resolved from ``auto``).
        allow_hub: full backends may download from a model hub.
    """

    home: Path
    device: str = "cpu"
    allow_hub: bool = False

    def resolve(self, name_or_path: str, role: str) -> str:
        """:func:`resolve` with this environment's store and hub permission."""
        return resolve(name_or_path, self.home, allow_hub=self.allow_hub, role=role)
