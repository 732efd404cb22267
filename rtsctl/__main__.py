import sys

from rtsctl.cli import main


def leave(code: int) -> None:
    """Exit with `code`. Once the Azure SDKs are loaded, Python's own teardown of their ~3000 modules takes longer
    than a no-op plan's work (0.4 s quiet, 2 s on a loaded machine): after the atexit handlers have run and the
    streams are flushed, the process ends at once -- unless a non-daemon thread still works (normal exit then)."""
    import threading

    alone = all(t.daemon or t is threading.main_thread() for t in threading.enumerate())
    if "azure.ai.ml" in sys.modules and alone:
        import atexit
        import os

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code if isinstance(code, int) else 1)
    sys.exit(code)


leave(main())
