"""One registry convention for every pluggable part.

A registry is a plain dict from a name to ``"module:attr"``: the perception
models (:data:`vidsense.services.perception.PERCEPTION_MODELS`), the LLM backends
(:data:`vidsense.agents.llm.LLM_BACKENDS`), the reasoning routes
(:data:`vidsense.agents.reasoner.REASONERS`) and the batch engines
(:data:`vidsense.engines.ENGINES`). Strings keep a registry free to import: a
backend's heavy dependencies (torch, transformers, llama.cpp, ray) load only when
it is picked. Adding a backend is one line in its registry.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from vidsense.services.errors import InputError


def resolve(registry: Mapping[str, str], name: str, kind: str) -> Any:
    """The object registered as ``name`` (a class or a factory), imported on first use.

    Args:
        registry: name -> ``"module:attr"``.
        name: the name asked for.
        kind: what the registry holds, for the error (``"perception model"``, ``"LLM backend"``).

    Raises:
        InputError: ``name`` is not registered (the message lists the names that are).
    """
    try:
        target = registry[name]
    except KeyError:
        raise InputError(f"unknown {kind} {name!r}; known: {', '.join(registry)}") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
