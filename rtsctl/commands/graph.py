"""`rtsctl graph MANIFEST [--format mermaid|dot]`: the resource graph, the last apply's timings, its critical path.

Arrows point the way apply walks: from what is needed to what needs it. A step of the last apply shows how long it
took; the critical path (the chain of steps whose sum is the best wall time any parallel apply can reach) is drawn
in red. Only the manifest is read; nothing is observed, so this works offline, without credentials and without the
provider's variables.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rtsctl.desired.graph import Graph


def _label(address: str, steps: dict[str, float]) -> str:
    return f"{address}\n{steps[address]:.1f}s" if address in steps else address


def mermaid(graph: Graph, steps: dict[str, float], critical: list[str], note: str) -> str:
    ids = {a: f"n{i}" for i, a in enumerate(graph.order)}
    lines = ["flowchart LR", f"  %% {note}"]
    for address in graph.order:
        label = _label(address, steps).replace('"', "#quot;").replace("\n", "<br/>")
        lines.append(f'  {ids[address]}["{label}"]')
    edges = [(dep, a) for a in graph.order for dep in graph.deps[a]]
    on_path = set(zip(critical, critical[1:]))
    for dep, address in edges:
        lines.append(f"  {ids[dep]} --> {ids[address]}")
    if critical:
        lines.append("  classDef critical stroke:#d00,stroke-width:3px")
        lines.append(f"  class {','.join(ids[a] for a in critical)} critical")
        hot = [str(i) for i, edge in enumerate(edges) if edge in on_path]
        if hot:
            lines.append(f"  linkStyle {','.join(hot)} stroke:#d00,stroke-width:3px")
    return "\n".join(lines)


def dot(graph: Graph, steps: dict[str, float], critical: list[str], note: str) -> str:
    on_path = set(zip(critical, critical[1:]))
    lines = ["digraph rtsctl {", f"  // {note}", "  rankdir=LR;", "  node [shape=box];"]
    for address in graph.order:
        extra = ", color=red, penwidth=2" if address in critical else ""
        lines.append(f"  {json.dumps(address)} [label={json.dumps(_label(address, steps))}{extra}];")
    for address in graph.order:
        for dep in graph.deps[address]:
            extra = " [color=red, penwidth=2]" if (dep, address) in on_path else ""
            lines.append(f"  {json.dumps(dep)} -> {json.dumps(address)}{extra};")
    lines.append("}")
    return "\n".join(lines)


def describe(last: dict[str, Any] | None, critical_s: float, critical: list[str]) -> str:
    if last is None:
        return "no apply recorded for this manifest yet: timings and critical path appear after rtsctl apply"
    return (f"last apply {last.get('finished', '?')}: wall {float(last.get('wall', 0)):.1f}s, critical path "
            f"{critical_s:.1f}s ({' -> '.join(critical)})")


def run(args: argparse.Namespace) -> int:
    import sys

    from rtsctl.desired.build import build_resources
    from rtsctl.apply.history import last_apply
    from rtsctl.manifest import check_manifest
    from rtsctl.manifest.variables import environment

    # as validate: the provider's variables (a subscription id) are not needed to draw the graph
    manifest, errors, unset = check_manifest(args.manifest, environment(args.variables))
    if errors or manifest is None:
        raise errors[0]
    for note in unset:
        print(f"note: {note} (the graph is drawn without it)", file=sys.stderr)
    graph = Graph(build_resources(manifest))
    last = last_apply(manifest)
    steps = {a: t for a, t in (last or {}).get("steps", {}).items() if a in graph.nodes}
    # the apply's own critical path (from its exact timings) while it still fits the graph; else recomputed
    critical = [str(a) for a in (last or {}).get("critical_path_steps") or []]
    if critical and all(a in graph.nodes for a in critical):
        critical_s = float(last.get("critical_path", 0.0))
    else:
        critical_s, critical = graph.critical_path(steps) if steps else (0.0, [])
    while critical and critical[0] not in steps:  # untouched ancestors add nothing to the chain's time
        critical = critical[1:]
    render = mermaid if args.format == "mermaid" else dot
    print(render(graph, steps, critical, describe(last, critical_s, critical)))
    return 0
