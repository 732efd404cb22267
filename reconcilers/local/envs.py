"""Local environments: a conda file made into an isolated Python environment with uv, once per content.

Why uv: it resolves and installs from PyPI in about a second with a warm cache and links files out of
its cache instead of copying them, so one environment per content costs little time and disk. Each
environment is a venv of rtsctl's own interpreter holding only what the conda file lists, so a script
that imports something its conda file forgot fails here, at apply, not on Azure ten minutes later.

From a conda file to PyPI, the rule (README "Local environments"):
  * `python=X.Y` is checked, not installed: local environments use rtsctl's own interpreter (another
    Python would have to be downloaded); a different X.Y is reported when the environment is built.
  * `pip` itself is skipped; the entries under `pip:` are PyPI requirements, installed as written.
  * every other conda dependency `[channel::]name[=version[=build]]` is installed from PyPI under the
    same name, or its PyPI name for the few that differ (CONDA_TO_PYPI), with conda's version syntax
    translated (`=1.5` -> `==1.5.*`, `1.5 py311_0` -> `==1.5`, `>=1,<2` kept). Packages that exist only on
    conda channels (CUDA toolkits, compilers, system libraries: CONDA_ONLY) or that PyPI does not have
    fail the build with their names.

Environments live in a cache shared by every workspace of RTSCTL_HOME (`$RTSCTL_ENV_CACHE`, default
`$RTSCTL_HOME/envs/<key>/`), keyed by what decides their content: the requirements and the interpreter.
A build happens in `.build-<key>` under a per-key lock and is renamed into place when complete, so a
killed build leaves nothing that looks finished and two applies never build the same key twice.
Destroying a workspace leaves the cache alone (another workspace may use the same environment);
`rm -rf $RTSCTL_HOME/envs` is safe while no deployment runs: the next apply rebuilds what it needs.
Each apply that uses an environment marks it used; after each new build, environments unused for
RTSCTL_ENV_KEEP_DAYS (default 30) that no running process runs from are removed (`prune`), so iterating on
conda files does not fill the disk. One pruned but still declared is health drift that the next apply rebuilds.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rtsctl.support.envvars import env_number
from rtsctl.support.errors import RtsctlError
from rtsctl.manifest.requirements import pip_requirement

from .procs import command_lines
from .state import home, private_root, write_json

FORMAT = 1                      # bump when the layout of a built environment changes
MARKER = "rtsctl-env.json"      # written last, before the rename: its presence means "complete"
BUILD_TIMEOUT_S = 1800.0
MAX_DEPENDENCIES = 500
MAX_ENTRY_CHARS = 300
MAX_CONDA_CHARS = 256 * 1024

#: conda names whose PyPI distribution is named differently.
CONDA_TO_PYPI = {
    "pytorch": "torch", "pytorch-cpu": "torch", "py-xgboost": "xgboost", "py-xgboost-cpu": "xgboost",
    "msgpack-python": "msgpack", "matplotlib-base": "matplotlib", "pytables": "tables",
    "python-graphviz": "graphviz", "py-opencv": "opencv-python", "opencv": "opencv-python",
    "pyqt": "PyQt5", "tensorflow-base": "tensorflow", "lightgbm-cpu": "lightgbm",
}
#: conda packages with no PyPI equivalent: native toolchains, CUDA, system libraries, conda's own plumbing.
CONDA_ONLY = frozenset({
    "cudatoolkit", "cudatoolkit-dev", "cudnn", "cuda", "cuda-toolkit", "cuda-nvcc", "cuda-runtime",
    "pytorch-cuda", "pytorch-mutex", "nccl", "magma", "magma-cuda", "cutensor",
    "blas", "libblas", "libcblas", "liblapack", "openblas", "libopenblas",
    "gcc", "gxx", "gfortran", "gcc_linux-64", "gxx_linux-64", "compilers", "c-compiler", "cxx-compiler",
    "fortran-compiler", "make", "libgcc", "libgcc-ng", "libstdcxx-ng", "libgfortran", "libgfortran-ng",
    "libgomp", "_libgcc_mutex", "_openmp_mutex", "ld_impl_linux-64", "libffi", "libzlib", "zlib", "xz",
    "bzip2", "readline", "ncurses", "sqlite", "tk", "openssl", "ca-certificates", "libuuid", "libnsl",
    "libsqlite", "libxcrypt", "conda", "mamba", "anaconda", "git", "curl", "unixodbc",
})
#: what each serving engine (serving/engines/) needs inside the deployment's environment
ENGINE_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "native": (),                                   # the stdlib-only host
    "azmlinfsrv": ("azureml-inference-server-http",),  # Microsoft's server, as Azure's inference images run
}
_SKIPPED = frozenset({"pip", "setuptools", "wheel"})
_CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(?P<rest>.*)$")
_OPERATORS = ("==", ">=", "<=", "!=", "~=", ">", "<")

Progress = Callable[[str], None]


class EnvBuildError(RtsctlError):
    """An environment that cannot be built; the message names the package or line at fault."""


@dataclass(frozen=True)
class EnvSpec:
    """What decides an environment's content (hence its cache key), parsed from a conda file."""

    requirements: tuple[str, ...] = ()
    python: str | None = None            # the conda file's `python=` pin, if any
    notes: tuple[str, ...] = ()          # what the local build does differently from Azure's

    @property
    def key(self) -> str:
        interpreter = Path(getattr(sys, "_base_executable", sys.executable) or sys.executable).resolve()
        identity = {"format": FORMAT, "requirements": list(self.requirements),
                    "interpreter": str(interpreter), "version": list(sys.version_info[:3])}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]

    def plus(self, extra: Sequence[str]) -> EnvSpec:
        missing = tuple(r for r in extra if _dist(r) not in {_dist(x) for x in self.requirements})
        return EnvSpec(self.requirements + missing, self.python, self.notes)


def _dist(requirement: str) -> str:
    """The normalized distribution name of a requirement (PEP 503), to compare requirements by package."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._\-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement.strip().lower()


# -- conda file -> requirements ---------------------------------------------------------------------

def conda_to_pip(entry: str) -> str:
    """One conda match spec as a PyPI requirement (held to the same rule as a `pip:` entry: a PEP 508 requirement
    with no URL, rtsctl.manifest.requirements), or EnvBuildError for a conda-only package."""
    translated = _conda_to_pip(entry)
    requirement, problem = pip_requirement(translated)
    if problem is not None:
        raise EnvBuildError(f"cannot read conda dependency {entry!r}: as a PyPI requirement, {translated!r} {problem}")
    return requirement


def _conda_to_pip(entry: str) -> str:
    text = entry.split("::", 1)[1] if "::" in entry else entry
    match = _CONDA_SPEC.match(text.strip())
    if not match:
        raise EnvBuildError(f"cannot read conda dependency {entry!r}")
    name, rest = match.group("name"), match.group("rest").strip()
    if name.lower() in CONDA_ONLY:
        raise EnvBuildError(f"conda-only package {name!r}: it has no PyPI equivalent")
    pypi = CONDA_TO_PYPI.get(name.lower(), name)
    if not rest:
        return pypi
    if "|" in rest or "[" in rest:
        raise EnvBuildError(f"conda dependency {entry!r}: alternatives and bracket specs have no pip "
                            "equivalent; write it under pip: instead")
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=", 1)[0]           # drop the build string: `=1.5=py311_0`
        return f"{pypi}=={version.rstrip('.*')}.*" if version else pypi
    if rest.startswith(_OPERATORS):
        return f"{pypi}{rest.replace(' ', '')}"
    version = rest.split()[0]                           # `1.5.3 py311_0`: version then build
    if version.startswith(_OPERATORS):
        return f"{pypi}{version}"
    return f"{pypi}=={version}" if "*" not in version else f"{pypi}=={version.rstrip('.*')}.*"


def parse_conda(text: str | None, where: str = "conda_file") -> EnvSpec:
    """A conda file's dependencies as pip requirements (see the module docstring for the rule)."""
    if not text:
        return EnvSpec()
    if len(text) > MAX_CONDA_CHARS:
        raise EnvBuildError(f"{where}: larger than {MAX_CONDA_CHARS // 1024} KiB")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EnvBuildError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    deps = (data or {}).get("dependencies") or [] if isinstance(data, dict) else None
    if not isinstance(deps, list):
        raise EnvBuildError(f"{where}: `dependencies` must be a list")
    requirements: list[str] = []
    conda_only: list[str] = []
    python = None
    for dep in deps[:MAX_DEPENDENCIES + 1]:
        if len(requirements) >= MAX_DEPENDENCIES:
            raise EnvBuildError(f"{where}: more than {MAX_DEPENDENCIES} dependencies")
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            requirements += _pip_entries(dep["pip"], where)
            if len(requirements) > MAX_DEPENDENCIES:
                raise EnvBuildError(f"{where}: more than {MAX_DEPENDENCIES} dependencies")
            continue
        if not isinstance(dep, str) or len(dep) > MAX_ENTRY_CHARS:
            raise EnvBuildError(f"{where}: dependency {str(dep)[:80]!r} is neither a package spec nor `pip:`")
        base = (dep.split("::", 1)[-1]).strip()
        name = _CONDA_SPEC.match(base).group("name").lower() if _CONDA_SPEC.match(base) else ""
        if name == "python":
            pin = base[len("python"):].strip()
            # only an exact pin (`python=3.9`, `python 3.9.*`) is compared; a range is left to the user
            python = pin.lstrip("= ").split("=")[0] or None if not pin.startswith(("<", ">", "!", "~")) else None
            continue
        if name in _SKIPPED:
            continue
        try:
            requirements.append(conda_to_pip(dep))
        except EnvBuildError as exc:
            if "conda-only" not in str(exc):
                raise EnvBuildError(f"{where}: {exc}") from None
            conda_only.append(dep)
    if conda_only:
        raise EnvBuildError(
            f"{where}: conda-only package(s) {', '.join(conda_only)}: no PyPI equivalent, and the local backend "
            "installs conda dependencies from PyPI; drop them for local runs or use pip: names")
    notes = []
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python and not (python == mine or python.startswith(mine + ".") or python.rstrip(".*") == mine):
        notes.append(f"the conda file asks for python {python}; local environments use rtsctl's Python {mine}")
    return EnvSpec(tuple(requirements), python, tuple(notes))


def _pip_entries(entries: Any, where: str) -> list[str]:
    """The `pip:` list as canonical PyPI requirements (rtsctl.manifest.requirements: `validate` refuses the rest
    first; a registered record from before that rule is refused here, still before uv sees it)."""
    if not isinstance(entries, list):
        raise EnvBuildError(f"{where}: `pip:` must be a list of requirements")
    out = []
    for entry in entries[:MAX_DEPENDENCIES + 1]:
        if isinstance(entry, str) and not entry.strip():
            continue
        requirement, problem = pip_requirement(entry)
        if problem is not None:
            raise EnvBuildError(f"{where}: pip entry {str(entry)[:80]!r} {problem}")
        out.append(requirement)
    return out


# -- materialization ---------------------------------------------------------------------------------

def cache_root() -> Path:
    # absolute: an instance's argv[0] is its environment's python, which is how prune() sees it is in use;
    # private: whoever may write there could plant an interpreter that runs as you
    return private_root(os.environ.get("RTSCTL_ENV_CACHE") or home() / "envs", "RTSCTL_ENV_CACHE")


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def built(spec: EnvSpec) -> Path | None:
    """The environment's folder when it is complete, else None."""
    env = cache_root() / spec.key
    return env if (env / MARKER).is_file() and _python(env).exists() else None


def uv_bin() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found:
            return found
        raise EnvBuildError("uv is not installed (pip install uv): local environments are built with it") from None
    return find_uv_bin()


def ensure(spec: EnvSpec, progress: Progress | None = None) -> Path:
    """The environment for `spec`, built now if it is not yet in the cache. Returns its folder."""
    found = built(spec)
    if found:
        _touch(found)
        return found
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda line: None)
    with _build_lock(root / f"{spec.key}.lock", say):
        found = built(spec)                 # another rtsctl may have built it while we waited
        if found:
            return found
        target = root / spec.key
        staging = root / f".build-{spec.key}"
        shutil.rmtree(staging, ignore_errors=True)   # what a killed build left
        shutil.rmtree(target, ignore_errors=True)    # a damaged environment (no marker or no python)
        for note in spec.notes:
            say(f"note: {note}")
        started = time.monotonic()
        try:
            installed = _build(spec, staging, say)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        staging.rename(target)
        say(f"environment ready in {time.monotonic() - started:.1f}s: {len(installed)} package(s)"
            + (f" ({', '.join(installed[:6])}{', …' if len(installed) > 6 else ''})" if installed else ""))
    removed = prune(keep=target)
    if removed:
        say(f"removed {len(removed)} environment(s) unused for {keep_days():g} days: {', '.join(removed)[:200]}")
    return target


def keep_days() -> float:
    return env_number("RTSCTL_ENV_KEEP_DAYS", 30.0, 0.0, 36500.0)


def prune(keep: Path | None = None, now: float | None = None) -> list[str]:
    """Remove complete environments whose last use is older than keep_days() and that no running process
    runs from (an instance's argv[0] is its environment's python); each under its build lock, skipped if
    busy. Returns the removed keys."""
    root, limit = cache_root(), keep_days() * 86400.0
    now = time.time() if now is None else now
    in_use = _running_envs(root)
    removed = []
    for env in sorted(root.iterdir()) if root.is_dir() else []:
        marker = env / MARKER
        if env == keep or env.name.startswith(".") or env.name in in_use or not marker.is_file():
            continue
        try:
            if now - marker.stat().st_mtime < limit:
                continue
        except OSError:
            continue
        with open(root / f"{env.name}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being built or used by another rtsctl right now
            shutil.rmtree(env, ignore_errors=True)
            removed.append(env.name)
    return removed


def _running_envs(root: Path) -> set[str]:
    """Keys of the environments a running process was started from (its absolute argv[0] under the cache)."""
    prefixes = {str(root) + os.sep, str(root.resolve()) + os.sep}
    found: set[str] = set()
    for _, argv in command_lines():
        argv0 = argv[0].decode("utf-8", "replace")
        for prefix in prefixes:
            if argv0.startswith(prefix):
                found.add(argv0[len(prefix):].split(os.sep, 1)[0])
    return found


@contextlib.contextmanager
def _build_lock(path: Path, say: Progress) -> Iterator[None]:
    """One builder per environment; the others wait (saying so) and then find it built."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another rtsctl that is building this environment")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(spec: EnvSpec, staging: Path, say: Progress) -> list[str]:
    """A venv of rtsctl's interpreter in `staging` with the requirements installed; the marker last."""
    _run([uv_bin(), "venv", "--no-config", "--quiet", "--relocatable", "--python", sys.executable, str(staging)], say)
    installed: list[str] = []
    if spec.requirements:
        say(f"installing {len(spec.requirements)} requirement(s) with uv: {', '.join(spec.requirements)[:200]}")
        # as arguments after `--`, not a requirements file: nothing in them is read as an option or a variable.
        # --compile-bytecode: every instance start (and restart) imports these packages; without .pyc files, and
        # with PYTHONDONTWRITEBYTECODE set (as on many CI machines), each start compiled them from source again
        # (azureml-inference-server-http: 3.4 s instead of 1.2 s; scikit-learn: 5.4 s instead of 2.2 s)
        installed = _run([uv_bin(), "pip", "install", "--no-config", "--compile-bytecode", "--python",
                          str(_python(staging)), "--", *spec.requirements], say)
    write_json(staging / MARKER, {"key": spec.key, "requirements": list(spec.requirements), "installed": installed,
                                  "python": sys.version.split()[0], "built_at": time.time()})
    return installed


def _touch(env: Path) -> None:
    """Record the last use (for a future prune of environments nobody used for long)."""
    try:
        os.utime(env / MARKER)
    except OSError:
        pass


def build_timeout() -> float:
    return env_number("RTSCTL_ENV_BUILD_TIMEOUT", BUILD_TIMEOUT_S, 1.0, 86400.0)


#: what uv may see of rtsctl's environment: where to find programs and certificates, the proxy the user set up.
#: Nothing else (no UV_INDEX_URL, no PIP_*, no HOME for a user config): a conda file can then not reach a
#: variable, and what is installed depends on the conda file alone.
_UV_PASSED = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY",
              "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy")


def uv_environment() -> dict[str, str]:
    """A scrubbed environment for uv, with its (warm) package cache named explicitly."""
    cache = os.environ.get("UV_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv")
    env = {k: os.environ[k] for k in _UV_PASSED if k in os.environ}
    env.update(UV_CACHE_DIR=cache, UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1",
               NO_COLOR="1")
    return env


def _run(argv: list[str], say: Progress) -> list[str]:
    """Run uv, relaying its summary lines (Resolved/Prepared/Installed) as progress; returns the
    `name==version` lines it installed. A failure becomes one error naming the packages uv could not find.
    The timeout is wall-clock time: a build that prints nothing (a silent setup.py) is stopped all the same,
    with everything it started (uv runs in its own process group)."""
    timeout = build_timeout()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=uv_environment(),
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_ends_with(os.getpid()))
    lines: list[str] = []
    installed: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    pending = b""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EnvBuildError(f"the environment build took longer than {timeout:g}s "
                                        "(RTSCTL_ENV_BUILD_TIMEOUT); stopped")
                if not selector.select(min(left, 1.0)):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                *complete, pending = (pending + chunk).split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace").rstrip()
                    lines.append(line)
                    del lines[:-200]
                    if line.startswith(("Resolved ", "Prepared ", "Installed ", "Downloading ", "Building ")):
                        say(line[0].lower() + line[1:])
                    elif line.startswith(" + "):
                        installed.append(line[3:].strip())
        if pending:
            lines.append(pending.decode("utf-8", "replace").rstrip())
        if proc.wait() != 0:
            raise EnvBuildError(_explain(lines))
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
    return installed


def _ends_with(parent: int):
    """uv must not outlive a killed rtsctl: it would go on writing into a staging folder that the next build,
    holding the lock rtsctl's death released, deletes. Linux's PR_SET_PDEATHSIG kills it with its parent."""
    if not sys.platform.startswith("linux"):
        return None

    def in_child() -> None:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)     # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:                      # rtsctl died before prctl took effect
            os._exit(1)

    return in_child


def _explain(lines: list[str]) -> str:
    text = "\n".join(lines)
    missing = sorted(set(re.findall(r"\b([A-Za-z0-9][A-Za-z0-9._\-]*) was not found in the package registry", text)))
    if missing:
        return (f"not on PyPI: {', '.join(missing)} (a conda dependency is installed from PyPI by the same name; "
                "a conda-only package has to go, or be listed under pip: by its PyPI name)")
    full = next((ln.strip() for ln in lines if "No space left on device" in ln or "Disk quota exceeded" in ln), None)
    if full:  # said first, whatever else uv printed: the 800-character cut below once dropped it
        return (f"No space left on device while building the environment in {cache_root()} (uv: {full[-300:]}); "
                "free some space (or RTSCTL_ENV_CACHE elsewhere) and apply again")
    useful = [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("Using ", "Resolved ", " + "))]
    return "uv failed: " + " | ".join(useful[-6:])[:800]


# -- what the deployment asks for ---------------------------------------------------------------------

def spec_for(layout, environment: dict[str, Any] | None, extra: Sequence[str] = ()) -> EnvSpec:
    """The EnvSpec of a deployment's `environment` ({"name", "digest"}; None: a bare environment)."""
    from .registry import find_version

    if not environment:
        return EnvSpec().plus(extra)
    found = find_version(layout.environment(environment["name"]), environment["digest"])
    if found is None:
        raise EnvBuildError(f"environment {environment['name']} with digest {environment['digest'][:19]}… "
                                "is not registered")
    record = found[1]
    return parse_conda(record.get("conda_file"), f"environment {environment['name']}: conda_file").plus(extra)


def python_for(layout, environment: dict[str, Any] | None, engine: str = "native",
               progress: Progress | None = None) -> Path:
    """The interpreter a deployment's instances run: its environment's (plus what its serving engine
    needs), built now if need be. A deployment without an environment gets a bare one: only the
    standard library, never rtsctl's own packages."""
    if engine not in ENGINE_REQUIREMENTS:
        raise EnvBuildError(f"unknown engine {engine!r} (known: {', '.join(sorted(ENGINE_REQUIREMENTS))})")
    label = f"environment.{environment['name']}" if environment else "environment (none declared)"
    say = progress or (lambda line: print(f"{label}: {line}", file=sys.stderr, flush=True))
    return _python(ensure(spec_for(layout, environment, ENGINE_REQUIREMENTS[engine]), say))
