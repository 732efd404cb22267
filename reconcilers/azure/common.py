"""What every Azure reconciler shares: the clients, ownership tags, and error translation."""

from __future__ import annotations

from typing import Any, ClassVar

from reconcilers.base import BackendSettings, Reconciler

from .clients import Clients
from .errors import azure_errors, is_not_found

#: Tag on everything rtsctl creates; destroy only deletes what carries it.
MANAGED_BY = "managed-by"
MANAGED_BY_VALUE = "rtsctl"
#: Prefix of rtsctl's bookkeeping tags (content digests, experiment name); hidden from diffs.
TAG_PREFIX = "rtsctl."
DIGEST_TAG = "rtsctl.digest"


def managed_tags(*extra: dict[str, Any] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for more in extra:
        tags.update({str(k): str(v) for k, v in (more or {}).items()})
    tags[MANAGED_BY] = MANAGED_BY_VALUE
    return tags


def is_managed(tags: dict[str, Any] | None) -> bool:
    return (tags or {}).get(MANAGED_BY) == MANAGED_BY_VALUE


def user_tags(tags: dict[str, Any] | None) -> dict[str, Any]:
    """The tags a user declared: without rtsctl's own markers."""
    return {k: v for k, v in (tags or {}).items() if k != MANAGED_BY and not k.startswith(TAG_PREFIX)}


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class AzureReconciler(Reconciler):
    """Base of the Azure reconcilers: holds the shared clients and settings."""

    kind: ClassVar[str]

    def __init__(self, clients: Clients, settings: BackendSettings):
        self.clients = clients
        self.settings = settings

    @property
    def ml(self):
        return self.clients.ml

    def errors(self, address: str):
        return azure_errors(address)

    def get_or_none(self, address: str, getter, *args, **kwargs):
        """Call an SDK getter; None on 404 (also when a parent such as the workspace does not exist)."""
        with self.errors(address):
            try:
                return getter(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - only 404s are swallowed
                if is_not_found(exc):
                    return None
                raise

    def wait(self, address: str, poller) -> Any:
        """Wait for a long-running operation; a Failed ending raises one ResourceError line."""
        with self.errors(address):
            return poller.result()

    def wait_delete(self, address: str, begin, *args, **kwargs) -> None:
        """Start a delete and wait for it; a resource that is already gone is not an error."""
        with self.errors(address):
            try:
                poller = begin(*args, **kwargs)
                if poller is not None and hasattr(poller, "result"):
                    poller.result()
            except Exception as exc:  # noqa: BLE001 - only 404s are swallowed
                if not is_not_found(exc):
                    raise
