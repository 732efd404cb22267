"""Application Insights components and what Azure creates beside them on its own.

Creating a component also creates, in the same resource group and UNTAGGED:
* the smart-detector alert rule "Failure Anomalies - {component}" (microsoft.alertsManagement/smartDetectorAlertRules),
* the action group "Application Insights Smart Detection" (microsoft.insights/actionGroups), once per group.
Source: MicrosoftDocs azure-monitor app/proactive-failure-diagnostics.md ("This Smart Detection rule is available as
an alert rule, and is created together with your Application Insights resource"; the "Application Insights Smart
Detection" action group "is created automatically together with the Failure Anomalies alert rule ... when you create
a new Application Insights resource"). Bodies: the Failure Anomalies v2 rule in MicrosoftDocs azure-monitor
app/proactive-arm-config.md (detector FailureAnomaliesDetector, severity Sev3, frequency PT1M, location global);
the action group's short name and receivers: guess.
"""

from __future__ import annotations

import uuid

from .ids import ArmPath
from .kinds import PS, Kind, props, register

ACTION_GROUP = "Application Insights Smart Detection"


def _seed(ctx, arm_id: str, body: dict) -> None:
    from .kinds import kind_for

    path = ArmPath.parse(arm_id)
    if ctx.store.exists(path.path):
        return
    stored, private = kind_for(path).prepare(ctx, path, body, None)
    props(stored)[PS] = "Succeeded"
    ctx.store.put(path.path, stored, private)


def create_smart_detection(ctx, component: ArmPath) -> None:
    rg = ArmPath(component.segs[:4])
    group_id = rg.child("providers", "microsoft.insights", "actionGroups", ACTION_GROUP).path
    _seed(ctx, group_id, {"location": "Global", "properties": {
        "groupShortName": "SmartDetect", "enabled": True, "emailReceivers": [], "smsReceivers": [],
        "webhookReceivers": [], "armRoleReceivers": [
            {"name": "Monitoring Contributor", "roleId": "749f88d5-cbae-40b8-bcfc-e573ddc772fa",
             "useCommonAlertSchema": True},
            {"name": "Monitoring Reader", "roleId": "43d0d8ad-25c7-4714-9337-8ba259a9fe05",
             "useCommonAlertSchema": True}]}})
    rule_id = rg.child("providers", "microsoft.alertsManagement", "smartDetectorAlertRules",
                       f"Failure Anomalies - {component.name}").path
    _seed(ctx, rule_id, {"location": "global", "properties": {
        "description": "Failure Anomalies notifies you of an unusual rise in the rate of failed HTTP requests or "
                       "dependency calls.",
        "state": "Enabled", "severity": "Sev3", "frequency": "PT1M", "detector": {"id": "FailureAnomaliesDetector"},
        "scope": [component.path], "actionGroups": {"groupIds": [group_id]}}})


class ComponentKind(Kind):
    type_key = "microsoft.insights/components"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        out.setdefault("kind", "web")
        p = props(out)
        p.setdefault("Application_Type", "web")
        p.setdefault("InstrumentationKey", str(uuid.uuid5(uuid.NAMESPACE_URL, path.key)))
        return out, None

    def on_ready(self, ctx, path, record):
        create_smart_detection(ctx, path)


register(ComponentKind())
