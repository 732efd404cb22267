"""The emulator's ARM calls grouped by client operation: rtsctl sends one x-ms-correlation-request-id per apply step
(reconcilers/azure/clients.py `StepPolicy`), and the emulator keeps it with each call (`emu.correlated`).

Used by the round-trip test (tests/test_azure_e2e.py) and benchmarks/azure_roundtrips.py to check that each apply
step reads each resource once.
"""

from __future__ import annotations

import collections
from urllib.parse import parse_qsl, urlencode

Call = tuple[str, str]  # (method, path?query)

WRITES = ("PUT", "PATCH", "DELETE")


def resource_url(path_qs: str) -> str:
    """A URL as the rule counts it: path and query without api-version (one resource read under two api-versions
    is still read twice), the path lower-cased (ARM ids are case-insensitive)."""
    path, _, query = path_qs.partition("?")
    rest = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() != "api-version"]
    return path.lower() + (f"?{urlencode(rest)}" if rest else "")


def steps(correlated: list[tuple[str, str, str, int]]) -> dict[str, list[Call]]:
    """Calls by step, in the order the steps began, each named "N. <type>/<name>" after what it wrote last (its
    last PUT/PATCH/DELETE), else after what it read first."""
    calls: dict[str, list[Call]] = collections.defaultdict(list)
    for correlation, method, path, _ in correlated:
        calls[correlation].append((method, path))
    named: dict[str, list[Call]] = {}
    for i, group in enumerate(calls.values()):
        writes = [p for m, p in group if m in WRITES]
        where = (writes or [p for _, p in group])[-1].split("?")[0]
        named[f"{i + 1}. {'/'.join(where.split('/')[-2:])}"] = group
    return named


def repeated_reads(group: list[Call]) -> dict[str, int]:
    """The URLs a step GETs more than once between two of its own writes (a write makes the next read a new one)."""
    repeated: dict[str, int] = {}
    seen: collections.Counter = collections.Counter()
    for method, path in group:
        if method in WRITES:
            seen.clear()
        elif method == "GET":
            url = resource_url(path)
            seen[url] += 1
            if seen[url] > 1:
                repeated[url] = max(repeated.get(url, 0), seen[url])
    return repeated


def step_lines(correlated: list[tuple[str, str, str, int]]) -> list[str]:
    """One line per step: its calls, its GETs, and what it read more than once between its writes."""
    out = []
    for name, group in steps(correlated).items():
        gets = sum(1 for m, _ in group if m == "GET")
        twice = ", ".join(f"{_short(url)} x{n}" for url, n in repeated_reads(group).items())
        out.append(f"{name}: {len(group)} calls, {gets} GETs" + (f"; read again: {twice}" if twice else ""))
    return out


def _short(url: str) -> str:
    """'/subscriptions/.../onlineendpoints/e?x=1' -> 'onlineendpoints/e?x=1'."""
    path, sep, query = url.partition("?")
    return "/".join(path.split("/")[-2:]) + sep + query
