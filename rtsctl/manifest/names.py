"""Azure's naming rules, per kind, as data; each rule names its source.

Checked with `re.fullmatch` (\\A…\\Z semantics): JSON Schema's `pattern` is a search, and in Python
`$` also matches before a final newline, so `"rts-score\\n"` passed the schema, reached Azure (or the
local backend) as a different name, and replaced the live endpoint. Here it is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class NameRule:
    min_len: int
    max_len: int
    pattern: str     # a full match, not a search
    says: str        # the rule in words, for the error message
    source: str

    def problem(self, value: str) -> str | None:
        """What is wrong with `value`, or None when Azure accepts it."""
        if not self.min_len <= len(value) <= self.max_len:
            return f"{value!r} is {len(value)} characters; {self.says}"
        if re.fullmatch(self.pattern, value) is None:
            return f"{value!r} is not a valid name: {self.says}"
        return None


_ONLINE = NameRule(
    3, 32, r"[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?",
    "3-32 characters, starting with a letter, then letters, digits or '-', not ending with '-'",
    "azure-ai-ml entities/_endpoint/_endpoint_helpers.py validate_endpoint_or_deployment_name + "
    "constants/_endpoint.py NAME_REGEX_PATTERN; azure-ai-docs machine-learning/how-to-manage-quotas.md "
    "(endpoint and deployment names)")

RULES: dict[str, NameRule] = {
    "manifest": NameRule(
        1, 63, r"[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?",
        "1-63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        "rtsctl: a manifest's identity travels in an Azure tag value (256 characters, azure-docs "
        "tag-resources.md) and in workspace tag names (no < > % & \\ ? /); 63 and the characters: guess, to "
        "stay a file stem and a DNS-label-sized word"),
    "endpoint": _ONLINE,
    "deployment": _ONLINE,
    "workspace": NameRule(
        3, 33, r"[A-Za-z0-9][A-Za-z0-9_-]*",
        "3-33 characters: letters, digits, '_' and '-', starting with a letter or digit",
        "azure-rest-api-specs machinelearningservices WorkspaceNameParameter pattern "
        "^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$; recording R05 created workspace e2etest_test_863132474581 (resource-"
        "name-rules.md says alphanumerics and hyphens only: the service takes '_')"),
    "compute": NameRule(
        2, 16, r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?",
        "2-16 characters: letters, digits and '-', not starting or ending with '-'",
        "azure-docs resource-name-rules.md, workspaces / computes (2-16 for compute types other than instances "
        "and AmlCompute; alphanumerics and hyphens); first/last character: guess"),
    "resource_group": NameRule(
        1, 90, r"[-\w.()]*[-\w()]",
        "1-90 characters: letters, digits, '_', '-', '.', '(' and ')', not ending with '.'",
        "azure-docs resource-name-rules.md, Microsoft.Resources resourcegroups"),
    "aks_cluster": NameRule(
        1, 63, r"[A-Za-z0-9]([-_A-Za-z0-9]*[A-Za-z0-9])?",
        "1-63 characters: letters, digits, '_' and '-', starting and ending with a letter or digit",
        "azure-docs resource-name-rules.md, Microsoft.ContainerService managedClusters"),
    "model": NameRule(
        1, 255, r"(?![-_.])[A-Za-z0-9_.-]+(?<!\.)",
        "1-255 characters: letters, digits, '-', '_' and '.', not starting with '-', '_' or '.', not ending with '.'",
        "azure-ai-ml _restclient/model_dataplane/operations/_models_operations.py (name pattern)"),
    "environment": NameRule(
        1, 255, r"(?![-_.])[A-Za-z0-9_.-]+(?<!\.)",
        "1-255 characters: letters, digits, '-', '_' and '.', not starting with '-', '_' or '.', not ending with '.'",
        "guess: the model asset rule (azure-ai-ml model_dataplane) applied to environment assets"),
    "namespace": NameRule(
        1, 63, r"[a-z0-9]([-a-z0-9]*[a-z0-9])?",
        "a Kubernetes namespace: 1-63 lower-case letters, digits and '-', starting and ending alphanumeric",
        "kubernetes.io docs overview/working-with-objects/names (DNS-1123 label)"),
    "env_var": NameRule(
        1, 256, r"[-._A-Za-z][-._A-Za-z0-9]*",
        "letters, digits, '_', '-' and '.', not starting with a digit (no '=', no spaces)",
        "kubernetes apimachinery pkg/util/validation/validation.go envVarNameFmt (deployments run as pods); "
        "256-character bound: rtsctl"),
    "subscription_id": NameRule(
        36, 36, r"[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}",
        "a subscription ID is a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        "azure-rest-api-specs common-types/resource-management SubscriptionIdParameter (format: uuid)"),
    "load_testing": NameRule(
        1, 64, r"[A-Za-z0-9]([-_A-Za-z0-9]*[A-Za-z0-9])?",
        "1-64 characters: letters, digits, '_' and '-', starting and ending with a letter or digit",
        "guess: azure-rest-api-specs loadtestservice LoadTestService.Management/LoadTestResource.tsp gives no "
        "NamePattern; the characters and 64 of other regional ARM resources (resource-name-rules.md)"),
    "load_test_id": NameRule(
        2, 50, r"[a-z0-9_-]+",
        "2-50 characters: lower-case letters, digits, '_' and '-'",
        "azure-developer-loadtesting models/_models.py Test.test_id: \"must contain only lower-case alphabetic, "
        "numeric, underscore or hyphen characters\"; the 2-50 bound: guess"),
    "instance_type": NameRule(
        1, 128, r"[A-Za-z0-9][A-Za-z0-9_.-]*",
        "a VM SKU (Standard_DS3_v2) or Kubernetes instance type name: letters, digits, '_', '.' and '-'",
        "guess: the characters of Azure VM size names and Kubernetes resource names"),
}

# Kubernetes online endpoints: endpoint name + deployment name must be 6-62 characters in total
# (azure-ai-docs machine-learning/how-to-manage-quotas.md, endpoint and deployment name rows).
KUBERNETES_PAIR = (6, 62)

# Tags: Azure Resource Manager (azure-docs azure-resource-manager/management/tag-resources.md, Limitations).
TAGS_PER_RESOURCE = 50
TAG_NAME_CHARS = 512
TAG_VALUE_CHARS = 256
TAG_NAME_FORBIDDEN = "<>%&\\?/"


def name_problem(kind: str, value: str) -> str | None:
    return RULES[kind].problem(value)


def tag_problem(name: str, value: str) -> str | None:
    if not name or len(name) > TAG_NAME_CHARS:
        return f"tag name {name[:40]!r} must be 1-{TAG_NAME_CHARS} characters"
    bad = sorted({c for c in name if c in TAG_NAME_FORBIDDEN or not c.isprintable()})
    if bad:
        return f"tag name {name!r} contains {', '.join(map(repr, bad))} (Azure refuses < > % & \\ ? / in tag names)"
    if len(value) > TAG_VALUE_CHARS:
        return f"tag {name!r}: value is {len(value)} characters; Azure allows {TAG_VALUE_CHARS}"
    return None
