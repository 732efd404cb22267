"""Engines: how the scoring host turns a request into a call into the user's code.

An engine is a module here exposing

    load(code_dir: Path, script: str, model_dir: Path | None) -> Handler
    Handler = Callable[[bytes, dict[str, str]], tuple[int, list[tuple[str, str]], bytes]]

`load` imports the user's script and initialises it (raising if init fails); the handler
gets the request body and its lower-cased headers and returns status, headers and body.
The host calls it from its only thread, one request at a time, with the code folder as
working directory and AZUREML_MODEL_DIR set. `native` (the default) is Azure ML's
init()/run(raw) contract; other engines may wrap other servers' contracts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[bytes, dict[str, str]], tuple[int, list[tuple[str, str]], bytes]]


def load(engine: str, code_dir: Path, script: str, model_dir: Path | None) -> Handler:
    if not engine.isidentifier():
        raise ValueError(f"bad engine name {engine!r}")
    module = importlib.import_module(f"{__name__}.{engine}")
    return module.load(code_dir, script, model_dir)
