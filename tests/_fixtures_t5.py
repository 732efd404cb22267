"""Fixtures shared by the in-process manifest tests (test_corpus, test_manifest_properties) and the CLI-usage tests."""

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


@pytest.fixture
def exec_cli(monkeypatch):
    """The `cli` fixture's calls as real `python -m rtsctl` processes (RTSCTL_TEST_EXEC=1, tests/prefork.py).

    For calls that end inside argparse (usage errors, --help) or with a --debug traceback: they leave by SystemExit or
    an exception, past `rtsctl.__main__.leave`, so a pre-forked child (which holds the Azure SDKs' ~3000 modules) tears
    all those down on exit: ~1.1 s of CPU per call against ~0.12 s for a fresh interpreter."""
    monkeypatch.setenv("RTSCTL_TEST_EXEC", "1")
