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

from rtsctl import __version__
from rtsctl.commands.args import add_lock_timeout_arg, add_manifest_args, add_target_arg
from rtsctl.support.errors import RtsctlError

EPILOG = """exit codes: 0 ok | 1 error (also a usage error) | 2 plan --detailed-exitcode: changes present |
3 bench threshold crossed | 130 interrupted.
RTSCTL_HOME (default ~/.rtsctl) holds the local backend's state. Add --debug anywhere for tracebacks,
--no-color (or NO_COLOR=1) for output without colors or styles."""
#: flags every subcommand takes anywhere on the line (read in main, before argparse): shown in each one's help
GLOBAL_FLAGS = "global flags (anywhere on the line):\n  --debug     show the traceback of an error\n  " \
               "--no-color  no colors or styles (also NO_COLOR=1)"

OUTPUT_NAMES = ("scoring_uri", "primary_key", "secondary_key", "deployments", "traffic", "endpoint")


class LineFormatter(argparse.HelpFormatter):
    """argparse's formatter, but a description's or epilog's own line breaks are kept (each line still wrapped)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return "\n".join(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                         if line.strip() else "" for line in text.splitlines())


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 (Terraform's convention): exit 2 means "changes present" to a CI job
    running `plan --detailed-exitcode`, so a typo must never read as that."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}{self.did_you_mean(message)}\n")

    def did_you_mean(self, message: str) -> str:
        """argparse names a misspelt command or choice but offers nothing close (before Python 3.14): say it."""
        import difflib
        import re

        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if not found:
            return ""
        close = difflib.get_close_matches(found.group(1), re.findall(r"'?([\w-]+)'?", found.group(2)), n=1)
        return f"; did you mean {close[0]!r}?" if close else ""

    def add_subparsers(self, **kwargs):  # type: ignore[override]
        """Each subcommand's help ends with the global flags, which main() reads anywhere on the line."""
        action = super().add_subparsers(**kwargs)
        add = action.add_parser

        def add_parser(name, **kw):
            epilog = kw.get("epilog")
            kw["epilog"] = f"{epilog}\n\n{GLOBAL_FLAGS}" if epilog else GLOBAL_FLAGS
            kw.setdefault("formatter_class", LineFormatter)
            return add(name, **kw)

        action.add_parser = add_parser  # type: ignore[method-assign]
        return action


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rtsctl", description=__doc__.split("\n")[0], epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"rtsctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check a manifest (schema, references, files) without touching anything")
    add_manifest_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what apply would change, and why")
    add_manifest_args(p)
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 0 no changes, 1 error, 2 changes present")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--destroy", action="store_true", help="plan a destroy instead")
    p.add_argument("--out", metavar="FILE", help="save the plan; `rtsctl apply FILE` carries out exactly it")
    p.add_argument("--refresh-only", action="store_true",
                   help="show only drift: what the world changed since the last apply, not what the manifest did")
    add_target_arg(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="make the world match the manifest (or a saved plan), smoke-test it, "
                                     "print URI and key")
    p.add_argument("manifest", metavar="MANIFEST|PLANFILE",
                   help="a manifest, or a plan saved by `plan --out` (applied exactly, without a prompt)")
    add_manifest_args(p, positional=False)
    p.add_argument("-y", "--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text",
                   help="json: progress goes to stderr; stdout gets step timings, critical path and outputs")
    p.add_argument("--allow-outage", action="store_true",
                   help="accept replacing an endpoint (its scoring URI changes: an outage for its clients)")
    p.add_argument("--plan", metavar="FILE", help="with a MANIFEST: apply exactly this saved plan, refused if the "
                                                   "world or the manifest changed since")
    add_lock_timeout_arg(p)
    add_target_arg(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("destroy", help="delete what rtsctl created for this manifest, dependents first")
    add_manifest_args(p)
    p.add_argument("-y", "--auto-approve", action="store_true", help="do not ask for confirmation")
    add_lock_timeout_arg(p)
    add_target_arg(p, "only this resource and what depends on it (repeatable)")
    p.set_defaults(func=cmd_destroy)

    p = sub.add_parser("force-unlock", help="release the lock a killed or stuck run left (the id its holder "
                                            "is named with)")
    add_manifest_args(p)
    p.add_argument("lock_id", metavar="LOCK_ID")
    p.add_argument("-y", "--auto-approve", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_force_unlock)

    p = sub.add_parser("output", help="print scoring URI, keys (masked) and deployments; or one value for scripts")
    add_manifest_args(p)
    p.add_argument("name", nargs="?", choices=OUTPUT_NAMES, metavar="NAME",
                   help=f"print only this output ({', '.join(OUTPUT_NAMES)})")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text",
                   help="json: a list of endpoint objects (one object with --endpoint)")
    p.add_argument("--raw", action="store_true",
                   help="with NAME: the bare value for scripts (a key named this way is printed in full)")
    p.add_argument("--endpoint", help="one endpoint (default: all)")
    p.add_argument("--show-secrets", action="store_true", help="print keys in full")
    p.set_defaults(func=cmd_output)

    from rtsctl.commands import register

    register(sub, add_manifest_args)
    from rtsctl.bench.cli import add_parser as add_bench_parser
    from rtsctl.commands import logs

    add_bench_parser(sub)
    logs.add_parser(sub, add_manifest_args)
    return parser


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, **plain_style())


def plain_style() -> dict[str, Any]:
    """NO_COLOR (no-color.org; also --no-color): no escape codes at all. rich alone would drop colors but keep
    bold and dim."""
    return {"color_system": None} if os.environ.get("NO_COLOR") else {}


def cmd_validate(args: argparse.Namespace) -> int:
    """Every problem at once, one line each; needs no credentials, and unset variables are only noted."""
    from rtsctl.manifest import check_manifest
    from rtsctl.manifest.variables import environment

    manifest, errors, unset = check_manifest(args.manifest, environment(getattr(args, "variables", None)))
    for note in unset:
        print(f"note: {note} (validate goes on without it)", file=sys.stderr)
    for note in manifest.notes if manifest is not None else ():
        print(f"note: {note}", file=sys.stderr)
    if not errors and manifest is not None and unset:  # values built from unset variables cannot be judged
        names = sorted({e.reason.split()[1] for e in unset if e.reason.startswith("variable ")})
        print(f"{args.manifest}: valid, except what reads unset variables ({', '.join(names)})")
        return 0
    if not errors and manifest is not None:
        from rtsctl.desired.build import build_resources
        from rtsctl.desired.graph import Graph

        resources = build_resources(manifest)
        Graph(resources)
        print(f"{args.manifest}: valid ({len(resources)} resources)")
        return 0
    for error in errors:
        print(f"Error: {error}", file=sys.stderr)
    return 1


def cmd_plan(args: argparse.Namespace) -> int:
    from rtsctl.engine import make_plan, open_session
    from rtsctl.plan.render import plan_json, render_text

    with open_session(args.manifest, args.variables) as session:
        if args.refresh_only and args.destroy:
            raise RtsctlError("--refresh-only shows drift to heal; --destroy plans deletes: give one")
        if args.out and (args.target or args.refresh_only):
            raise RtsctlError("--out saves a whole plan: drop --target/--refresh-only to save one")
        plan = make_plan(session, destroy=args.destroy, targets=args.target, refresh_only=args.refresh_only)
    as_json = args.output == "json"
    if as_json:
        print(json.dumps(plan_json(plan), indent=2, default=str))
    elif args.refresh_only and not plan.has_changes:
        _console().print("[green]No drift.[/green] The world is as the last apply left it (manifest edits are not "
                         "shown with --refresh-only).")
    else:
        _console().print(render_text(plan))
    if args.out:
        from rtsctl.plan.saved import save_plan

        save_plan(plan, session.manifest, session.graph.nodes.values(), args.out, args.variables)
        _console(stderr=as_json).print(f"\nSaved the plan to: {args.out}\n\nTo perform exactly these actions, run:\n"
                                       f"  rtsctl apply {args.out}", markup=False)
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
    claimed = f", {counts['claim']} claimed" if counts["claim"] else ""
    return (f"[green bold]Apply complete![/green bold] Resources: {added} added, {changed} changed, "
            f"{destroyed} destroyed{claimed}. [dim](wall {timing['wall']:.1f}s; critical path {timing['critical_path']:.1f}s; "
            f"steps in sequence {timing['sequential']:.1f}s)[/dim]"
            + (f"\n[dim]Critical path: {' → '.join(timing['critical_path_steps'])}[/dim]"
               if timing.get("critical_path_steps") else ""))


def _saved_plan_target(args: argparse.Namespace):
    """`apply PLANFILE` / `apply MANIFEST --plan FILE` -> (manifest path, variables, saved plan or None)."""
    from rtsctl.plan.saved import check_inputs, is_saved_plan, read_saved_plan

    if args.plan is None and not is_saved_plan(args.manifest):
        return args.manifest, args.variables, None
    if args.plan is not None and is_saved_plan(args.manifest):
        raise RtsctlError(f"{args.manifest} is itself a saved plan: run rtsctl apply {args.manifest}")
    saved = read_saved_plan(args.plan or args.manifest)
    if args.var or args.var_file:
        raise RtsctlError("a saved plan carries the variables it was planned with: drop --var/--var-file, or plan "
                          "again with them")
    check_inputs(saved)  # before anything is observed or locked: a moved file is named at once
    return (saved.manifest if args.plan is None else args.manifest), saved.variables, saved


def _refuse_not_owned(plan) -> None:
    """Nothing changes while the manifest declares what it does not own: taking it is `rtsctl import`'s job."""
    if plan.not_owned:
        lines = "\n".join(f"  {a.address}: {a.reasons[0]}" for a in plan.not_owned)
        raise RtsctlError(f"{plan.manifest} declares {len(plan.not_owned)} resource(s) it does not own; nothing "
                          f"was changed:\n{lines}")


def cmd_apply(args: argparse.Namespace) -> int:
    from rtsctl.engine import endpoint_outputs, make_plan, open_session, smoke_test
    from rtsctl.apply.watched import run_apply
    from rtsctl.plan.render import plan_json, render_text

    manifest_path, variables, saved = _saved_plan_target(args)
    as_json = args.output == "json"
    out = _console(stderr=as_json)
    timing: dict[str, Any] = {}
    with open_session(manifest_path, variables) as session, \
            session.backend.lock(f"apply {args.manifest}", args.lock_timeout):
        plan = make_plan(session, targets=args.target)
        if saved is not None:
            from rtsctl.plan.saved import check_saved_plan

            check_saved_plan(plan, session.manifest, session.graph.nodes.values(), saved)
        if plan.has_changes:
            out.print(render_text(plan))
            _refuse_not_owned(plan)
            from rtsctl.rollout.successor import refuse_outage

            refuse_outage(plan, args.allow_outage)
            if saved is None:  # a saved plan was approved when it was reviewed
                _confirm(args, "Do you want to perform these actions?")
            result = run_apply(session, plan, out)
            timing = _timing(plan, result)
            from rtsctl.apply.history import record_apply

            record_apply(session.manifest, timing)
            out.print("\n" + _summary(plan, timing))
        else:
            out.print("[green]No changes.[/green] The world matches the manifest.")
        if args.target:  # endpoints left out of a targeted apply may not exist
            from rtsctl.plan.trust import targeted_endpoints

            outputs = [o for e in targeted_endpoints(plan, session.endpoints()) for o in endpoint_outputs(session, e)]
        else:
            outputs = endpoint_outputs(session)
        tested = smoke_test(session, outputs, lambda line: out.print(line))
    if tested:
        out.print(f"Smoke test passed: {', '.join(tested)}")
    if as_json:
        shown = [_masked(o, False) for o in outputs]
        print(json.dumps({"changed": plan.has_changes, "summary": plan_json(plan)["summary"], "timing": timing,
                          "smoke_tested": tested, "outputs": shown}, indent=2))
    else:
        _print_outputs(outputs, show_secrets=False, manifest=session.manifest.display)
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    from rtsctl.engine import make_plan, open_session
    from rtsctl.plan.render import render_text
    from rtsctl.apply.watched import run_apply

    out = _console()
    with open_session(args.manifest, args.variables) as session, \
            session.backend.lock(f"destroy {args.manifest}", args.lock_timeout):
        plan = make_plan(session, destroy=True, targets=args.target)
        out.print(render_text(plan))
        if not plan.has_changes:
            return 0
        _confirm(args, "Do you really want to destroy these resources?")
        result = run_apply(session, plan, out)
    out.print(f"\n[green bold]Destroy complete![/green bold] Resources: {plan.counts()['delete']} destroyed "
              f"[dim](wall {result.wall:.1f}s)[/dim].")
    from rich.markup import escape

    for action in plan.actions:  # what was kept, and why: shared parents still holding others' resources
        if action.kind.value == "no-op" and action.reasons:
            why = "; ".join(action.reasons).removeprefix("kept: ").removesuffix(": kept")
            out.print(f"Kept {action.address}: {escape(why)}")
    return 0


def cmd_force_unlock(args: argparse.Namespace) -> int:
    """Terraform's force-unlock: only the lock with this id is released, never whichever lock is there now."""
    from rtsctl.engine import open_session

    with open_session(args.manifest, args.variables) as session:
        _confirm(args, f"Release lock {args.lock_id}? Only do this when its holder is no longer running.")
        who = session.backend.force_unlock(args.lock_id)
    _console().print(f"Released lock {args.lock_id} (held by {who}).", markup=False)
    return 0


def cmd_output(args: argparse.Namespace) -> int:
    """-o json is always a list of endpoint objects, or one object when --endpoint names one; NAME --raw prints
    one bare value (deployments one per line). A key named with --raw is printed in full, as Terraform prints a
    sensitive output named with -raw: naming it is asking for it."""
    from rtsctl.engine import endpoint_outputs, open_session

    if args.raw and not args.name:
        raise RtsctlError("--raw prints one value: name it, e.g. rtsctl output MANIFEST scoring_uri --raw")
    if args.raw and args.output == "json":
        raise RtsctlError("--raw and -o json exclude each other: give one")
    with open_session(args.manifest, args.variables) as session:
        outputs = endpoint_outputs(session, args.endpoint)
    if args.name:
        if len(outputs) > 1:
            raise RtsctlError(f"{args.manifest} declares {len(outputs)} endpoints "
                              f"({', '.join(o['endpoint'] for o in outputs)}): pick one with --endpoint")
        value = _masked(outputs[0], args.show_secrets or args.raw)[args.name]
        if args.output == "json":
            print(json.dumps(value))
        elif isinstance(value, list):
            print("\n".join(value))
        elif isinstance(value, dict):  # traffic: one `name percent` line per deployment
            print("\n".join(f"{k} {v}" for k, v in value.items()))
        else:
            print("" if value is None else value)
        return 0
    if args.output == "json":
        shown = [_masked(o, args.show_secrets) for o in outputs]
        print(json.dumps(shown[0] if args.endpoint else shown, indent=2))
        return 0
    _print_outputs(outputs, args.show_secrets, args.manifest)
    return 0


def _masked(output: dict[str, Any], show: bool) -> dict[str, Any]:
    """An endpoint's outputs as users see them: keys masked unless asked, internal fields dropped."""
    from rtsctl.plan.render import mask

    shown = {k: v for k, v in output.items() if k not in ("verify", "state")}
    return {**shown, "primary_key": mask(output["primary_key"], show),
            "secondary_key": mask(output["secondary_key"], show)}


def _no_uri_yet(output: dict[str, Any]) -> str:
    return f"(none yet: the endpoint is {output.get('state') or 'not ready'}; try again once it is provisioned)"


def _print_outputs(outputs: list[dict[str, Any]], show_secrets: bool, manifest: str) -> None:
    out = _console()
    out.print("\n[bold]Outputs:[/bold]")
    for raw in outputs:
        o = _masked(raw, show_secrets)
        out.print(f"  [bold]{o['endpoint']}[/bold]")
        out.print(f"    scoring_uri   = {o['scoring_uri'] or _no_uri_yet(raw)}")
        out.print(f"    primary_key   = {o['primary_key']}")
        out.print(f"    secondary_key = {o['secondary_key']}")
        traffic = o.get("traffic") or {}
        out.print(f"    deployments   = {', '.join(f'{d} ({traffic.get(d, 0)}%)' for d in o['deployments'])}")
    if not show_secrets:
        out.print(f"  [dim]keys are masked: rtsctl output {manifest} --show-secrets[/dim]")


def _unrecognized(parser: argparse.ArgumentParser, command: str | None, extra: list[str]) -> None:
    """A usage error for arguments nobody takes, from the subcommand's own parser (its usage, not the top level's),
    with the closest flag it does take."""
    import difflib

    sub = parser
    for action in parser._actions:  # the subparsers action: its choices are the subcommands' parsers
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            sub = action.choices[command]
    flags = [f for action in sub._actions for f in action.option_strings] + ["--debug", "--no-color"]
    hints = [(arg, close[0]) for arg in extra if arg.startswith("-")
             for close in [difflib.get_close_matches(arg.split("=", 1)[0], flags, n=1, cutoff=0.75)] if close]
    shown = hints[0][1] if len(hints) == 1 else ", ".join(f"{close} (for {arg})" for arg, close in hints)
    sub.error(f"unrecognized arguments: {' '.join(extra)}" + (f"; did you mean {shown}?" if hints else ""))


def _quiet_broken_pipe() -> int:
    """The reader went away (`rtsctl graph M | head -1`): what it wanted it got; say nothing, exit 0, and let no
    later flush of stdout fail again at exit (Python's documented recipe, docs.python.org/3/library/signal.html)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)   # whatever rtsctl or a process it starts (front, uv, instances) creates is private by default
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RTSCTL_DEBUG") == "1"
    if "--no-color" in argv:
        os.environ["NO_COLOR"] = "1"  # rich and every console below read it (no-color.org)
    argv = [a for a in argv if a not in ("--debug", "--no-color")]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None) == "output" and args.name is None and extra[0] in OUTPUT_NAMES:
        args.name = extra.pop(0)  # `output M --var K=V NAME`: argparse fills an optional positional only once
    if extra:
        _unrecognized(parser, getattr(args, "command", None), extra)
    try:
        if hasattr(args, "var"):
            from rtsctl.manifest.variables import collect

            args.variables = collect(args.var_file, args.var)
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        from rtsctl.apply.interrupt import exit_now_if_busy

        print("rtsctl: interrupted", file=sys.stderr)
        exit_now_if_busy()
        return 130
    except RtsctlError as exc:
        if debug:
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk or a vanished folder outside a resource's action: still named
        if debug:
            raise
        from rtsctl.support.home import storage_error

        print(f"Error: {storage_error(exc, 'file')}", file=sys.stderr)
        return 1
    except Exception as exc:  # an unexpected failure: one line unless --debug
        if debug:
            raise
        print(f"Error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())


def leave(code: int | str | None) -> None:
    """Exit with `code` (as `sys.exit` reads it). Once the Azure SDKs are loaded, Python's own teardown of their
    ~3000 modules takes longer than a no-op plan's work (0.4 s quiet, 2 s on a loaded machine): after the atexit
    handlers have run and the streams are flushed, the process ends at once -- unless a non-daemon thread still
    works (normal exit then, which joins it)."""
    import threading

    alone = all(t.daemon or t is threading.main_thread() for t in threading.enumerate())
    if "azure.ai.ml" not in sys.modules or not alone:
        sys.exit(code)
    import atexit

    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
