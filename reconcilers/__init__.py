"""Backends: one reconciler per resource kind per backend.

The engine reaches a backend only through `load_backend(provider)`, which maps the
manifest's `provider.kind` to a module here; it never asks which backend it drives.
A backend module exposes `create_backend(settings) -> Backend`.
"""

from __future__ import annotations

import importlib

from rtsctl.support.errors import RtsctlError

from .base import Backend, BackendSettings, Reconciler

BACKENDS = {
    "local": "reconcilers.local",
    "azure": "reconcilers.azure",
}


def load_backend(settings: BackendSettings) -> Backend:
    """Import the backend named by `settings.provider['kind']` lazily and build it."""
    kind = settings.provider.get("kind", "local")
    module_name = BACKENDS.get(kind)
    if module_name is None:
        raise RtsctlError(f"unknown provider kind {kind!r} (known: {', '.join(sorted(BACKENDS))})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # e.g. the azure extra is not installed
        raise RtsctlError(
            f"the {kind} backend cannot be loaded ({exc}); install it with: pip install 'rtsctl[{kind}]'"
        ) from exc
    return module.create_backend(settings)


__all__ = ["Backend", "BackendSettings", "Reconciler", "load_backend", "BACKENDS"]
