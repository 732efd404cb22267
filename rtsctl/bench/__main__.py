"""`python -m rtsctl.bench ...`: the bench verb on its own (same flags and exit codes as `rtsctl bench`)."""

from __future__ import annotations

import argparse
import sys

from rtsctl.bench.cli import add_parser
from rtsctl.support.errors import RtsctlError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rtsctl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except RtsctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
