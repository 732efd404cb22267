"""Azure ML's scoring contract as azmlinfsrv serves it: `init()` once, `run(raw_body_as_str)` per request.

Mirrors azmlinfsrv's visible behaviour (shared/reference/aml-inference-server-notes.md):
the entry script is loaded outside sys.modules with the code folder on sys.path; 200
with run()'s result as JSON; 500 with `x-ms-run-function-failed: True` and a generic
message when run() raises (the traceback goes to the instance log); 400 on a body that
is not UTF-8.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
import uuid
from pathlib import Path
from types import ModuleType

SERVER_VERSION = "rtsctl-host/0.2"
GENERIC_ERROR = b'{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}'


def load_script(code_dir: Path, scoring_script: str) -> ModuleType:
    path = code_dir / scoring_script
    if str(code_dir) not in sys.path:
        sys.path.append(str(code_dir))
    spec = importlib.util.spec_from_file_location("entry_module", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load scoring script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ImportError(f"{path} defines no run() function")
    return module


def load(code_dir: Path, script: str, model_dir: Path | None):
    module = load_script(code_dir, script)
    if callable(getattr(module, "init", None)):
        module.init()
    run = module.run
    dumps = json.dumps

    def headers(started: float, failed: bool) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json"),
                ("x-ms-run-function-failed", "True" if failed else "False"),
                ("x-ms-run-fn-exec-ms", f"{(time.perf_counter() - started) * 1000:.3f}"),
                ("x-ms-server-version", SERVER_VERSION),
                ("x-ms-request-id", str(uuid.uuid4()))]

    def handle(body: bytes, request_headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        started = time.perf_counter()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return 400, headers(started, False), dumps({"message": f"Input cannot be decoded as UTF-8: {exc}"}).encode()
        try:
            payload = dumps(run(text)).encode()
        except MemoryError:
            raise                       # over the instance's memory limit: the host exits (serving.limits)
        except Exception:
            print(f"run() raised:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            return 500, headers(started, True), GENERIC_ERROR
        return 200, headers(started, False), payload

    return handle
