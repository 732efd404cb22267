"""`rtsctl logs MANIFEST`: the scoring instances' logs of the manifest's deployments, and `-f` to follow them.

Backend-blind like the engine: it picks the deployments from the manifest and asks the backend for
their log streams (local: the rotated instance logs under the workspace, which outlive `destroy` of
the endpoint; Azure: the inference server container's log through getLogs). With several sources,
plain reading prints them one after the other under `==> source <==` headers (as `tail` does) and
following interleaves them line by line with a `[source]` prefix, picking up instances started meanwhile.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator

from rtsctl.commands.args import bounded
from rtsctl.support.errors import RtsctlError

WHOLE = bounded(int, 0, 10_000_000, "a whole number")


def add_parser(sub, add_manifest_args) -> None:
    p = sub.add_parser("logs", help="show (or -f follow) the scoring instances' logs of a manifest's deployments")
    add_manifest_args(p)
    p.add_argument("--endpoint", help="one endpoint (default: all in the manifest)")
    p.add_argument("--deployment", help="one deployment (default: all of the endpoint)")
    p.add_argument("--instance", type=WHOLE, metavar="N", help="one instance, counted from 0 (local only)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    p.add_argument("--tail", type=WHOLE, metavar="N",
                   help="only the last N lines of each source (default: all locally, 1000 on Azure)")
    p.set_defaults(func=cmd_logs)




def select(deployments: list[str], endpoint: str | None, deployment: str | None, manifest: str) -> list[tuple[str, str]]:
    """The (endpoint, deployment) pairs the flags pick among the manifest's `endpoint/deployment` names."""
    pairs = [(name.split("/", 1)[0], name.split("/", 1)[1]) for name in deployments]
    if endpoint is not None:
        endpoints = sorted({e for e, _ in pairs})
        if endpoint not in endpoints:
            raise RtsctlError(f"no endpoint {endpoint!r} in {manifest} (declared: {', '.join(endpoints)})")
        pairs = [p for p in pairs if p[0] == endpoint]
    if deployment is not None:
        names = sorted({d for _, d in pairs})
        pairs = [p for p in pairs if p[1] == deployment]
        if not pairs:
            raise RtsctlError(f"no deployment {deployment!r}" + (f" in endpoint {endpoint}" if endpoint else "")
                              + f" in {manifest} (declared: {', '.join(names)})")
    return pairs


def cmd_logs(args: argparse.Namespace) -> int:
    from rtsctl.engine import open_session
    from rtsctl.rollout.successor import live_deployments

    with open_session(args.manifest, args.variables) as session:
        names = [r.name for r in session.graph.nodes.values() if r.kind == "deployment"]
        pairs = select(names, args.endpoint, args.deployment, session.manifest.display)
        several_endpoints = len({e for e, _ in pairs}) > 1

        def sources(tail: int | None) -> dict[str, Iterator[str]]:
            streams: dict[str, Iterator[str]] = {}
            for endpoint, deployment in pairs:
                deployment = live_deployments(session, endpoint).get(deployment, deployment)  # after a rollout
                found = session.backend.logs(endpoint, deployment, instance=args.instance, tail=tail,
                                             follow=args.follow)
                for label, lines in found.items():
                    streams[f"{endpoint}/{label}" if several_endpoints else label] = lines
            return streams

        streams = sources(args.tail)
        show = _without_controls if sys.stdout.isatty() else str
        try:
            if args.follow:
                # instances started later (a scale-out, a restart into a new generation, a successor) are
                # found by looking again, at the backend's own pace, and read from their first line
                _follow(streams, show, lambda: sources(None), max(session.backend.poll_interval, 1.0))
            else:
                _print_all(streams, show)
        except BrokenPipeError:            # `rtsctl logs M | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


def _without_controls(line: str) -> str:
    """For a terminal: what a scoring script prints must not move the cursor, retitle the window or hide text
    in the user's terminal. Pipes get the lines as written."""
    return _CONTROL.sub("\ufffd", line)


def _print_all(streams: dict[str, Iterator[str]], show: Callable[[str], str]) -> None:
    out = sys.stdout
    for n, (label, lines) in enumerate(streams.items()):
        if len(streams) > 1:
            out.write(("\n" if n else "") + f"==> {label} <==\n")
        for line in lines:
            out.write(show(line) + "\n")
    out.flush()


def _follow(streams: dict[str, Iterator[str]], show: Callable[[str], str],
            discover: Callable[[], dict[str, Iterator[str]]] | None = None, every: float = 1.0) -> None:
    """Print each source's lines as they come, one reader thread per source, flushing every line (a pipe
    would otherwise hold them back); every `every` seconds `discover` may name new sources, which join.
    Lines carry a `[source]` prefix once there is more than one source."""
    out = sys.stdout
    lines: queue.Queue = queue.Queue(maxsize=10_000)
    started: set[str] = set()

    def read(label: str, source: Iterator[str]) -> None:
        try:
            for line in source:
                lines.put((label, line, None))
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            lines.put((label, None, exc))

    def start(found: dict[str, Iterator[str]]) -> None:
        for label, source in found.items():
            if label not in started:
                started.add(label)
                threading.Thread(target=read, args=(label, source), name=f"logs-{label}", daemon=True).start()

    start(streams)
    look_again = time.monotonic() + every
    while True:
        if discover is not None and time.monotonic() >= look_again:
            try:
                start(discover())
            except RtsctlError:
                pass  # nothing new to follow now (a deployment being replaced): the known sources go on
            look_again = time.monotonic() + every
        try:
            label, line, error = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if error is not None:
            raise error
        out.write((f"[{label}] " if len(started) > 1 else "") + show(line) + "\n")
        out.flush()
