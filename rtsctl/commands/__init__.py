"""CLI verbs that live in their own module: each exposes `add_parser(subparsers)`, registered in rtsctl/cli.py."""
