"""The verbs users reach for in `az ml` (invoke, keys, graph) and shell completion.

Only argparse wiring lives here, so `rtsctl --help` stays fast; each verb's body is its own module, imported when
the verb runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _lazy(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from importlib import import_module

        return import_module(f"rtsctl.commands.{module}").run(args)

    return run


def register(sub, add_manifest_args: Callable[..., None]) -> None:
    p = sub.add_parser("invoke", help="send one request to an endpoint; print the status and the response",
                       description="POST the request file to the endpoint's scoring URI with its key (as "
                                   "`az ml online-endpoint invoke`). Exit 0 on 2xx, 1 otherwise.")
    add_manifest_args(p)
    p.add_argument("--request", "--request-file", dest="request", metavar="FILE", required=True,
                   help="the request body (sent as is)")
    p.add_argument("--endpoint", metavar="NAME", help="endpoint of the manifest (default: its only one)")
    p.add_argument("--deployment", metavar="NAME",
                   help="this deployment only (azureml-model-deployment header), bypassing traffic weights")
    p.add_argument("--content-type", default="application/json", metavar="TYPE")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS")
    p.set_defaults(func=_lazy("invoke"))

    p = sub.add_parser("keys", help="regenerate an endpoint's primary or secondary key")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    r = keys.add_parser("regenerate", help="replace one key; the other keeps working throughout",
                        description="Rotate without downtime: move clients to the other key, regenerate this one, "
                                    "move them back, regenerate the other.")
    add_manifest_args(r)
    r.add_argument("--key", choices=("primary", "secondary"), required=True, help="which key to replace")
    r.add_argument("--endpoint", metavar="NAME", help="endpoint of the manifest (default: its only one)")
    r.add_argument("--show-secrets", action="store_true", help="print the new key in full")
    r.set_defaults(func=_lazy("keys"))

    p = sub.add_parser("graph", help="the resource graph (Mermaid or DOT) with the last apply's timings "
                                     "and its critical path")
    add_manifest_args(p)
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.set_defaults(func=_lazy("graph"))

    p = sub.add_parser("import", help="take ownership of existing resources the manifest declares (made with az ml, "
                                      "the studio, or another manifest)",
                       description="Shows what `apply` would change once the manifest owns them, then marks each as "
                                   "owned by the manifest's identity (name:). Nothing else is changed.")
    add_manifest_args(p)
    p.add_argument("addresses", nargs="+", metavar="ADDRESS", help="e.g. endpoint.rts-score deployment.rts-score/blue "
                   "(an endpoint brings its traffic along)")
    p.add_argument("--from", dest="take_from", metavar="NAME",
                   help="take them from the manifest named NAME (by default only what nobody owns is taken)")
    p.add_argument("-y", "--auto-approve", action="store_true", help="do not ask for confirmation")
    from rtsctl.commands.args import add_lock_timeout_arg

    add_lock_timeout_arg(p)
    p.set_defaults(func=_lazy("importing"))

    p = sub.add_parser("export", help="write a manifest (with its code, model and conda files) for what exists in "
                                      "the manifest's workspace",
                       description="Writes what MANIFEST's identity owns plus what nobody owns (or only the named "
                                   "endpoints and what they use), never another manifest's, under MANIFEST's name: "
                                   "`rtsctl plan FILE` then says No changes, or names what to `rtsctl import`.")
    add_manifest_args(p)
    p.add_argument("--out", required=True, metavar="FILE", help="the manifest to write (refused if it exists); "
                   "its files go in code/, models/ and environments/ beside it")
    p.add_argument("--endpoint", action="append", default=[], metavar="NAME", help="only this endpoint (repeatable)")
    p.set_defaults(func=_lazy("export"))

    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                       description="bash: source <(rtsctl completion bash)   zsh: source <(rtsctl completion zsh)   "
                                   "fish: rtsctl completion fish > ~/.config/fish/completions/rtsctl.fish")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(func=_lazy("completion"))
