"""Keep third-party chatter off a user's terminal.

Some native libraries print straight to file descriptor 2, below Python's logging
and ``sys.stderr``: LiteRT says ``INFO: Created TensorFlow Lite XNNPACK delegate for
CPU.`` each time an interpreter is built. :func:`native_stderr_quiet` silences the
descriptor around such a call; ``--debug`` (debug logging on ``vidsense``) lets it
through.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

# Descriptor 2 is one per process: threads building models at once must not restore each
# other's redirection out of order.
_LOCK = threading.Lock()


@contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """Silence what native code writes to descriptor 2 while the block runs (not under ``--debug``)."""
    if logging.getLogger("vidsense").isEnabledFor(logging.DEBUG):
        yield
        return
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no descriptor 2 (a service without stderr): nothing to silence
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def litert_interpreter(path: str | os.PathLike[str], threads: int) -> "object":
    """A LiteRT interpreter for the ``.tflite`` model at ``path``, tensors allocated, built without its
    XNNPACK line on the terminal."""
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_quiet():
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter
