"""Traffic as planned steps: from the observed map to the declared one, through the rollout's percentages.

Every map this yields is FULL (each deployment of either side named, 0 where it gets nothing) and sums to the
same total as the target, so a write never leaves a deployment out (an Azure endpoint PUT without a deployment's
entry resets it) and never sends a split the service refuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Weights = dict[str, int]
#: a gate naming any of these runs a bench; a gate with `watch` and none of these only holds and watches
#: (`max_error_rate` judges whichever runs)
BENCH_KEYS = frozenset({"duration", "rate", "concurrency", "timeout", "max_p99_ms", "request", "engine", "engines",
                        "regions"})


def benches(gate: Mapping) -> bool:
    return bool(BENCH_KEYS & gate.keys()) or "watch" not in gate


def full(old: Mapping[str, int], new: Mapping[str, int]) -> tuple[Weights, Weights]:
    """Both maps over the same names (old's order first), 0 where a side names nobody."""
    names = [*old, *(n for n in new if n not in old)]
    return {n: int(old.get(n, 0)) for n in names}, {n: int(new.get(n, 0)) for n in names}


def rising(old: Mapping[str, int], new: Mapping[str, int]) -> list[str]:
    """The new version(s): the deployments the traffic moves toward."""
    before, after = full(old, new)
    return [n for n in after if after[n] > before[n]]


def between(old: Mapping[str, int], new: Mapping[str, int], percent: int) -> Weights:
    """The map `percent` % of the way from old to new, in integers with the target's total (largest remainder,
    ties to the rising side so a 10 % step gives the new version its 10)."""
    before, after = full(old, new)
    if percent >= 100:
        return after
    exact = {n: before[n] + (after[n] - before[n]) * percent / 100 for n in after}
    out = {n: int(v) for n, v in exact.items()}  # all exact values are >= 0: int() floors them
    short = sum(after.values()) - sum(out.values())
    order = sorted(after, key=lambda n: (-(exact[n] - out[n]), -(after[n] - before[n])))
    for name in order[:max(short, 0)]:
        out[name] += 1
    return out


def traffic_steps(old: Mapping[str, int], new: Mapping[str, int],
                  steps: Sequence[int] = (100,)) -> list[tuple[Weights, Weights]]:
    """(from map, to map) pairs to write one after the other. Nothing when the maps already agree; one step
    when there is no live traffic to protect (a first apply: old is empty or all 0)."""
    start, target = full(old, new)
    if start == target:
        return []
    if not any(start.values()):
        return [(start, target)]
    points = sorted({p for p in steps if 0 < p < 100}) + [100]
    out: list[tuple[Weights, Weights]] = []
    current = start
    for percent in points:
        step = between(start, target, percent)
        if step != current:
            out.append((current, step))
            current = step
    return out


def render_shift(old: Mapping[str, int], new: Mapping[str, int]) -> str:
    """`blue 100 → 90, green 0 → 10` (unchanged names shown too, so the line is the whole map)."""
    before, after = full(old, new)
    return ", ".join(f"{n} {before[n]} → {after[n]}" if before[n] != after[n] else f"{n} {after[n]}" for n in after)


def plan_lines(old: Mapping[str, int], new: Mapping[str, int], rollout: Mapping | None) -> list[str]:
    """What the plan says about a traffic change: the whole shift, then each step with its gate."""
    lines = [f"traffic: {render_shift(old, new)}"]
    pairs = traffic_steps(old, new, (rollout or {}).get("steps") or (100,))
    if not pairs:  # the same split, only spelled differently (a 0 entry the service leaves out)
        return lines
    if not rollout or not any(full(old, new)[0].values()):
        if rollout:
            lines.append("rollout: no live traffic yet, so one step without gates")
        return lines
    gate = dict(rollout.get("gate") or {})
    load = f"{gate['rate']:g} req/s" if gate.get("rate") else f"{gate.get('concurrency', 1)} connection(s)"
    limits = [f"{k} {gate[k]:g}" for k in ("max_error_rate", "max_p99_ms") if k in gate]
    names = ", ".join(rising(old, new))
    parts = []
    if benches(gate):
        parts.append(f"{float(gate.get('duration', 2)):g} s at {load} on {names} alone"
                     + (f", {', '.join(limits)}" if limits else ""))
    if gate.get("watch"):
        live = [f"max_error_rate {gate['max_error_rate']:g}"] if "max_error_rate" in gate else []
        live += [f"min_requests {gate['min_requests']}"] if gate.get("min_requests") else []
        parts.append(f"hold {float(gate['watch']):g} s watching {names}'s health and live answers"
                     + (f" ({', '.join(live)})" if live else ""))
    gate_text = "gate: " + ", then ".join(parts)
    if rollout.get("mirror"):
        lines.append(f"mirror {rollout['mirror']} % to {', '.join(rising(old, new))}, then {gate_text}")
    for i, (before, after) in enumerate(pairs, 1):
        lines.append(f"step {i}/{len(pairs)}: {render_shift(before, after)}, then {gate_text}")
    lines.append(f"on a failed gate: back to {render_shift(full(old, new)[0], full(old, new)[0])}, "
                 f"{', '.join(rising(old, new))} {'deleted' if rollout.get('on_failure') == 'delete' else 'kept at 0 %'}")
    return lines


def _traffic_change(action) -> tuple[Weights, Weights, Mapping | None] | None:
    """(observed map, declared map, rollout) of a planned traffic update, else None."""
    res = action.resource
    if res is None or res.kind != "traffic" or action.kind.value != "update":
        return None
    old = (action.observed.spec.get("weights") or {}) if action.observed else {}
    return old, res.spec["weights"], res.inputs.get("rollout")


def action_lines(action) -> list[str] | None:
    """The plan's lines for a traffic update (rtsctl.plan.render), or None for any other action. A successor taking
    over its predecessor (rtsctl.rollout.successor) under a `rollout:` shows its steps too."""
    change = _traffic_change(action)
    if change:
        return plan_lines(*change)
    succ = getattr(action, "successor", None)
    rollout = succ.endpoint.inputs.get("rollout") if succ is not None else None
    if rollout and succ.old_weight:
        return plan_lines({succ.old: succ.old_weight}, {succ.new: succ.old_weight}, rollout)[1:]
    return None


def json_fields(action) -> dict:
    """`plan -o json`: a traffic update's steps, each a full map."""
    change = _traffic_change(action)
    if not change:
        return {}
    old, new, rollout = change
    steps = traffic_steps(old, new, (rollout or {}).get("steps") or (100,))
    if rollout is None or not any(full(old, new)[0].values()):
        steps = steps[-1:]
    return {"traffic_steps": [{"from": before, "to": after} for before, after in steps]}
