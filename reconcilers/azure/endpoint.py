"""endpoint.<name>: an online endpoint, managed (no compute) or Kubernetes (on an attached compute).

The kind and the compute cannot change once created (replacement); auth mode, description and tags
update in place. Every endpoint PUT carries the endpoint's current traffic map -- the service resets
traffic to 0 for any deployment a PUT leaves out -- and traffic itself is the `traffic` reconciler's job.
Observe returns the scoring URI and the keys (`get_keys`; for aml_token the token is the primary key).
"""

from __future__ import annotations

from typing import Any

from rtsctl.plan.diff import project
from rtsctl.support.errors import ResourceError
from rtsctl.plan.normalize import casefold, identifier
from rtsctl.desired.resources import Observed, Resource

from .common import (APPLIED_TAG, AzureReconciler, applied_tag, drop_none, failed_problem, is_managed, managed_tags,
                     owner_of, state_name)
from .reads import endpoint_idle, keys_ahead, read_endpoint, read_keys


def last_segment(ref: str | None) -> str | None:
    """'azureml:k8s', '/subscriptions/.../computes/k8s' or 'k8s' -> 'k8s'."""
    if not ref:
        return None
    return str(ref).rstrip("/").rsplit("/", 1)[-1].split(":")[-1]


def auth_outputs(keys: Any) -> dict[str, Any]:
    if hasattr(keys, "primary_key"):
        return {"primary_key": keys.primary_key, "secondary_key": keys.secondary_key}
    token = getattr(keys, "access_token", None)
    return {"primary_key": token, "secondary_key": None}


class EndpointReconciler(AzureReconciler):
    kind = "endpoint"
    immutable = frozenset({"compute"})
    # the SDK answers "aml_token" for the service's "AMLToken"; compute ids are case-insensitive
    normalize = {"auth_mode": identifier, "compute": casefold}
    sensitive = frozenset({"primary_key", "secondary_key"})

    def observe(self, res: Resource) -> Observed | None:
        keys_ahead(self, res.address, res.name, res.spec.get("auth_mode") or "key")
        ep = read_endpoint(self, res.address, res.name)
        if ep is None:
            return None
        spec: dict[str, Any] = {
            "auth_mode": (ep.auth_mode or "").lower() or None,
            "compute": last_segment(getattr(ep, "compute", None)),
            "description": ep.description,
        }
        if "tags" in res.spec:
            spec["tags"] = project(ep.tags or {}, res.spec.get("tags") or {})
        problems: list[str] = []
        state = (ep.provisioning_state or "").lower()
        if state == "failed":
            problems.append(failed_problem("endpoint", ep.provisioning_state))
        outputs: dict[str, Any] = {
            "scoring_uri": ep.scoring_uri,  # null while the endpoint is Creating (recordings 01, 03)
            "provisioning_state": state_name(ep.provisioning_state),
            "auth_mode": spec["auth_mode"],
            "traffic": dict(ep.traffic or {}),
        }
        if state not in ("failed", "deleting"):
            with self.errors(res.address):
                outputs.update(auth_outputs(read_keys(self, res.address, res.name, ep.auth_mode)))
        return Observed(
            address=res.address,
            # compute stays even when None (managed): a managed <-> kubernetes change is a replacement
            spec={**drop_none(spec), "compute": spec["compute"]},
            owned=is_managed(ep.tags),
            owner=owner_of(ep.tags),
            problems=problems,
            outputs=outputs,
            handle=ep,
            applied=(ep.tags or {}).get(APPLIED_TAG),
        )

    def _entity(self, res: Resource, tags: dict[str, Any], traffic: dict[str, int] | None = None):
        from azure.ai.ml.entities import KubernetesOnlineEndpoint, ManagedOnlineEndpoint

        common = {
            "name": res.name,
            "auth_mode": res.spec.get("auth_mode") or "key",
            "description": res.spec.get("description"),
            "tags": tags,
            "traffic": traffic or {},
        }
        if res.spec.get("compute"):
            return KubernetesOnlineEndpoint(compute=res.spec["compute"], **common)
        return ManagedOnlineEndpoint(**common)

    def create(self, res: Resource) -> None:
        # traffic cannot be set at creation: it follows once deployments are healthy
        entity = self._entity(res, managed_tags(self.settings.tags, res.spec.get("tags"), applied_tag(res)))
        with self.clients.gate(res.name).exclusive(res.address, self.notify), self.errors(res.address):
            poller = self.ml.online_endpoints.begin_create_or_update(entity)
            self.wait(res.address, poller)

    def update(self, res: Resource, observed: Observed) -> None:
        with self.clients.gate(res.name).exclusive(res.address, self.notify):
            current = endpoint_idle(self, res.address, res.name)
            if current is None:
                raise ResourceError(res.address, f"endpoint {res.name} vanished during the apply", "ResourceNotFound")
            tags = dict(current.tags or {})
            tags.update({str(k): str(v) for k, v in (res.spec.get("tags") or {}).items()})
            tags.update(applied_tag(res))
            tags.update(self.settings.tags)  # only what this manifest owns is updated: it stays (or becomes) its
            # the full current traffic map travels with the PUT: leaving it out would reset it
            entity = self._entity(res, tags, traffic=dict(current.traffic or {}))
            if getattr(current, "mirror_traffic", None):
                entity.mirror_traffic = dict(current.mirror_traffic)
            with self.errors(res.address):
                poller = self.ml.online_endpoints.begin_create_or_update(entity)
            self.wait(res.address, poller)

    def regenerate_key(self, res: Resource, which: str) -> None:
        """Replace one key (`primary` or `secondary`) through the service; the other keeps working."""
        with self.clients.gate(res.name).exclusive(res.address, self.notify):
            with self.errors(res.address):
                poller = self.ml.online_endpoints.begin_regenerate_keys(res.name, key_type=which)
            self.wait(res.address, poller)

    def delete(self, observed: Observed) -> None:
        if not observed.owned:
            return
        name = observed.address.split(".", 1)[1]
        with self.clients.gate(name).exclusive(observed.address, self.notify):
            self.wait_delete(observed.address, self.ml.online_endpoints.begin_delete, name=name)
