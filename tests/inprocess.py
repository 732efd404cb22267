"""Fixtures of the tests that call `rtsctl.cli.main` in-process (test_corpus, test_manifest_properties)."""

from __future__ import annotations

import functools

import pytest


@pytest.fixture(scope="module")
def one_parser():
    """`rtsctl.cli.main` builds its argparse parser once per module instead of once per call.

    These modules call `main` in-process hundreds of times to check what it says about manifests; building the
    parser (~40 subcommand and option definitions, each with a gettext lookup) was ~a third of each call's CPU.
    The parser is only read by `parse_known_args` (main never changes it), so one instance parses as a fresh one
    would; building it is still covered by every subprocess CLI test."""
    import rtsctl.cli

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rtsctl.cli, "build_parser", functools.cache(rtsctl.cli.build_parser))
        yield
