"""Argument pieces every verb shares (MANIFEST and its --var flags, --target, --lock-timeout, bounded numbers).

Here, not in rtsctl.cli, so that a verb's module can use them without importing the CLI that registers it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_manifest_args(p: argparse.ArgumentParser, positional: bool = True) -> None:
    """MANIFEST plus --var/--var-file, on every verb that loads a manifest."""
    if positional:
        p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--var", action="append", metavar="KEY=VALUE",
                   help="value for ${KEY} in the manifest (repeatable; beats --var-file and the environment)")
    p.add_argument("--var-file", action="append", metavar="FILE",
                   help="KEY: value (YAML) or KEY=VALUE lines for ${KEY} (repeatable; a later file wins; "
                        "beats the environment)")


def add_target_arg(p: argparse.ArgumentParser,
                   text: str = "only this resource and what it needs (repeatable), e.g. deployment.rts-score/blue") -> None:
    p.add_argument("--target", action="append", default=[], metavar="ADDRESS", help=text)


def bounded(cast: Callable[[str], Any], low: float, high: float, what: str) -> Callable[[str], Any]:
    """An argparse type: `cast(text)` within [low, high], else a usage error saying which."""
    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {_num(low)} and {_num(high)}, got {_num(value)}")
        return value

    return parse


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def add_lock_timeout_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-timeout", type=bounded(float, 0, 3600, "a number of seconds"), default=0.0,
                   metavar="SECONDS",
                   help="wait up to this long for another run's lock (default 0: refuse at once, naming the holder)")
