"""The Load Testing data plane's records and shared rules: what a test, a file, a run and a resource hold, the
limits they are checked against, and the service's error shape (see loadtesting.py for the conventions and
sources)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

from aiohttp import web

from . import loadtest_results as results
from .errors import json_response
from .locust_engine import LocustRun

ID_RE = re.compile(r"^[a-z0-9_-]{2,50}$")              # spec: testId / testRunId pattern and lengths
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._ -]{0,199}$")   # guess (see loadtesting.upload)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")   # guess: POSIX names (values reach the engines' env)
MAX_FILE_BYTES = 50 * 1024 * 1024                      # SDK: "File size can't be more than 50 MB"
MAX_TESTS = 1000                                       # guess: per resource (the emulator keeps them in memory)
MAX_RUNS = 1000                                        # guess: per resource
MAX_FILES = 50                                         # guess
MAX_VARIABLES = 200                                    # guess (env vars + secrets of a test)
MAX_VALUE_CHARS = 32 * 1024                            # guess
MAX_ENGINES = 400                                      # SDK model LoadTestConfiguration: "range of 1-400"
VALIDATION_SECONDS = 0.2                               # guess (the service validates in seconds: recording)
FILE_URL_SECONDS = 600                                 # recording: expireDateTime = answer + 10 min
OUTPUT_URL_SECONDS = 3600                              # recording: output artifacts expire 1 h later
TERMINAL = ("DONE", "FAILED", "CANCELLED")
SCRIPT_TYPES = ("TEST_SCRIPT", "JMX_FILE")
FILE_TYPES = ("JMX_FILE", "USER_PROPERTIES", "ADDITIONAL_ARTIFACTS", "ZIPPED_ARTIFACTS", "URL_TEST_CONFIG",
              "TEST_SCRIPT")


def now_iso(ts: float | None = None) -> str:
    return results.iso(time.time() if ts is None else ts)


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status,
                         headers={"x-ms-error-code": code})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class TestFile:
    name: str
    file_type: str
    uploaded: float
    status: str
    details: str | None = None
    gets: int = 0


@dataclass
class TestRecord:
    body: dict
    files: dict[str, TestFile] = field(default_factory=dict)   # by file name


@dataclass
class RunRecord:
    body: dict
    resource_id: str
    engine: LocustRun | None = None
    task: asyncio.Task | None = None
    stop_requested: bool = False
    history: list[dict] = field(default_factory=list)


@dataclass
class ResourceState:
    resource_id: str
    tests: dict[str, TestRecord] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)
