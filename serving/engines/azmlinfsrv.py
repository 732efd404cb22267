"""engine: azmlinfsrv — the user's script under Microsoft's own inference server, inside the scoring host.

For scripts written against azureml-inference-server-http's API (`@rawhttp` and a Flask request,
`@input_schema`/`@output_schema` from inference-schema, `AMLResponse`, `run(data, request_headers)`),
which the native engine's plain `run(str)` contract cannot serve. Azure's inference images run this
very server, so this engine is also the fidelity check before a deployment goes to Azure.

Why in-process rather than `azmlinfsrv --port`: its launcher always binds 0.0.0.0 with no auth and
leaves gunicorn workers behind when killed (shared/reference/aml-inference-server-notes.md). Its
Flask app is the WSGI app gunicorn would serve (`azureml_inference_server_http.server.entry:app`), so
the host loads that app and calls it per request: the server's own code parses input, runs the
script, times it out (SCORING_TIMEOUT_MS, SIGALRM in the host's main thread, as in a gunicorn sync
worker) and shapes the response, while the front keeps the key check and no TCP port is opened.
The configuration steps its launcher takes before starting gunicorn (logging config, the AZUREML_*
variables, App Insights off without a key, AML_APP_ROOT on sys.path) are taken here the same way, by
calling the launcher's own functions.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

#: what a WSGI server puts in every environ; the host serves POST /score only (GET / is its own)
_BASE_ENVIRON = {
    "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/score", "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5001", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
    "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.multithread": False, "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}
#: framing is the host's job (it writes Content-Length itself)
_HOP_BY_HOP = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})


def _configure(script: str, model_dir: Path | None) -> None:
    """What `azmlinfsrv --entry_script S --model_dir M` does before gunicorn imports the app."""
    try:
        from azureml_inference_server_http import amlserver
        from azureml_inference_server_http.args import parse_arguments
    except ImportError as exc:
        raise ImportError(f"engine azmlinfsrv: azureml-inference-server-http is not importable in this "
                          f"environment ({exc})") from exc
    argv = ["azmlinfsrv", "--entry_script", script] + (["--model_dir", str(model_dir)] if model_dir else [])
    saved, sys.argv = sys.argv, argv
    try:
        args = parse_arguments()
    finally:
        sys.argv = saved
    amlserver.load_logging_config(amlserver.PACKAGE_ROOT)
    amlserver.merge_configuration(args)
    amlserver.validate_environment_variables()
    amlserver.set_path_variable()
    amlserver.print_server_info()


def load(code_dir: Path, script: str, model_dir: Path | None):
    """Microsoft's Flask app with the user's script loaded and init() run (a failing init exits 3, as in
    azmlinfsrv: its blueprint calls sys.exit(3) after logging the traceback)."""
    os.environ["AML_APP_ROOT"] = str(code_dir)
    _configure(script, model_dir)
    try:
        from azureml_inference_server_http.server.entry import app
    except SystemExit as exc:
        # its blueprint logs the user's traceback and calls sys.exit(3) inside the `except` that caught it:
        # chain that exception, so the host's error ends with the user's own exception
        root = exc.__context__
        while root is not None and (root.__cause__ or root.__context__) is not None:
            root = root.__cause__ or root.__context__
        what = f": {type(root).__name__}: {root}" if root is not None else f" (exit {exc.code})"
        raise RuntimeError(f"azmlinfsrv could not load or initialise the scoring script{what}") from exc.__context__

    def handle(body: bytes, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        environ = dict(_BASE_ENVIRON)
        environ.update({"wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body))})
        for name, value in headers.items():
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
            elif name != "content-length":
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list = []

        def start_response(status: str, response_headers: list, exc_info=None):
            started[:] = [status, response_headers]
            return lambda data: None   # the legacy write() callable; Flask never uses it

        result = app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        status, response_headers = started
        kept = [(k, v) for k, v in response_headers if k.lower() not in _HOP_BY_HOP]
        return int(status.split(" ", 1)[0]), kept, payload

    return handle
