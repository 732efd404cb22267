"""ARM template deployments (Microsoft.Resources/deployments), as `ml.workspaces.begin_create` uses them.

The emulator does not interpret templates: a deployment whose parameters name a workspace
(`workspaceName`) materialises that workspace and its `workspaceblobstore` datastore when the
deployment succeeds. Other templates succeed without side effects.
"""

from __future__ import annotations

import uuid

from .aml import materialise_workspace
from .ids import ArmPath
from .kinds import Kind, props, register


class TemplateDeploymentKind(Kind):
    type_key = "microsoft.resources/deployments"
    creating_state = "Accepted"     # R05 workspace_create_2024 #2: the PUT answers provisioningState Accepted

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        template = p.pop("template", None) or {}
        p.pop("templateLink", None)
        params = {k: (v or {}).get("value") for k, v in (p.get("parameters") or {}).items()}
        # R05 #2: every parameter is echoed with its type (the template's; "String" for strings: the rest, guess)
        p["parameters"] = {k: {"type": _arm_type(v), "value": v} for k, v in params.items()}
        # R05 #2: mode sent "incremental", answered "Incremental"; duration/timestamp/correlationId as there
        p.update({"mode": str(p.get("mode") or "Incremental").capitalize(),
                  "timestamp": out["systemData"]["lastModifiedAt"],
                  "duration": "PT1S", "correlationId": str(uuid.uuid4()), "outputs": {},
                  "templateHash": str(abs(hash(str(template))))[:20]})
        private = {"parameters": params}
        return out, private

    def on_ready(self, ctx, path, record):
        params = record.private.get("parameters") or {}
        name = params.get("workspaceName")
        if not name:
            return
        rg = params.get("resourceGroupName") or path.resource_group
        ws = ArmPath((path.segs[0], path.segs[1], "resourceGroups", rg, "providers",
                      "Microsoft.MachineLearningServices", "workspaces", name))
        materialise_workspace(ctx, ws.path, params)


def _arm_type(value) -> str:
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int"
    return {dict: "Object", list: "Array"}.get(type(value), "String")


register(TemplateDeploymentKind())
