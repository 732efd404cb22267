"""`python -m tests.azure_emulator`: run the emulator by hand and print the environment that reaches it."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import sys
import tempfile
import threading

from .faults import KINDS
from .server import Emulator


_PLAIN = re.compile(r"[A-Za-z0-9_./:@,+=%-]*")


def write_env_file(path: str, env: dict[str, str]) -> None:
    """NAME=value lines for `env $(cat FILE) cmd` (word-split, unquoted: a value with other characters is refused),
    written atomically, mode 0600 (it holds the emulator's client secret), never through a symlink."""
    bad = [name for name, value in env.items() if not _PLAIN.fullmatch(value)]
    if bad:
        raise ValueError(f"cannot write {', '.join(bad)} for `env $(cat FILE)` (spaces or shell characters in the "
                         "value): run the emulator from a folder without them")
    target = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".emu-env.")
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{name}={value}\n" for name, value in env.items()))
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)  # a rename replaces a symlink at `target` itself, never writes through it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.azure_emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="HTTPS port (default: any free port)")
    parser.add_argument("--proxy-port", type=int, default=0, help="CONNECT proxy port (default: any free port)")
    parser.add_argument("--lro", choices=("sync", "async"), default="sync", help="long-running operation style")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of ARM calls that fail (0-1)")
    parser.add_argument("--faults", default=",".join(KINDS), help=f"fault kinds to inject (default {','.join(KINDS)})")
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    parser.add_argument("--state-dir", default=None, help="keep resources, blobs, CA and token key here across runs")
    parser.add_argument("--timing", choices=("fast", "realistic"), default="fast",
                        help="realistic: operations take the recorded Azure durations x --time-scale (use --lro async)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply the realistic durations")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay every answer (ARM, token, blob, scoring) this long: the distance to Azure")
    parser.add_argument("--no-retry-after", action="store_true",
                        help="status answers without Retry-After, as Azure sends them (the SDK polls every 5-30 s)")
    parser.add_argument("--env-file", metavar="FILE",
                        help="write NAME=value lines reaching the emulator to FILE (mode 0600) once it is ready, for "
                             "one command at a time: env $(cat FILE) rtsctl plan M; your shell (its HTTPS_PROXY, "
                             "pip) stays untouched")
    args = parser.parse_args(argv)

    from .context import Settings

    settings = Settings(retry_after=None) if args.no_retry_after else None
    emu = Emulator(lro_mode=args.lro, fault_rate=args.fault_rate, faults=tuple(filter(None, args.faults.split(","))),
                   seed=args.seed, port=args.port, proxy_port=args.proxy_port, state_dir=args.state_dir,
                   settings=settings, timing=args.timing, time_scale=args.time_scale,
                   latency_ms=args.latency_ms).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"# Azure emulator on {emu.url} (proxy {emu.proxy_url}, LROs {args.lro}, timing {args.timing} "
          f"x{args.time_scale}, fault rate {args.fault_rate})")
    if args.env_file:
        try:
            write_env_file(args.env_file, emu.env())
        except (OSError, ValueError) as exc:
            emu.stop()
            print(f"python -m tests.azure_emulator: --env-file {args.env_file}: {exc}", file=sys.stderr)
            return 1
        print(f"# wrote {args.env_file}: run one command against the emulator with  env $(cat {args.env_file}) "
              "rtsctl plan M")
    else:
        print("# For one command: env $(cat FILE) rtsctl ..., with --env-file FILE (your shell stays untouched).")
        print("# Or paste into a shell of its own (HTTPS_PROXY would also send pip through the emulator's proxy):")
        for name, value in emu.env().items():
            print(f"export {name}={shlex.quote(value)}")
    print("# ready; Ctrl-C to stop", flush=True)
    try:
        stop.wait()
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
