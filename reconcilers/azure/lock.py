"""The lock that spans machines: a lease on a blob in a storage account the manifest names.

Terraform's azurerm backend takes an infinite lease, so a runner killed mid-apply blocks everyone until someone
breaks it by hand. Here the lease is finite (`LEASE_SECONDS`, within Azure's 15-60 s) and a thread renews it while
the run lasts: a holder killed with SIGKILL stops blocking others at most `LEASE_SECONDS` later. The lease id is
the lock id `rtsctl force-unlock` takes; releasing by id is atomic (Blob service: Lease Blob, action=release
fails with 409 LeaseIdMismatchWithLeaseOperation for another id), so force-unlock never frees someone else's lock.

Who holds it, since when and for what is kept in the blob's metadata, written under the lease.
Sources: learn.microsoft.com/rest/api/storageservices/lease-blob (durations 15-60 s or infinite, error codes
LeaseAlreadyPresent, LeaseIdMismatchWithLeaseOperation, LeaseNotPresentWithLeaseOperation), .../set-blob-metadata
(a leased blob's metadata needs the lease id); the account endpoint https://{account}.blob.{storage suffix} is
the one azure-storage-blob and azure-ai-ml build from the cloud's storage suffix.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rtsctl.support.errors import RtsctlError
from rtsctl.apply.lock import Holder, wait_for

LEASE_SECONDS = 15
RENEW_SECONDS = 5  # two renewals may fail (a network blip) before the lease lapses


class BlobLock:
    """A lock on one workspace, held as a lease on `rtsctl/<subscription>/<resource group>/<workspace>.lock`."""

    def __init__(self, clients: Any, account: str, container: str):
        self.account, self.container = account, container
        self.url = f"https://{account}.blob.{clients.cloud.storage_suffix}"
        self.name = f"rtsctl/{clients.subscription_id}/{clients.resource_group.lower()}/{clients.workspace.lower()}.lock"
        self.what = f"workspace {clients.workspace} (lock {self.url}/{container}/{self.name})"
        self._clients = clients
        self._blob = None

    @property
    def blob(self):
        if self._blob is None:
            from azure.storage.blob import BlobClient, LinearRetry

            # a few quick retries: a lock that cannot be reached must fail in seconds, not after
            # azure-storage-blob's default 15 s-based exponential backoff
            self._blob = BlobClient(self.url, self.container, self.name, credential=self._clients.credential,
                                    retry_policy=LinearRetry(backoff=1, random_jitter_range=1, retry_total=3),
                                    connection_timeout=10, read_timeout=20)
        return self._blob

    @contextmanager
    def _calls(self, doing: str) -> Iterator[None]:
        """Storage errors as one line naming the account, container and reason."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

        try:
            yield
        except ClientAuthenticationError as exc:
            raise RtsctlError(f"{doing}: the credential may not use blob container {self.container} in storage "
                              f"account {self.account} ({_reason(exc)}); it needs the Storage Blob Data "
                              "Contributor role there") from None
        except ServiceRequestError as exc:
            raise RtsctlError(f"{doing}: cannot reach storage account {self.account} at {self.url} "
                              f"({_reason(exc)})") from None
        except HttpResponseError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise RtsctlError(f"{doing}: provider.lock.container {self.container} does not exist in storage "
                                  f"account {self.account}; create it first (az storage container create --name "
                                  f"{self.container} --account-name {self.account} --auth-mode login)") from None
            raise RtsctlError(f"{doing}: storage account {self.account} answered {exc.status_code} "
                              f"{getattr(exc, 'error_code', '') or ''}: {_reason(exc)}") from None

    def _try_acquire(self, lock_id: str):
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
        from azure.storage.blob import BlobLeaseClient

        lease = BlobLeaseClient(self.blob, lease_id=lock_id)
        with self._calls(f"cannot take the lock on {self.what}"):
            for _ in range(2):
                try:
                    lease.acquire(lease_duration=LEASE_SECONDS)
                    return lease
                except ResourceExistsError as exc:
                    if getattr(exc, "error_code", None) == "LeaseAlreadyPresent":
                        return None
                    raise
                except ResourceNotFoundError as exc:
                    if getattr(exc, "error_code", None) != "BlobNotFound":
                        raise
                try:  # the first lock in this container: the blob is made once, empty
                    self.blob.upload_blob(b"", overwrite=False)
                except ResourceExistsError:
                    pass  # made meanwhile by another machine (or leased already: the next acquire says so)
        return None

    def holder(self) -> str | None:
        """Who holds the lease now, or None when nobody does."""
        from azure.core.exceptions import ResourceNotFoundError

        with self._calls(f"cannot read who holds {self.what}"):
            try:
                props = self.blob.get_blob_properties()
            except ResourceNotFoundError as exc:
                if getattr(exc, "error_code", None) != "BlobNotFound":
                    raise
                return None
        if props.lease.state != "leased":
            return None
        return Holder.from_metadata(dict(props.metadata or {})).describe()

    @contextmanager
    def held(self, operation: str, timeout: float = 0.0) -> Iterator[None]:
        """Take the lease (waiting up to `timeout` s), keep it renewed while the body runs, release it after."""
        lock_id = str(uuid.uuid4())
        lease = wait_for(lambda: self._try_acquire(lock_id), self.what,
                         lambda: self.holder() or "a run that has just finished", timeout,
                         hint=f". A holder that was killed stops blocking within {LEASE_SECONDS}s (its lease "
                              "lapses); one that is stuck: rtsctl force-unlock MANIFEST LOCK_ID",
                         interval=1.0)
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(lease, stop), name="rtsctl-lock-renew", daemon=True)
        try:
            with self._calls(f"cannot record the holder of {self.what}"):
                self.blob.set_blob_metadata(Holder.me(operation, lock_id).metadata(), lease=lease)
            renewer.start()
            yield
        finally:
            stop.set()
            if renewer.is_alive():
                renewer.join(timeout=30)
            try:
                lease.release()
            except Exception as exc:  # noqa: BLE001 - the lease lapses by itself within LEASE_SECONDS
                print(f"warning: could not release the lock on {self.what} ({_reason(exc)}); it lapses within "
                      f"{LEASE_SECONDS}s", file=sys.stderr)

    def _renew(self, lease, stop: threading.Event) -> None:
        warned = False
        while not stop.wait(RENEW_SECONDS):
            try:
                lease.renew()
                warned = False
            except Exception as exc:  # noqa: BLE001 - warned; the run goes on (stopping halfway is worse)
                if not warned:
                    print(f"warning: could not renew the lock on {self.what} ({_reason(exc)}); another machine "
                          f"may take it if this lasts {LEASE_SECONDS}s", file=sys.stderr)
                warned = True

    def force_unlock(self, lock_id: str) -> str:
        """Release the lease `lock_id`, only if that is the lease the blob holds now."""
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob import BlobLeaseClient

        try:
            lock_id = str(uuid.UUID(lock_id))
        except ValueError:
            raise RtsctlError(f"{lock_id!r} is not a lock id (a GUID; rtsctl prints it with the holder)") from None
        who = self.holder()
        if who is None:
            raise RtsctlError(f"{self.what} is not locked; nothing to unlock")
        with self._calls(f"cannot unlock {self.what}"):
            try:
                BlobLeaseClient(self.blob, lease_id=lock_id).release()
            except HttpResponseError as exc:
                code = getattr(exc, "error_code", None)
                if code == "LeaseIdMismatchWithLeaseOperation":
                    raise RtsctlError(f"{self.what} is not held under lock id {lock_id} (it is held by "
                                      f"{who}); nothing was unlocked") from None
                if code in ("LeaseNotPresentWithLeaseOperation", "BlobNotFound"):
                    raise RtsctlError(f"{self.what} is not locked; nothing to unlock") from None
                raise
        return who


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.strip().splitlines()[0][:300]
