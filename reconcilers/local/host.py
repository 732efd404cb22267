"""The local scoring host: one instance of a deployment, loading the user's script as Azure ML does.

Mirrors azmlinfsrv's visible contract (see shared/reference/aml-inference-server-notes.md):
`init()` once at start (a failure exits 3), `run(raw_body_as_str)` per request on one
worker thread so `GET /` stays responsive, 200 with run()'s result as JSON, 500 with
`x-ms-run-function-failed: True` when run() raises (the server stays up), 400 on a
non-UTF-8 body. `AZUREML_MODEL_DIR` is set and the working directory is the code folder.
It binds 127.0.0.1 only and does no authentication: the endpoint front checks keys.

Run as `python -m reconcilers.local.host --code DIR --script score.py --model-dir DIR --port P`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

from . import procs

SERVER_VERSION = "rtsctl-host/0.1"
GENERIC_ERROR = "An unexpected error occurred in scoring script. Check the logs for more info."
INIT_FAILED_EXIT = 3

log = logging.getLogger("rtsctl.host")


def load_script(code_dir: Path, scoring_script: str) -> ModuleType:
    """Load the entry script the way azmlinfsrv does: not in sys.modules, app root on sys.path."""
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


def build_app(module: ModuleType):
    from aiohttp import web

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run")
    run = module.run

    def base_headers(started: float, failed: bool) -> dict[str, str]:
        return {
            "x-ms-run-function-failed": "True" if failed else "False",
            "x-ms-run-fn-exec-ms": f"{(time.perf_counter() - started) * 1000:.3f}",
            "x-ms-server-version": SERVER_VERSION,
            "x-ms-request-id": str(uuid.uuid4()),
        }

    async def liveness(request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    async def score(request: web.Request) -> web.Response:
        started = time.perf_counter()
        body = await request.read()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return web.json_response({"message": f"Input cannot be decoded as UTF-8: {exc}"}, status=400,
                                     headers=base_headers(started, False))
        try:
            result = await asyncio.get_running_loop().run_in_executor(executor, run, text)
            payload = json.dumps(result)
        except Exception:
            log.error("run() raised:\n%s", traceback.format_exc())
            return web.json_response({"message": GENERIC_ERROR}, status=500, headers=base_headers(started, True))
        return web.Response(text=payload, content_type="application/json", headers=base_headers(started, False))

    app = web.Application(client_max_size=1024**3)
    app.router.add_get("/", liveness)
    app.router.add_post("/score", score)
    return app


def serve(code_dir: Path, scoring_script: str, model_dir: Path | None, port: int) -> int:
    from aiohttp import web

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s - %(message)s")
    os.chdir(code_dir)
    os.environ.setdefault("AML_APP_ROOT", str(code_dir))
    if model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    try:
        module = load_script(code_dir, scoring_script)
        if callable(getattr(module, "init", None)):
            module.init()
    except BaseException:
        log.error("scoring script failed to initialise:\n%s", traceback.format_exc())
        return INIT_FAILED_EXIT
    _use_uvloop()
    log.info("serving %s on 127.0.0.1:%d", code_dir / scoring_script, port)
    web.run_app(build_app(module), host="127.0.0.1", port=port, access_log=None, print=None,
                handle_signals=True, shutdown_timeout=2.0)
    return 0


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def spawn(code_dir: Path, scoring_script: str, model_dir: Path | None, port: int, log_path: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start one detached scoring instance; `env` adds the deployment's environment variables."""
    argv = procs.python_module("reconcilers.local.host", "--code", str(code_dir), "--script", scoring_script,
                               "--port", str(port))
    if model_dir is not None:
        argv += ["--model-dir", str(model_dir)]
    return procs.spawn(argv, log_path, cwd=code_dir, env=procs.child_env(env))


def wait_healthy(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Block until `GET /` answers 200; raise RuntimeError on timeout or if `proc` exits first."""
    url = f"http://127.0.0.1:{port}/"

    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"scoring instance exited with code {proc.returncode} before becoming healthy")
        return procs.http_ok(url, timeout=0.5)

    if not procs.wait_until(ready, timeout):
        raise RuntimeError(f"scoring instance on port {port} not healthy after {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconcilers.local.host", description=__doc__.split("\n")[0])
    parser.add_argument("--code", required=True, type=Path)
    parser.add_argument("--script", required=True)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    return serve(args.code.resolve(), args.script, args.model_dir, args.port)


if __name__ == "__main__":
    sys.exit(main())
