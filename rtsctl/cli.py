"""`rtsctl`: plan, apply, destroy and bench a real-time scoring service from one manifest.

Heavy modules (the engine, rich, the Azure SDKs) are imported inside commands, so
`rtsctl --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import __version__
from .errors import RtsctlError

EPILOG = """exit codes: 0 ok | 1 error | 2 plan --detailed-exitcode: changes present |
3 bench threshold crossed | 130 interrupted.
RTSCTL_HOME (default ~/.rtsctl) holds the local backend's state. Add --debug anywhere for tracebacks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtsctl", description=__doc__.split("\n")[0], epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"rtsctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check a manifest (schema, references, files) without touching anything")
    p.add_argument("manifest")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what apply would change, and why")
    p.add_argument("manifest")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 0 no changes, 1 error, 2 changes present")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--destroy", action="store_true", help="plan a destroy instead")
    p.add_argument("--out", metavar="FILE", help="save the plan; `apply MANIFEST --plan FILE` carries out exactly it")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="make the world match the manifest, smoke-test it, print URI and key")
    p.add_argument("manifest")
    p.add_argument("-y", "--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text",
                   help="json: progress goes to stderr; stdout gets step timings, critical path and outputs")
    p.add_argument("--plan", metavar="FILE", help="a plan saved by `plan --out`: applied without a prompt, "
                                                   "refused if the world or the manifest changed since")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("destroy", help="delete what rtsctl created for this manifest, dependents first")
    p.add_argument("manifest")
    p.add_argument("-y", "--auto-approve", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_destroy)

    p = sub.add_parser("output", help="print scoring URI, keys (masked) and deployments")
    p.add_argument("manifest")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--endpoint", help="one endpoint (default: all)")
    p.add_argument("--show-secrets", action="store_true", help="print keys in full")
    p.set_defaults(func=cmd_output)

    from .bench.cli import add_parser as add_bench_parser
    from .commands import logs

    add_bench_parser(sub)
    logs.add_parser(sub)
    return parser


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def cmd_validate(args: argparse.Namespace) -> int:
    from .desired import build_resources
    from .manifest import load_manifest

    manifest = load_manifest(args.manifest)
    resources = build_resources(manifest)
    from .graph import Graph

    Graph(resources)
    print(f"{args.manifest}: valid ({len(resources)} resources)")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .engine import make_plan, open_session
    from .render import plan_json, render_text

    with open_session(args.manifest) as session:
        plan = make_plan(session, destroy=args.destroy)
    if args.out:
        from .saved import save_plan

        save_plan(plan, session.manifest, args.out)
    if args.output == "json":
        print(json.dumps(plan_json(plan), indent=2, default=str))
    else:
        _console().print(render_text(plan))
    return 2 if args.detailed_exitcode and plan.has_changes else 0


def _confirm(args: argparse.Namespace, question: str) -> None:
    if args.auto_approve:
        return
    if not sys.stdin.isatty():
        raise RtsctlError("refusing to change anything without confirmation: stdin is not a terminal; "
                          "re-run with -y/--auto-approve")
    _console().print(f"\n[bold]{question}[/bold]\n  Only 'yes' will be accepted to approve.\n")
    try:
        answer = input("  Enter a value: ").strip()
    except EOFError:
        answer = ""
    if answer != "yes":
        raise RtsctlError("cancelled: nothing was changed")


def _timing(plan, result) -> dict[str, Any]:
    critical, path = plan.graph.critical_path(result.timings)
    return {"wall": round(result.wall, 3), "critical_path": round(critical, 3), "critical_path_steps": path,
            "sequential": round(sum(result.timings.values()), 3),
            "steps": {a: round(t, 3) for a, t in result.timings.items()}}


def _summary(plan, timing: dict[str, Any]) -> str:
    counts = plan.counts()
    added, changed, destroyed = counts["create"] + counts["replace"], counts["update"], counts["delete"] + counts["replace"]
    return (f"[green bold]Apply complete![/green bold] Resources: {added} added, {changed} changed, "
            f"{destroyed} destroyed. [dim](wall {timing['wall']:.1f}s; critical path {timing['critical_path']:.1f}s; "
            f"steps in sequence {timing['sequential']:.1f}s)[/dim]")


def cmd_apply(args: argparse.Namespace) -> int:
    from .engine import apply, endpoint_outputs, make_plan, open_session, smoke_test
    from .render import plan_json, render_text

    as_json = args.output == "json"
    out = _console(stderr=as_json)
    timing: dict[str, Any] = {}
    with open_session(args.manifest) as session, session.backend.lock():
        plan = make_plan(session)
        if args.plan:
            from .saved import check_saved_plan

            check_saved_plan(plan, session.manifest, args.plan)
        if plan.has_changes:
            out.print(render_text(plan))
            if not args.plan:  # a saved plan was approved when it was reviewed
                _confirm(args, "Do you want to perform these actions?")
            result = apply(session, plan, lambda line: out.print(line))
            timing = _timing(plan, result)
            out.print("\n" + _summary(plan, timing))
        else:
            out.print("[green]No changes.[/green] The world matches the manifest.")
        outputs = endpoint_outputs(session)
        tested = smoke_test(session, outputs)
    if tested:
        out.print(f"Smoke test passed: {', '.join(tested)}")
    if as_json:
        shown = [_masked(o, False) for o in outputs]
        print(json.dumps({"changed": plan.has_changes, "summary": plan_json(plan)["summary"], "timing": timing,
                          "smoke_tested": tested, "outputs": shown}, indent=2))
    else:
        _print_outputs(outputs, show_secrets=False, manifest=args.manifest)
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    from .engine import apply, make_plan, open_session
    from .render import render_text

    out = _console()
    with open_session(args.manifest) as session, session.backend.lock():
        plan = make_plan(session, destroy=True)
        out.print(render_text(plan))
        if not plan.has_changes:
            return 0
        _confirm(args, "Do you really want to destroy these resources?")
        result = apply(session, plan, lambda line: out.print(line))
    out.print(f"\n[green bold]Destroy complete![/green bold] Resources: {plan.counts()['delete']} destroyed "
              f"[dim](wall {result.wall:.1f}s)[/dim].")
    return 0


def cmd_output(args: argparse.Namespace) -> int:
    from .engine import endpoint_outputs, open_session

    with open_session(args.manifest) as session:
        outputs = endpoint_outputs(session, args.endpoint)
    if args.output == "json":
        shown = [_masked(o, args.show_secrets) for o in outputs]
        print(json.dumps(shown[0] if len(shown) == 1 else shown, indent=2))
        return 0
    _print_outputs(outputs, args.show_secrets, args.manifest)
    return 0


def _masked(output: dict[str, Any], show: bool) -> dict[str, Any]:
    """An endpoint's outputs as users see them: keys masked unless asked, internal fields dropped."""
    from .render import mask

    shown = {k: v for k, v in output.items() if k != "verify"}
    return {**shown, "primary_key": mask(output["primary_key"], show),
            "secondary_key": mask(output["secondary_key"], show)}


def _print_outputs(outputs: list[dict[str, Any]], show_secrets: bool, manifest: str) -> None:
    out = _console()
    out.print("\n[bold]Outputs:[/bold]")
    for o in outputs:
        o = _masked(o, show_secrets)
        out.print(f"  [bold]{o['endpoint']}[/bold]")
        out.print(f"    scoring_uri   = {o['scoring_uri']}")
        out.print(f"    primary_key   = {o['primary_key']}")
        out.print(f"    secondary_key = {o['secondary_key']}")
        out.print(f"    deployments   = {', '.join(o['deployments'])}")
    if not show_secrets:
        out.print(f"  [dim]keys are masked: rtsctl output {manifest} --show-secrets[/dim]")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RTSCTL_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("rtsctl: interrupted", file=sys.stderr)
        return 130
    except RtsctlError as exc:
        if debug:
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unexpected failure: one line unless --debug
        if debug:
            raise
        print(f"Error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
