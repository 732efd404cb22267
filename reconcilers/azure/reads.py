"""The online-endpoint reads a plan shares (and an apply step keeps): one GET per endpoint, one list of its
deployments, one key read.

azure-ai-ml's public `online_endpoints.get` lists the endpoint's deployments as well (to put the ones without
traffic into the traffic map at 0), `get_keys` GETs the endpoint again to learn its auth mode, and
`online_deployments.get` hides the service's exact request durations. On Azure every call is a round trip
(50-300 ms), so these reads go one level down, to the SDK's own REST operations -- the same generated client,
api-version, credential and retry policy the public methods use (azure-ai-ml 1.35,
operations/_online_endpoint_operations.py `get` / `_get_online_credentials`, _online_deployment_operations.py
`list`) -- and do what the public methods do with the answers, once. The Azure tests run these through the real
SDK against the emulator, so an SDK upgrade that moves them fails there, not in a user's plan.
"""

from __future__ import annotations

import time
from typing import Any

from rtsctl.support.errors import ResourceError

from .common import BUSY_STATES, AzureReconciler, state_name
from .errors import is_not_found


def list_deployments(rec: AzureReconciler, address: str, endpoint: str) -> list[tuple[Any, dict[str, Any]]]:
    """Every deployment of the endpoint as (SDK entity, the service's JSON), from one list call per plan.
    [] when the endpoint (or workspace) does not exist yet. The JSON carries the exact request durations
    (the entity truncates them to whole seconds: 500 ms reads back as 0)."""
    from azure.ai.ml.entities import OnlineDeployment

    ops = rec.ml.online_deployments

    def pair(obj: Any) -> tuple[Any, dict[str, Any]]:
        entity = OnlineDeployment._from_rest_object(obj)
        entity.endpoint_name = endpoint  # as `online_deployments.get` sets it
        return entity, obj.as_dict() if hasattr(obj, "as_dict") else {}

    def fetch() -> list[tuple[Any, dict[str, Any]]]:
        with rec.errors(address):
            try:
                return list(ops._online_deployment.list(
                    endpoint_name=endpoint, resource_group_name=ops._resource_group_name,
                    workspace_name=ops._workspace_name, cls=lambda objs: [pair(o) for o in objs],
                    **ops._init_kwargs))
            except Exception as exc:  # noqa: BLE001 - endpoint (or workspace) not there yet
                if not is_not_found(exc):
                    raise
                return []

    return rec.clients.reads.read(_deployments_key(endpoint), fetch)


def _deployments_key(endpoint: str) -> tuple[str, str]:
    return ("deployments", endpoint.casefold())


def read_endpoint(rec: AzureReconciler, address: str, endpoint: str,
                  deployments: list[tuple[Any, dict[str, Any]]] | None = None) -> Any:
    """The online endpoint entity as `online_endpoints.get` returns it (every deployment in its traffic map, 0
    where it takes none), built from one endpoint GET and the plan's one deployment list (or `deployments`, the
    list a caller already holds). None if absent."""
    from azure.ai.ml.entities import OnlineEndpoint

    ops = rec.ml.online_endpoints

    def fetch() -> Any:
        # the deployment list does not depend on the endpoint GET: both travel at once
        rec.clients.reads.ahead(_deployments_key(endpoint), lambda: list_deployments(rec, address, endpoint))
        rest = rec.get_or_none(address, ops._online_operation.get, resource_group_name=ops._resource_group_name,
                               workspace_name=ops._workspace_name, endpoint_name=endpoint, **ops._init_kwargs)
        if rest is None:
            return None
        ep = OnlineEndpoint._from_rest_object(rest)
        for d, _ in deployments if deployments is not None else list_deployments(rec, address, endpoint):
            if not ep.traffic.get(d.name) and not ep.mirror_traffic.get(d.name):
                ep.traffic[d.name] = 0
        return ep

    return rec.clients.reads.read(("endpoint", endpoint.casefold()), fetch)


def read_keys(rec: AzureReconciler, address: str, endpoint: str, auth_mode: str | None) -> Any:
    """The endpoint's keys (or token), asked by its auth mode (no second endpoint GET)."""
    ops = rec.ml.online_endpoints

    def fetch() -> Any:
        with rec.errors(address):
            return ops._get_online_credentials(name=endpoint, auth_mode=auth_mode)

    return rec.clients.reads.read(("keys", endpoint.casefold(), str(auth_mode or "").lower()), fetch)


def keys_ahead(rec: AzureReconciler, address: str, endpoint: str, declared_mode: str) -> None:
    """Within a plan, ask for the keys by the DECLARED auth mode beside the endpoint GET (one round trip instead of
    two); an endpoint whose mode drifted is asked again by its real mode (read_keys keys the cache by mode)."""
    rec.clients.reads.ahead(("keys", endpoint.casefold(), declared_mode.lower()),
                            lambda: read_keys(rec, address, endpoint, declared_mode))


def endpoint_idle(rec: AzureReconciler, address: str, endpoint: str, timeout: float = 3600.0) -> Any:
    """The endpoint (as `read_endpoint`) once it is in a terminal state: a write while it is Creating/Updating/
    Deleting (left so by another client, or an interrupted run) would be refused. Polls without Retry-After (Azure
    sends none), says that it waits, and gives up after `timeout`. None if the endpoint does not exist.

    The first read is the step's one read of the endpoint (ReadCache: later reads in the step reuse it); each
    poll after it waits for the state to change, so it drops what the step read and reads again."""
    deadline = time.monotonic() + timeout
    said = False
    while True:
        ep = read_endpoint(rec, address, endpoint)
        state = (state_name(getattr(ep, "provisioning_state", None)) or "") if ep is not None else ""
        if state.lower() not in BUSY_STATES:
            return ep
        if time.monotonic() >= deadline:
            raise ResourceError(address, f"endpoint {endpoint} stayed {state} for {timeout:.0f}s; nothing was "
                                "sent", "EndpointBusy")
        if not said:
            rec.notify(f"{address}: waiting for endpoint {endpoint} to leave the {state} state")
            said = True
        rec.clients.reads.forget()
        time.sleep(rec.clients.poll_interval)
