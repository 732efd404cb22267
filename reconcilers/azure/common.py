"""What every Azure reconciler shares: the clients, ownership tags, and error translation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from reconcilers.base import BackendSettings, Reconciler

from rtsctl.observe.applied import compact
from rtsctl.observe.ownership import OWNER_TAG
from rtsctl.desired.resources import Resource

from .clients import Clients
from .errors import azure_errors, is_not_found

#: Tag on everything rtsctl creates; destroy only deletes what carries it.
MANAGED_BY = "managed-by"
MANAGED_BY_VALUE = "rtsctl"
#: Prefix of rtsctl's bookkeeping tags (content digests, experiment name); hidden from diffs.
TAG_PREFIX = "rtsctl."
DIGEST_TAG = "rtsctl.digest"
#: What rtsctl last applied to the resource (rtsctl.observe.applied.compact): shared by every machine that plans it.
#: Azure tag values hold up to 256 characters (azure-resource-manager/management/tag-resources.md).
APPLIED_TAG = "rtsctl.applied"
TRAFFIC_APPLIED_TAG = "rtsctl.applied-traffic"   # on the endpoint: its traffic is a resource of its own here


#: provisioning states in which the service refuses another write to an endpoint
BUSY_STATES = frozenset({"creating", "updating", "deleting"})


def managed_tags(*extra: dict[str, Any] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for more in extra:
        tags.update({str(k): str(v) for k, v in (more or {}).items()})
    tags[MANAGED_BY] = MANAGED_BY_VALUE
    return tags


def applied_tag(res: Resource, tag: str = APPLIED_TAG) -> dict[str, str]:
    return {tag: compact(res.spec)}


def is_managed(tags: dict[str, Any] | None) -> bool:
    return (tags or {}).get(MANAGED_BY) == MANAGED_BY_VALUE


def owner_of(tags: dict[str, Any] | None) -> str | None:
    """The manifest identity a resource's tags name as its owner (rtsctl.observe.ownership), None when none."""
    return (tags or {}).get(OWNER_TAG) or None


#: What Application Insights creates by itself, untagged, in its resource group (MicrosoftDocs azure-monitor
#: app/proactive-failure-diagnostics.md): the "Failure Anomalies - <component>" smart-detector alert rule and,
#: once per group, the "Application Insights Smart Detection" action group. API versions: azure-rest-api-specs
#: alertsmanagement SmartDetectorAlertRulesApi 2021-04-01, monitor actionGroups 2023-01-01.
SMART_RULE_TYPE = "microsoft.alertsmanagement/smartdetectoralertrules"
SMART_RULE_PREFIX = "Failure Anomalies - "
SMART_RULE_API = "2021-04-01"
SMART_GROUP_TYPE = "microsoft.insights/actiongroups"
SMART_GROUP_NAME = "Application Insights Smart Detection"
SMART_GROUP_API = "2023-01-01"


def is_smart_detection(resource_type: str | None, name: str | None) -> bool:
    """True for the alert rule / action group Application Insights made on its own (never rtsctl's, never the
    user's): they go with the component that made them, and never stop a resource group's deletion."""
    kind, name = (resource_type or "").lower(), name or ""
    return (kind == SMART_RULE_TYPE and name.startswith(SMART_RULE_PREFIX)) or (
        kind == SMART_GROUP_TYPE and name == SMART_GROUP_NAME)


def state_name(state: Any) -> str | None:
    """A provisioning state as the service spells it ("Creating"), also when the SDK hands an enum member."""
    value = getattr(state, "value", state)
    return None if value is None else str(value)


def failed_problem(what: str, state: str | None, error: Any = None) -> str:
    """A resource left `Failed` as drift (never as converged), carrying the service's own code and message."""
    code = getattr(error, "code", None) or (error.get("code") if isinstance(error, dict) else None)
    message = getattr(error, "message", None) or (error.get("message") if isinstance(error, dict) else None)
    detail = f": ({code}) {message}" if code and message else (f": {message or code}" if message or code else "")
    state = state_name(state)
    return f"{what} provisioning state is {state}{detail}; apply repairs it"


def folded(traffic: dict[str, Any] | None) -> dict[str, int]:
    """A traffic map keyed by lower-cased deployment names. azure-ai-ml lower-cases the keys it writes
    (operations/_online_endpoint_operations.py `_strip_zeroes_from_traffic`) while its `get` adds every deployment
    missing from the map under its own spelling at 0: `{"blue": 100, "Blue": 0}` is one deployment at 100."""
    out: dict[str, int] = {}
    for name, share in (traffic or {}).items():
        out[name.casefold()] = out.get(name.casefold(), 0) + int(share or 0)
    return out


def mirror_without_live(mirror: dict[str, Any] | None, traffic: dict[str, Any]) -> dict[str, int]:
    """The mirror map minus every deployment that (now) takes live traffic: "A deployment can be configured to
    receive only live traffic or mirrored traffic, not both" (azure-ai-docs how-to-safely-rollout-online-endpoints.md)."""
    live = {k for k, v in folded(traffic).items() if v > 0}
    return {k: int(v) for k, v in (mirror or {}).items() if k.casefold() not in live and int(v or 0) > 0}


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

    @contextmanager
    def errors(self, address: str) -> Iterator[None]:
        """Azure's exceptions as one line naming `address` (azure_errors). A call that fails also drops what the
        apply step read: the failure may come from what changed since, and a retry of the step reads again."""
        try:
            with azure_errors(address):
                yield
        except BaseException:
            self.clients.reads.forget()
            raise

    def get_or_none(self, address: str, getter, *args, **kwargs):
        """Call an SDK getter; None on 404 (also when a parent such as the workspace does not exist)."""
        with self.errors(address):
            try:
                return getter(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - only 404s are swallowed
                if is_not_found(exc):
                    return None
                raise

    def read(self, address: str, key: tuple, getter, *args, **kwargs):
        """`get_or_none`, read once per plan however many reconcilers ask, and once per apply step until it writes
        (Clients.reads); fresh elsewhere."""
        return self.clients.reads.read(key, lambda: self.get_or_none(address, getter, *args, **kwargs))

    def patch_workspace(self, address: str, tags: dict[str, str], description: str | None = None) -> None:
        """PATCH the workspace's tags (and description), and wait. azure-ai-ml's `workspaces.begin_update` GETs the
        workspace first (operations/_workspace_operations_base.py, 1.35) to fill in a dozen fields this PATCH
        leaves alone; the caller has just read it, so it goes one level down, to the same REST operation."""
        from azure.ai.ml._restclient.arm_ml_service.models import WorkspaceUpdateParameters

        ops = self.ml.workspaces
        body = WorkspaceUpdateParameters(tags=tags, **({"description": description} if description is not None else {}))
        with self.errors(address):
            poller = ops._operation.begin_update(ops._resource_group_name, self.settings.workspace, body)
        self.wait(address, poller)

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
