"""Computes: a Kubernetes attach needs the AKS cluster and its AzureML extension; attached computes are fixed."""

from __future__ import annotations

import time

from ..errors import bad_request as bad
from ..errors import conflict
from ..ids import ArmPath, key
from ..kinds import Kind, fill_defaults, props, register, same, state_of
from .common import NS, ws_child


AZUREML_EXTENSION = "microsoft.azureml.kubernetes"


class ComputeKind(Kind):
    type_key = NS + "/computes"
    update_status = 201     # R05 amlcompute_2022 #5: a PUT on an EXISTING compute answers 201

    def on_failed(self, ctx, path, record, error):
        # the field is in R05's body (null while fine); its list-of-{error} shape: REST spec ComputeResource
        # (guess on content: no failed compute recorded)
        props(record.body)["provisioningErrors"] = [{"error": {"code": error.get("code"),
                                                               "message": error.get("message")}}]

    def on_ready(self, ctx, path, record):
        props(record.body)["provisioningErrors"] = None

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        ctype = p.get("computeType") or ""
        inner = p.get("properties") if isinstance(p.get("properties"), dict) else {}
        if existing is not None:
            old = props(existing.body)
            old_inner = old.get("properties") or {}
            for label, a, b in (("computeType", old.get("computeType"), ctype),
                                ("resourceId", old.get("resourceId"), p.get("resourceId")),
                                ("namespace", old_inner.get("namespace"), inner.get("namespace"))):
                if not same(a, b):
                    raise conflict("ComputeAlreadyExists",
                                   f"Compute '{path.name}' already exists with {label} {a!r}; it cannot change to "
                                   f"{b!r} in place. Detach the compute and attach it again.")
        if ctype.lower() == "kubernetes":
            self.check_cluster(ctx, path, p.get("resourceId"))
            inner.setdefault("namespace", "default")    # spec example Compute/createOrUpdate/KubernetesCompute.json
            p["properties"] = inner
        # R05 amlcompute_2022 #2/#4: createdOn/modifiedOn, disableLocalAuth false, provisioningErrors null,
        # isAttachedCompute, computeLocation
        fill_defaults(p, {"computeLocation": out.get("location"), "description": None,
                          "isAttachedCompute": ctype.lower() in ("kubernetes", "aks"), "disableLocalAuth": False,
                          "provisioningErrors": None})
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
        p.setdefault("createdOn", props(existing.body).get("createdOn", now) if existing else now)
        p["modifiedOn"] = now
        return out, None

    @staticmethod
    def check_cluster(ctx, path, resource_id):
        # how-to-attach-kubernetes-anywhere.md: the AzureML extension must be deployed before the attach; the
        # error codes/wording here are guesses (no Kubernetes attach was recorded, README "Not reached")
        if not resource_id:
            raise bad("BadArgument", f"Compute '{path.name}': properties.resourceId (the AKS cluster id) is required.")
        cluster = ctx.store.get(resource_id)
        if cluster is None or "managedclusters" not in key(resource_id):
            raise bad("KubernetesClusterNotFound",
                      f"Cannot attach compute '{path.name}': Kubernetes cluster '{resource_id}' was not found.")
        if state_of(cluster.body) != "Succeeded":
            raise bad("KubernetesClusterNotReady",
                      f"Cannot attach compute '{path.name}': cluster '{cluster.body['name']}' is in state "
                      f"{state_of(cluster.body)!r}.")
        extensions = ctx.store.children(cluster.id + "/providers/Microsoft.KubernetesConfiguration/extensions")
        ready = [e for e in extensions if str(props(e.body).get("extensionType", "")).lower() == AZUREML_EXTENSION
                 and state_of(e.body) == "Succeeded"]
        if not ready:
            raise bad("AzureMLExtensionNotInstalled",
                      f"Cannot attach compute '{path.name}': the Microsoft.AzureML.Kubernetes extension is not "
                      f"installed (or not ready) on cluster '{cluster.body['name']}'. Install it before attaching.")

    def check_delete(self, ctx, path, record):
        # guess: detaching a compute that endpoints run on is refused
        ws = path.workspace()
        users = [e.body["name"] for e in ctx.store.children(ws_child(ws, "onlineEndpoints"))
                 if compute_key(ws, props(e.body).get("compute")) == path.key]
        if users:
            raise conflict("ComputeInUse", f"Compute '{path.name}' is used by online endpoint(s) "
                                           f"{', '.join(users)}; delete them before detaching the compute.")


def compute_key(ws: ArmPath, compute: str | None) -> str | None:
    if not compute:
        return None
    if compute.startswith("/"):
        return key(compute)
    name = compute.split(":", 1)[1] if compute.lower().startswith("azureml:") else compute
    return key(ws_child(ws, "computes", name))


register(ComputeKind())
