"""deployment.<endpoint>/<name>: an online deployment (managed or Kubernetes, following its endpoint).

* Model and environment are referenced by the version whose `rtsctl.digest` tag matches the engine's
  digest (registered by the model/environment reconcilers first).
* The SDK uploads the code folder as an anonymous asset with a fresh name on every PUT, so what the
  deployment runs is recorded as digests in its own tags (`rtsctl.code-digest`, `rtsctl.model-digest`,
  `rtsctl.environment-digest`) -- that is what observe compares.
* `instance_count` travels as `sku.capacity`. `instance_type` cannot change (the service silently keeps
  the old one): it is declared immutable, so the plan shows a replacement.
* Deleting a deployment that still takes traffic: its share first moves to the endpoint's busiest other
  deployment (the service refuses to delete a deployment with traffic). When that delete is half of a
  replacement, the engine re-applies the endpoint's traffic once the new deployment is up.
* An update takes minutes on Azure (the service rolls the instances), so a change of code, model,
  environment or scoring script is rolled out like an instance_type change: as a successor beside the
  deployment (`successor_fields`, rtsctl.rollout.successor). The live deployment serving manifest name `blue` is the
  one tagged `rtsctl.name: blue` (untagged: the one named `blue`), chosen by `live_names`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rtsctl.desired.build import with_current_environment
from rtsctl.plan.diff import project
from rtsctl.support.errors import ResourceError
from rtsctl.plan.normalize import casefold
from rtsctl.desired.resources import Observed, Resource
from rtsctl.rollout.successor import LABEL, choose

from .common import (APPLIED_TAG, AzureReconciler, applied_tag, drop_none, failed_problem, folded, is_managed,
                     managed_tags, mirror_without_live, owner_of)
from .common import DIGEST_TAG as ASSET_DIGEST_TAG
from .errors import is_not_found
from .reads import endpoint_idle, list_deployments, read_endpoint

MODEL_TAG = "rtsctl.model-digest"
ENV_TAG = "rtsctl.environment-digest"
CODE_TAG = "rtsctl.code-digest"
SETTINGS = ("request_settings", "liveness_probe", "readiness_probe")


def asset_name(ref: Any) -> str | None:
    """'/subscriptions/.../models/NAME/versions/3', 'azureml:NAME:3' or an entity -> 'NAME'."""
    if ref is None:
        return None
    if not isinstance(ref, str):
        return getattr(ref, "name", None)
    if "/versions/" in ref:
        return ref.split("/versions/")[0].rstrip("/").rsplit("/", 1)[-1]
    parts = ref.split(":")
    return parts[1] if ref.startswith("azureml:") and len(parts) >= 2 else ref


def _ms(duration: Any) -> int | None:
    import isodate

    if duration in (None, ""):
        return None
    return int(round(isodate.parse_duration(duration).total_seconds() * 1000))


def raw_request_settings(properties: dict[str, Any]) -> dict[str, Any] | None:
    """request_settings from the service's JSON (the SDK entity truncates durations to whole seconds:
    500 ms reads back as 0)."""
    raw = properties.get("requestSettings")
    if not isinstance(raw, dict):
        return None
    return drop_none({
        "request_timeout_ms": _ms(raw.get("requestTimeout")),
        "max_concurrent_requests_per_instance": raw.get("maxConcurrentRequestsPerInstance"),
        "max_queue_wait_ms": _ms(raw.get("maxQueueWait")),
    })


def settings_dict(obj: Any, desired: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    return project({k: v for k, v in vars(obj).items() if not k.startswith("_")}, desired or {})


def move_share(traffic: dict[str, int], leaving: str) -> dict[str, int]:
    """Traffic without `leaving`: its share goes to the busiest remaining deployment (sum stays 0 or 100). Names
    compare case-insensitively (traffic.folded): the map comes back keyed in lower case."""
    traffic, leaving = folded(traffic), leaving.casefold()
    share = traffic.get(leaving, 0)
    rest = {k: v for k, v in traffic.items() if k != leaving}
    if share and any(v > 0 for v in rest.values()):
        busiest = max(sorted(rest), key=lambda k: rest[k])
        rest[busiest] += share
    rest[leaving] = 0
    return rest

def live_names(rec: AzureReconciler, address: str, endpoint: str) -> tuple[dict[str, str], list[Any]]:
    """(manifest name -> live name serving it, the endpoint's deployments): a deployment claims a manifest
    name in its `rtsctl.name` tag (untagged: its own name); the claimant with most traffic wins."""
    pairs = list_deployments(rec, address, endpoint)
    deployments = [d for d, _ in pairs]
    if not deployments:
        return {}, []
    ep = read_endpoint(rec, address, endpoint, pairs)
    traffic = {k.casefold(): int(v) for k, v in ((ep.traffic if ep else None) or {}).items()}
    return choose((d.name, (d.tags or {}).get(LABEL) or d.name, traffic.get(d.name.casefold(), 0))
                  for d in deployments), deployments


class DeploymentReconciler(AzureReconciler):
    kind = "deployment"
    immutable = frozenset({"instance_type", "endpoint"})
    # VM sizes are case-insensitive (the recordings answer Standard_DS2_V2 for Standard_DS2_v2 elsewhere);
    # model and environment are compared by name + content digest tag, never by the URI the service
    # rewrites (modelUri re-cased or moved under ServiceReplicated/, a conda file turned into a JSON string)
    normalize = {"instance_type": casefold, "endpoint": casefold}
    #: changed in place these would restart every instance for minutes: a successor takes over instead
    successor_fields = frozenset({"code", "model", "environment", "scoring_script"})

    @staticmethod
    def _names(address_or_name: str, spec: dict[str, Any]) -> tuple[str, str]:
        name = address_or_name.split(".", 1)[-1] if address_or_name.startswith("deployment.") else address_or_name
        endpoint, _, dep = name.partition("/")
        return spec.get("endpoint") or endpoint, dep or endpoint

    # ------------------------------------------------------------------ observe
    def _to_observed(self, address: str, d: Any, desired: dict[str, Any], raw: dict[str, Any] | None = None) -> Observed:
        tags = dict(d.tags or {})
        spec: dict[str, Any] = {
            "endpoint": d.endpoint_name,
            "model": drop_none({"name": asset_name(d.model), "digest": tags.get(MODEL_TAG)}),
            "code": drop_none({"digest": tags.get(CODE_TAG)}),
            "scoring_script": getattr(d.code_configuration, "scoring_script", None),
            "instance_type": d.instance_type,
            "instance_count": d.instance_count,
            "environment_variables": dict(d.environment_variables or {}),
            "app_insights_enabled": d.app_insights_enabled,
            "description": d.description,
            "engine": "azmlinfsrv",  # Azure's inference images serve every scoring script with azmlinfsrv
        }
        if d.environment is not None:
            spec["environment"] = drop_none({"name": asset_name(d.environment), "digest": tags.get(ENV_TAG)})
        for key in SETTINGS:
            value = settings_dict(getattr(d, key, None), desired.get(key))
            if value is not None:
                spec[key] = value
        exact = raw_request_settings((raw or {}).get("properties") or {})  # exact durations (list_deployments)
        if desired.get("request_settings") and exact is not None:
            spec["request_settings"] = project(exact, desired["request_settings"])
        if "environment_variables" not in desired and not spec["environment_variables"]:
            spec.pop("environment_variables")
        problems = []
        if (d.provisioning_state or "").lower() == "failed":
            problems.append(failed_problem("deployment", d.provisioning_state))
        return Observed(
            address=address,
            spec=drop_none(spec),
            owned=is_managed(tags),
            owner=owner_of(tags),
            problems=problems,
            outputs={"provisioning_state": d.provisioning_state, "name": d.name},
            handle=d,
            applied=tags.get(APPLIED_TAG),
        )

    def _live(self, res: Resource) -> tuple[str, str]:
        """(endpoint, live name): a successor's own name, else the deployment claiming the manifest name."""
        endpoint, name = self._names(res.name, res.spec)
        if res.inputs.get("live_name"):
            return endpoint, res.inputs["live_name"]
        return endpoint, live_names(self, res.address, endpoint)[0].get(name, name)

    def observe(self, res: Resource) -> Observed | None:
        endpoint, name = self._live(res)
        for d, raw in list_deployments(self, res.address, endpoint):  # the endpoint's one list, shared
            if d.name.casefold() == name.casefold():
                return with_current_environment(self._to_observed(res.address, d, res.spec, raw), res)
        return None

    def discover(self, desired: Sequence[Resource]) -> list[Observed]:
        """Deployments rtsctl created on the manifest's endpoints that the manifest no longer declares."""
        endpoints = {r.name for r in desired if r.kind == "endpoint"}
        endpoints |= {r.spec.get("endpoint") for r in desired if r.kind == "deployment" and r.spec.get("endpoint")}
        declared = {r.name for r in desired if r.kind == "deployment"}
        found: list[Observed] = []
        for endpoint in sorted(e for e in endpoints if e):
            chosen, _ = live_names(self, f"endpoint.{endpoint}", endpoint)
            serving = {live for claim, live in chosen.items() if f"{endpoint}/{claim}" in declared}
            for d, raw in list_deployments(self, f"endpoint.{endpoint}", endpoint):
                if d.name not in serving and is_managed(d.tags):  # undeclared, or left by an interrupted rollout
                    found.append(self._to_observed(f"deployment.{endpoint}/{d.name}", d, {}, raw))
        return found

    # ------------------------------------------------------------------ create / update
    def _version_of(self, res: Resource, operations: Any, kind: str, ref: dict[str, Any]) -> str:
        with self.errors(res.address):
            try:
                versions = list(operations.list(name=ref["name"]))
            except Exception as exc:  # noqa: BLE001
                if not is_not_found(exc):
                    raise
                versions = []
        for asset in versions:
            if (asset.tags or {}).get(ASSET_DIGEST_TAG) == ref["digest"]:
                return f"azureml:{ref['name']}:{asset.version}"
        raise ResourceError(
            res.address,
            f"{kind} {ref['name']} has no version with content {ref['digest'][:19]}… (is {kind}.{ref['name']} applied?)",
            "AssetVersionNotFound",
        )

    def _entity(self, res: Resource, kubernetes: bool) -> Any:
        from azure.ai.ml.entities import (
            CodeConfiguration,
            KubernetesOnlineDeployment,
            ManagedOnlineDeployment,
            OnlineRequestSettings,
            ProbeSettings,
        )

        spec = res.spec
        if spec.get("engine", "azmlinfsrv") != "azmlinfsrv":
            raise ResourceError(res.address, f"engine: {spec['engine']} is local only: Azure serves every deployment "
                                "with azmlinfsrv (remove `engine`, or set it to azmlinfsrv)")
        endpoint, name = self._live(res)
        tags = {MODEL_TAG: spec["model"]["digest"], CODE_TAG: spec["code"]["digest"],
                LABEL: res.inputs.get("manifest_name") or self._names(res.name, spec)[1]}
        environment = None
        if spec.get("environment"):
            tags[ENV_TAG] = spec["environment"]["digest"]
            environment = self._version_of(res, self.ml.environments, "environment", spec["environment"])
        kwargs: dict[str, Any] = {
            "name": name,
            "endpoint_name": endpoint,
            "model": self._version_of(res, self.ml.models, "model", spec["model"]),
            "environment": environment,
            "code_configuration": CodeConfiguration(code=str(res.inputs["code_path"]), scoring_script=spec["scoring_script"]),
            "instance_type": spec["instance_type"],
            "instance_count": int(spec.get("instance_count") or 1),
            "environment_variables": {str(k): str(v) for k, v in (spec.get("environment_variables") or {}).items()},
            "tags": managed_tags(self.settings.tags, tags, applied_tag(res)),
            "app_insights_enabled": bool(spec.get("app_insights_enabled", False)),
            "description": spec.get("description"),
        }
        if spec.get("request_settings"):
            kwargs["request_settings"] = OnlineRequestSettings(**spec["request_settings"])
        for probe in ("liveness_probe", "readiness_probe"):
            if spec.get(probe):
                kwargs[probe] = ProbeSettings(**spec[probe])
        cls = KubernetesOnlineDeployment if kubernetes else ManagedOnlineDeployment
        return cls(**kwargs)

    def create(self, res: Resource) -> None:
        endpoint, _ = self._names(res.name, res.spec)
        with self.clients.gate(endpoint).shared(res.address, self.notify):
            ep = endpoint_idle(self, res.address, endpoint)
            if ep is None:
                raise ResourceError(res.address, f"endpoint {endpoint} does not exist", "ResourceNotFound")
            entity = self._entity(res, kubernetes=bool(getattr(ep, "compute", None)))
            with self.errors(res.address):
                poller = self._begin_put(entity, ep)
            self.wait(res.address, poller)

    def _begin_put(self, entity: Any, ep: Any) -> Any:
        """`online_deployments.begin_create_or_update(entity)` without its two reads: it GETs the endpoint to check
        that it exists (`ep` was just read, idle, by this step) and the workspace for its location (an online
        endpoint lives in its workspace's region: `ep.location`). The rest as azure-ai-ml 1.35 does it
        (operations/_online_deployment_operations.py `begin_create_or_update`): the scoring script checked, code
        uploaded and assets resolved, one PUT polled as its poller polls."""
        from azure.ai.ml._utils._azureml_polling import AzureMLPolling
        from azure.ai.ml._utils._endpoint_utils import upload_dependencies, validate_scoring_script
        from azure.ai.ml.constants._common import LROConfigurations
        from azure.ai.ml.entities import OnlineDeployment
        from azure.ai.ml.operations._operation_orchestrator import OperationOrchestrator

        ops = self.ml.online_deployments
        location = getattr(ep, "location", None)
        if not location:
            return ops.begin_create_or_update(entity)
        validate_scoring_script(entity)
        upload_dependencies(entity, OperationOrchestrator(
            operation_container=ops._all_operations, operation_scope=ops._operation_scope,
            operation_config=ops._operation_config), ops._credentials)
        where = {"resource_group_name": ops._resource_group_name, "workspace_name": ops._workspace_name}
        return ops._online_deployment.begin_create_or_update(
            **where, endpoint_name=entity.endpoint_name, deployment_name=entity.name,
            body=entity._to_rest_object(location=location),
            polling=AzureMLPolling(LROConfigurations.POLL_INTERVAL, path_format_arguments={
                "endpointName": entity.name, "resourceGroupName": where["resource_group_name"],
                "workspaceName": where["workspace_name"]}, **ops._init_kwargs),
            polling_interval=LROConfigurations.POLL_INTERVAL, **ops._init_kwargs,
            cls=lambda response, deserialized, headers: OnlineDeployment._from_rest_object(deserialized))

    def update(self, res: Resource, observed: Observed) -> None:
        self.create(res)  # a PUT of the whole deployment: a rolling update on the service side

    def adopt(self, res: Resource, observed: Observed) -> Observed:
        """The digests of what the deployment runs, where they equal the manifest's: its model version's (by its
        digest tag, else its fetched files), its environment version's, and its code's (fetched)."""
        from .export import asset_version, code_digest, environment_digest, model_digest

        d, spec = observed.handle, dict(observed.spec)
        with self.errors(res.address):
            pair = asset_version(d.model)
            if pair and spec.get("model", {}).get("digest") != res.spec["model"]["digest"]:
                tag = (self.ml.models.get(name=pair[0], version=pair[1]).tags or {}).get(ASSET_DIGEST_TAG)
                if (tag or model_digest(self.ml, *pair)) == res.spec["model"]["digest"]:
                    spec["model"] = {**spec["model"], "digest": res.spec["model"]["digest"]}
            pair = asset_version(d.environment)
            if pair and res.spec.get("environment") and \
                    spec.get("environment", {}).get("digest") != res.spec["environment"]["digest"]:
                env = self.ml.environments.get(name=pair[0], version=pair[1])
                if ((env.tags or {}).get(ASSET_DIGEST_TAG) or environment_digest(env)) == \
                        res.spec["environment"]["digest"]:
                    spec["environment"] = {**spec["environment"], "digest": res.spec["environment"]["digest"]}
            if spec.get("code", {}).get("digest") != res.spec["code"]["digest"] and \
                    code_digest(self.ml, d.code_configuration.code) == res.spec["code"]["digest"]:
                spec["code"] = {"digest": res.spec["code"]["digest"]}
        return dataclasses.replace(observed, spec=spec)

    def claim(self, res: Resource, observed: Observed) -> None:
        """The deployment as it is, PUT back with this manifest's ownership tags and the digests `adopt`
        verified (anything else the plan goes on showing)."""
        d = observed.handle
        endpoint, _ = self._names(res.name, res.spec)
        tags = dict(d.tags or {})
        for tag, key in ((MODEL_TAG, "model"), (ENV_TAG, "environment"), (CODE_TAG, "code")):
            digest = (observed.spec.get(key) or {}).get("digest")
            if digest and digest == (res.spec.get(key) or {}).get("digest"):
                tags[tag] = digest
        tags[LABEL] = res.inputs.get("manifest_name") or self._names(res.name, res.spec)[1]
        d.tags = managed_tags(tags, self.settings.tags)
        with self.clients.gate(endpoint).shared(res.address, self.notify):
            with self.errors(res.address):
                poller = self.ml.online_deployments.begin_create_or_update(d)
            self.wait(res.address, poller)

    # ------------------------------------------------------------------ delete
    def _put_traffic(self, address: str, ep: Any, traffic: dict[str, int]) -> None:
        """`ep` (just read, inside the endpoint's gate) PUT back with `traffic`."""
        with self.errors(address):
            ep.traffic = traffic
            ep.mirror_traffic = mirror_without_live(ep.mirror_traffic, traffic)
            poller = self.ml.online_endpoints.begin_create_or_update(ep)
        self.wait(address, poller)

    def delete(self, observed: Observed) -> None:
        if not observed.owned:
            return
        endpoint, name = self._names(observed.address, observed.spec)
        name = observed.outputs.get("name") or name  # the live name (a successor's, after a rollout)
        gate = self.clients.gate(endpoint)
        ep = read_endpoint(self, observed.address, endpoint)
        if ep is None:
            return  # the endpoint (and all its deployments) is gone
        if folded(ep.traffic).get(name.casefold(), 0) > 0:  # an endpoint write first: its share moves away
            with gate.exclusive(observed.address, self.notify):
                ep = endpoint_idle(self, observed.address, endpoint)  # read again if another step wrote meanwhile
                traffic = folded(ep.traffic if ep else None)
                if traffic.get(name.casefold(), 0) > 0:
                    self._put_traffic(observed.address, ep, move_share(traffic, name))
        with gate.shared(observed.address, self.notify):
            self.wait_delete(
                observed.address, self.ml.online_deployments.begin_delete, name=name, endpoint_name=endpoint
            )
