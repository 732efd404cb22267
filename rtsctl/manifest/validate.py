"""Schema validation (jsonschema 2020-12) plus the rules a schema cannot say.

`check` returns every problem at once, in file order, each a ManifestError naming file, line and
field: `validate` prints them all, `load_manifest` raises the first. The checks never assume the
schema passed: a value of the wrong type is skipped here (the schema already reported it), so a
hostile manifest cannot turn a check into a crash.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtsctl.support.errors import ManifestError

from rtsctl.manifest import files, limits, names
from rtsctl.manifest.marks import field_path, line_of

if TYPE_CHECKING:
    from rtsctl.manifest.model import Manifest

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}

Path_ = list[str | int]


class Report:
    """Collects ManifestErrors with file:line: field; one per field (the first said wins)."""

    def __init__(self, data: Any, file: str):
        self.data, self.file = data, file
        self.errors: list[ManifestError] = []
        self._fields: set[str] = set()

    def add(self, message: str, *path: str | int) -> None:
        field = field_path(list(path)) or None
        key = field or f"<line {line_of(self.data, list(path))}>"
        if key in self._fields:
            return
        self._fields.add(key)
        self.errors.append(ManifestError(message, self.file, line_of(self.data, list(path)) or 1, field))

    def sorted(self) -> list[ManifestError]:
        return sorted(self.errors, key=lambda e: e.line or 0)


def check(manifest: Manifest, file: str) -> list[ManifestError]:
    report = Report(manifest.data, file)
    _check_identity(manifest, report)
    _check_names(manifest.data, report)   # first: a name's own rule says more than a pattern or a character
    _check_values(manifest.data, report, [])
    _check_schema(manifest.data, report)
    _check_rules(manifest, report)
    return report.sorted()


# --- every value -----------------------------------------------------------------------------------------------

# Free text may hold line breaks and tabs; every other string is an identifier, a path or a setting, where a
# control character (a trailing "\n") silently makes a different value.
_FREE_TEXT = {"description", "smoke_test", "environment_variables", "configuration_settings", "tags"}


def _check_values(node: Any, report: Report, path: Path_, free: bool = False) -> None:
    """No NUL anywhere, no control characters outside free text, no infinite or NaN numbers."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and "\0" in key:
                report.add("a key contains a NUL character", *path)
            _check_values(value, report, path + [key], free or key in _FREE_TEXT)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _check_values(item, report, path + [i], free)
    elif isinstance(node, str):
        if "\0" in node:
            report.add("contains a NUL character", *path)
        elif not free and any(ord(c) < 32 or ord(c) == 127 for c in node):
            bad = next(c for c in node if ord(c) < 32 or ord(c) == 127)
            report.add(f"{node[:60]!r} contains the control character {bad!r}", *path)
    elif isinstance(node, float) and not math.isfinite(node):
        report.add(f"{node} is not a finite number", *path)


# --- schema ----------------------------------------------------------------------------------------------------

def _check_schema(data: dict[str, Any], report: Report) -> None:
    import jsonschema

    from schemas import manifest_schema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    for error in sorted(validator.iter_errors(data), key=lambda e: -len(e.absolute_path)):
        error = _deepest(error)
        message, path = _describe(error, list(error.absolute_path))
        report.add(message, *path)


def _deepest(error: Any) -> Any:
    """For oneOf/anyOf/allOf, the sub-error that says the most."""
    while error.context:
        relevant = [e for e in error.context if e.validator not in ("if", "then", "not")]
        if error.validator == "oneOf" or not relevant:
            break
        error = max(relevant, key=lambda e: len(e.absolute_path))
    return error


def _describe(error: Any, path: Path_) -> tuple[str, Path_]:
    kind, instance = error.validator, error.instance
    if kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in instance if k not in allowed)
        if extra:
            hint = difflib.get_close_matches(extra[0], allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(allowed)})"
            return f"unknown field {extra[0]!r}{suggestion}", path + [extra[0]]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required field {missing!r}", path + [missing]
    if kind == "type":
        expected = error.validator_value
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in (expected if isinstance(expected, list) else [expected]))
        return f"expected {wanted}, got {_show(instance)}", path
    if kind == "enum":
        return f"must be one of {', '.join(map(repr, error.validator_value))}, got {_show(instance)}", path
    if kind == "pattern":
        what = "a memory quantity such as 512Mi or 2Gi" if path and path[-1] == "memory" else "a valid name"
        return f"{_show(instance)} is not {what} (pattern {error.validator_value})", path
    if kind == "oneOf" and path and "image" in (error.schema.get("oneOf", [{}])[0].get("required", [])):
        return "an environment needs exactly one of 'image' or 'build'", path
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = "at least" if kind.startswith(("min", "exclusiveMin")) else "at most"
        return f"{_show(instance)} is out of range: must be {bound} {error.validator_value}", path
    if kind in ("minLength", "maxLength"):
        return (f"{_show(instance, 40)} is {len(instance)} characters; "
                f"{'at least' if kind == 'minLength' else 'at most'} {error.validator_value} allowed"), path
    if kind in ("minItems", "maxItems", "minProperties", "maxProperties"):
        count = len(instance)
        return f"has {count} entries; {'at least' if kind.startswith('min') else 'at most'} " \
               f"{error.validator_value} allowed", path
    if kind == "propertyNames":
        return f"a key is not allowed: {error.message[:200]}", path
    return error.message[:300], path


def _show(value: Any, width: int = 80) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= width else text[:width] + "...'"


# --- names -----------------------------------------------------------------------------------------------------

def _entries(data: Any, key: str, prefix: Path_ | None = None) -> Iterator[tuple[Path_, dict[str, Any]]]:
    """(path, mapping) for each mapping in the list at data[key]; other shapes are the schema's to report."""
    items = data.get(key) if isinstance(data, dict) else None
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield [*(prefix or []), key, i], item


def _name(report: Report, kind: str, value: Any, *path: str | int) -> None:
    if isinstance(value, str):
        problem = names.name_problem(kind, value)
        if problem:
            report.add(problem, *path)


def _check_identity(manifest: Manifest, report: Report) -> None:
    """`name:` (or, absent, the file's stem) is the manifest's identity: what owns the resources it creates."""
    declared = manifest.data.get("name") if isinstance(manifest.data, dict) else None
    if isinstance(declared, str):
        _name(report, "manifest", declared, "name")
    elif declared is None:
        problem = names.name_problem("manifest", manifest.path.stem)
        if problem:
            report.add(f"the file name gives this manifest no valid identity ({problem}): add a top-level "
                       "`name:`")


def _check_names(data: dict[str, Any], report: Report) -> None:
    provider = data.get("provider")
    if isinstance(provider, dict) and provider.get("subscription_id"):
        _name(report, "subscription_id", provider.get("subscription_id"), "provider", "subscription_id")
    _name(report, "resource_group", data.get("resource_group"), "resource_group")
    workspace = data.get("workspace")
    if isinstance(workspace, dict):
        _name(report, "workspace", workspace.get("name"), "workspace", "name")
    testing = data.get("load_testing")
    if isinstance(testing, dict):
        _name(report, "load_testing", testing.get("name"), "load_testing", "name")
        _name(report, "load_test_id", testing.get("test"), "load_testing", "test")
    for path, model in _entries(data, "models"):
        _name(report, "model", model.get("name"), *path, "name")
    for path, env in _entries(data, "environments"):
        _name(report, "environment", env.get("name"), *path, "name")
    for path, compute in _entries(data, "computes"):
        _name(report, "compute", compute.get("name"), *path, "name")
        if compute.get("type") == "kubernetes":
            _name(report, "namespace", compute.get("namespace"), *path, "namespace")
            cluster = compute.get("cluster")
            if isinstance(cluster, dict):
                _name(report, "aks_cluster", cluster.get("name"), *path, "cluster", "name")
                _name(report, "resource_group", cluster.get("resource_group"), *path, "cluster", "resource_group")
    for path, endpoint in _entries(data, "endpoints"):
        _name(report, "endpoint", endpoint.get("name"), *path, "name")
        for dpath, dep in _entries(endpoint, "deployments", path):
            _name(report, "deployment", dep.get("name"), *dpath, "name")
            _name(report, "instance_type", dep.get("instance_type"), *dpath, "instance_type")


# --- rules -----------------------------------------------------------------------------------------------------

def _check_rules(manifest: Manifest, report: Report) -> None:
    data = manifest.data
    if not isinstance(data, dict):
        return
    fail = report.add

    def declared(section: str, prefix: Path_ | None = None, container: Any = None) -> dict[str, Path_]:
        seen: dict[str, Path_] = {}
        for path, item in _entries(data if container is None else container, section, prefix):
            name = item.get("name")
            if isinstance(name, str):
                if name.lower() in {n.lower() for n in seen}:  # Azure compares names case-insensitively
                    fail(f"duplicate name {name!r}", *path, "name")
                seen[name] = path
        return seen

    models = declared("models")
    environments = declared("environments")
    computes = {name: item for path, item in _entries(data, "computes")
                if isinstance(name := item.get("name"), str)}
    declared("computes")
    declared("endpoints")
    provider = data.get("provider") if isinstance(data.get("provider"), dict) else {}
    local = provider.get("kind", "local") == "local"
    if local and "lock" in provider:
        fail("lock is for the azure backend (a blob lease other machines see); the local backend locks its own "
             "home and needs none", "provider", "lock")

    if local and "load_testing" in data:
        # the local backend runs no load testing service: a resource it could only pretend to create would make
        # `bench --engine azure-load-testing` fail later, far from the line that asked for it
        fail("load_testing is an Azure resource (Azure Load Testing); the local backend has no load testing "
             "service: remove it here, and load a local endpoint with `rtsctl bench` (or `--engine locust`)",
             "load_testing")
    if isinstance(data.get("load_testing"), dict):
        _check_tags(report, data["load_testing"].get("tags"), "load_testing", "tags")

    for path, model in _entries(data, "models"):
        _path_check(manifest, report, model.get("path"), "model path", files.file_or_folder, *path, "path")
    for path, env in _entries(data, "environments"):
        _conda_check(manifest, report, env.get("conda_file"), *path, "conda_file")
        build = env.get("build")
        if isinstance(build, dict):
            context = _path_check(manifest, report, build.get("path"), "build context", files.folder,
                                  *path, "build", "path")
            if context is not None:
                dockerfile = build.get("dockerfile_path", "Dockerfile")
                _inside(report, context, dockerfile, "Dockerfile", *path, "build", "dockerfile_path",
                        read=lambda p: files.read_text(p, limits.TEXT_FILE_BYTES))

    demand: dict[str, list[tuple[str, int]]] = {}
    for path, endpoint in _entries(data, "endpoints"):
        deployments = declared("deployments", path, endpoint)
        ep_name = endpoint.get("name") if isinstance(endpoint.get("name"), str) else "?"
        compute_name = endpoint.get("compute")
        compute = computes.get(compute_name) if isinstance(compute_name, str) else None
        if isinstance(compute_name, str) and compute is None:
            fail(f"unknown compute {compute_name!r} (declared: {_listing(computes) or 'none'})",
                 *path, "compute")
        kubernetes = isinstance(compute, dict) and compute.get("type") == "kubernetes"
        for dpath, dep in _entries(endpoint, "deployments", path):
            _check_deployment(manifest, report, dep, dpath, models, environments, ep_name, kubernetes)
            _check_smoke_bodies(report, dep.get("smoke_test"), dpath)
            count = dep.get("instance_count", 1)
            # a count outside the schema's bounds is reported there; capacity is judged on sane counts only
            if isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= 1000 and local:
                key = compute_name if isinstance(compute, dict) else ""
                demand.setdefault(key, []).append((f"{ep_name}/{dep.get('name')}", count))
        _check_traffic(report, endpoint, path, deployments)
        _check_rollout(report, endpoint, path, local, kubernetes)
        _check_smoke(report, endpoint, path, deployments)
        _check_tags(report, endpoint.get("tags"), *path, "tags")
    workspace = data.get("workspace")
    if isinstance(workspace, dict):
        _check_tags(report, workspace.get("tags"), "workspace", "tags")

    for where, asked in demand.items():
        total = sum(n for _, n in asked)
        listing = ", ".join(f"{name} {n}" for name, n in asked)
        if where:
            cpath = next(p for p, c in _entries(data, "computes") if c.get("name") == where)
            limit = computes[where].get("max_instances")
            if isinstance(limit, int) and total > limit:
                fail(f"deployments ask for {total} instances ({listing}) but the compute allows {limit}",
                     *cpath, "max_instances")
        elif total > (cores := limits.local_default_instances()):
            first = next(p for p, e in _entries(data, "endpoints")
                         if not (isinstance(e.get("compute"), str) and e["compute"] in computes))
            fail(f"deployments ask for {total} local instances ({listing}); without a compute the local backend runs "
                 f"at most {cores}, one per CPU core rtsctl may use on this machine (os.sched_getaffinity): lower "
                 "instance_count, or give the endpoint a `type: local` compute with max_instances",
                 *first, "deployments")


def _check_deployment(manifest: Manifest, report: Report, dep: dict[str, Any], path: Path_, models: dict[str, Path_],
                      environments: dict[str, Path_], endpoint: str, kubernetes: bool) -> None:
    fail = report.add
    model = dep.get("model")
    if isinstance(model, str) and model not in models:
        fail(f"unknown model {model!r} (declared: {_listing(models) or 'none'})", *path, "model")
    env = dep.get("environment")
    if isinstance(env, str) and env not in environments:
        fail(f"unknown environment {env!r} (declared: {_listing(environments) or 'none'})",
             *path, "environment")
    _check_resources(manifest, report, dep.get("resources"), *path, "resources")
    name = dep.get("name")
    if kubernetes and isinstance(name, str) and endpoint:  # no endpoint name (unset variable, or its own error)
        low, high = names.KUBERNETES_PAIR
        if not low <= len(endpoint) + len(name) <= high:
            fail(f"on Kubernetes, endpoint name + deployment name must be {low}-{high} characters "
                 f"(here {len(endpoint) + len(name)})", *path, "name")
    code_cfg = dep.get("code_configuration")
    if isinstance(code_cfg, dict):
        code = _path_check(manifest, report, code_cfg.get("code"), "code folder", files.folder,
                           *path, "code_configuration", "code")
        if code is not None:
            _inside(report, code, code_cfg.get("scoring_script"), "scoring script", *path, "code_configuration",
                    "scoring_script", read=lambda p: files.read_text(p, limits.SCRIPT_BYTES))
    variables = dep.get("environment_variables")
    if isinstance(variables, dict):
        for key, value in variables.items():
            problem = names.name_problem("env_var", key) if isinstance(key, str) else "not a string"
            if problem:
                fail(f"environment variable name {problem}", *path, "environment_variables", key)
            elif isinstance(value, str) and len(value) > limits.ENV_VALUE_CHARS:
                fail(f"value is {len(value)} characters; the limit is {limits.ENV_VALUE_CHARS}",
                     *path, "environment_variables", key)
    settings = dep.get("request_settings")
    timeout = settings.get("request_timeout_ms") if isinstance(settings, dict) else None
    limit = 300_000 if kubernetes else 180_000  # how-to-manage-quotas.md: max request time-out per endpoint type
    if isinstance(timeout, int) and timeout > limit:
        fail(f"{timeout} is out of range: {'Kubernetes' if kubernetes else 'managed'} online endpoints allow at most "
             f"{limit} ms", *path, "request_settings", "request_timeout_ms")
    liveness = dep.get("liveness_probe")
    if isinstance(liveness, dict) and liveness.get("success_threshold", 1) != 1:
        fail("a liveness probe's success_threshold is fixed at 1 by Azure", *path, "liveness_probe", "success_threshold")


def _listing(declared: dict[str, Any]) -> str:
    """Declared names for a hint; a name with a newline in it must not break the one-line error."""
    return ", ".join(n if n.isprintable() else repr(n) for n in sorted(declared))


def _check_traffic(report: Report, endpoint: dict[str, Any], path: Path_, deployments: dict[str, Path_]) -> None:
    traffic = endpoint.get("traffic")
    if traffic is None:
        if len(deployments) > 1:
            report.add("traffic is required when an endpoint has several deployments (e.g. {blue: 100})", *path, "name")
        return
    if not isinstance(traffic, dict):
        return
    for name in traffic:
        if name not in deployments:
            report.add(f"traffic names unknown deployment {name!r} (declared: {_listing(deployments)})",
                       *path, "traffic", name)
    values = [v for v in traffic.values() if isinstance(v, int) and not isinstance(v, bool)]
    if len(values) == len(traffic) and sum(values) not in (0, 100):
        report.add(f"traffic must total 100 (or 0), got {sum(values)}", *path, "traffic")


def _check_rollout(report: Report, endpoint: dict[str, Any], path: Path_, local: bool, kubernetes: bool) -> None:
    """What the schema cannot say about `rollout:` (bounds and shapes are the schema's)."""
    rollout = endpoint.get("rollout")
    if not isinstance(rollout, dict):
        return
    steps = rollout.get("steps")
    if isinstance(steps, list) and all(isinstance(s, int) for s in steps) and steps != sorted(set(steps)):
        report.add(f"steps must rise, each once (e.g. [10, 50, 100]), got {steps}", *path, "rollout", "steps")
    if local and "mirror" in rollout:
        report.add("the local backend cannot mirror traffic (its front sends each request to one "
                   "deployment); mirror traffic is an Azure endpoint feature: remove it here", *path, "rollout", "mirror")
    if not local and kubernetes and "mirror" in rollout:
        # azure-ai-docs how-to-safely-rollout-online-endpoints.md: "Mirroring isn't currently supported for
        # Kubernetes online endpoints"; concept-endpoints-online.md: mirrored traffic, Kubernetes "Unsupported"
        report.add("Azure does not mirror traffic on Kubernetes online endpoints (only managed ones): remove "
                   "rollout.mirror, or gate the first step instead", *path, "rollout", "mirror")
    gate = rollout.get("gate")
    if not local and kubernetes and isinstance(gate, dict) and "min_requests" in gate:
        # concept-endpoints-online.md: out-of-box monitoring of Kubernetes endpoints is the user's responsibility;
        # Azure Monitor counts no requests for them, so the count could never be met
        report.add("Azure Monitor counts no requests of Kubernetes online endpoints, so min_requests could never be "
                   "met: remove it (the watch then judges the deployment's health; a bench run judges errors)",
                   *path, "rollout", "gate", "min_requests")
    if isinstance(gate, dict) and gate.get("engine") == "azure-load-testing":
        if local:
            report.add("the local backend has no load testing service: a gate's engine: azure-load-testing needs the "
                       "azure backend (use engine: native here)", *path, "rollout", "gate", "engine")
        elif not isinstance(report.data.get("load_testing"), dict):
            report.add("engine: azure-load-testing runs the gate in the manifest's Azure Load Testing resource: "
                       "declare one as `load_testing:`", *path, "rollout", "gate", "engine")
        regions, engines = gate.get("regions"), gate.get("engines", 1)
        if isinstance(regions, list) and isinstance(engines, int) and len(regions) > engines:
            report.add(f"{len(regions)} regions need {len(regions)} engines at least (each region runs one); "
                       f"engines is {engines}", *path, "rollout", "gate", "regions")
    elif isinstance(gate, dict) and {"engines", "regions"} & gate.keys():
        report.add("engines and regions are Azure Load Testing's: add engine: azure-load-testing or remove them",
                   *path, "rollout", "gate", next(k for k in ("engines", "regions") if k in gate))
    if isinstance(gate, dict) and "min_requests" in gate and "watch" not in gate:
        report.add("min_requests counts the live answers a watch sees while it holds a step: add watch (seconds) "
                   "or remove min_requests", *path, "rollout", "gate", "min_requests")


def _check_smoke(report: Report, endpoint: dict[str, Any], path: Path_, deployments: dict[str, Path_]) -> None:
    smoke = endpoint.get("smoke_test")
    if not isinstance(smoke, dict):
        return
    target = smoke.get("deployment")
    if isinstance(target, str) and target not in deployments:
        report.add(f"unknown deployment {target!r}", *path, "smoke_test", "deployment")
    _check_smoke_bodies(report, smoke, path)


def _check_smoke_bodies(report: Report, smoke: Any, path: Path_) -> None:
    """An endpoint's or a deployment's own smoke test: its bodies must be sendable JSON."""
    if not isinstance(smoke, dict):
        return
    for key in ("request", "expected_response"):
        if key in smoke:
            problem = _json_problem(smoke[key])
            if problem:
                report.add(problem, *path, "smoke_test", key)


def _json_problem(value: Any) -> str | None:
    """A smoke body must serialize to JSON of bounded size (YAML dates, binary or sets do not)."""
    import json

    def bad(node: Any) -> str | None:
        if isinstance(node, dict):
            return next((b for k, v in node.items() for b in [bad(v)] if b), None)
        if isinstance(node, list):
            return next((b for v in node for b in [bad(v)] if b), None)
        if isinstance(node, float) and not math.isfinite(node):
            return f"{node} cannot be sent as JSON"
        if node is None or isinstance(node, (str, int, float, bool)):
            return None
        return f"{type(node).__name__} value {str(node)[:40]!r} cannot be sent as JSON (quote it)"

    problem = bad(value)
    if problem:
        return problem
    size = len(json.dumps(value, allow_nan=False))
    if size > limits.JSON_BODY_BYTES:
        return f"is {size} bytes as JSON; the limit is {limits.JSON_BODY_BYTES}"
    return None


MIN_MEMORY = 64 * 1024 ** 2   # below this a Python scoring host cannot even start


def _check_resources(manifest: Manifest, report: Report, resources: Any, *path: str | int) -> None:
    """`resources.limits.memory` is enforced locally (serving.limits); the azure provider does not send it yet."""
    if not isinstance(resources, dict):
        return
    provider = manifest.data.get("provider")
    if isinstance(provider, dict) and provider.get("kind", "local") != "local":
        report.add("the azure provider does not send resources to Azure yet (its instance_type decides the "
                   "limits there); remove it for azure manifests", *path)
        return
    from serving.limits import human, parse_memory

    memory = (resources.get("limits") or {}).get("memory") if isinstance(resources.get("limits"), dict) else None
    size = parse_memory(memory) if isinstance(memory, str) else None
    if size is not None and size < MIN_MEMORY:
        report.add(f"{memory} is below {human(MIN_MEMORY)}, too little for a Python scoring host",
                   *path, "limits", "memory")


def _check_tags(report: Report, tags: Any, *path: str | int) -> None:
    if isinstance(tags, dict):
        for key, value in tags.items():
            problem = names.tag_problem(str(key), value if isinstance(value, str) else "")
            if problem:
                report.add(problem, *path, key)


# --- files -----------------------------------------------------------------------------------------------------

def _path_check(manifest: Manifest, report: Report, relative: Any, what: str, check_fn: Any,
                *path: str | int) -> Path | None:
    """Resolve a manifest path and run `check_fn` on it; the resolved path, or None after reporting."""
    if not isinstance(relative, str):
        return None
    if not relative:
        report.add(f"{what} is empty", *path)
        return None
    try:
        target = manifest.resolve_path(relative)
    except (OSError, RuntimeError, ValueError) as exc:
        report.add(f"{what} {relative!r}: {exc}", *path)
        return None
    try:
        check_fn(target)
    except files.FileProblem as exc:
        report.add(f"{what} {relative!r}: {exc}", *path)
        return None
    return target


def _conda_check(manifest: Manifest, report: Report, relative: Any, *path: str | int) -> None:
    """A conda file is YAML the Azure SDK parses: bounded, UTF-8, and no alias bomb either. Its `pip:` entries
    are PyPI requirements and nothing else where rtsctl builds the environment (the local provider); for
    Azure, which builds the image from the file as it is, what the local backend would refuse is noted."""
    from rtsctl.manifest.parse import parse_yaml_text
    from rtsctl.manifest.requirements import pip_entries

    data: Any = None
    provider = manifest.data.get("provider")
    local = not isinstance(provider, dict) or provider.get("kind", "local") == "local"

    def read(target: Path) -> None:
        nonlocal data
        text = files.read_text(target, limits.TEXT_FILE_BYTES)
        try:
            data = parse_yaml_text(text, relative)
        except ManifestError as exc:
            raise files.FileProblem(f"line {exc.line}: {exc.reason}") from None
        if not isinstance(data, dict):
            raise files.FileProblem("a conda file is a YAML mapping (name, channels, dependencies)")

    if _path_check(manifest, report, relative, "conda file", read, *path) is None:
        return
    for entry in pip_entries(data):
        if entry.problem is None:
            continue
        where = f"{relative}:{entry.line}" if entry.line else relative
        if local:
            report.add(f"conda file {relative!r}: line {entry.line}: pip entry {entry.text!r} {entry.problem}",
                       *path)
        else:
            manifest.notes.append(f"{report.file}:{line_of(report.data, list(path)) or 1}: {where}: pip entry "
                                  f"{entry.text!r} {entry.problem} (Azure's image build takes it as written; "
                                  "the local backend would refuse it)")


def _inside(report: Report, folder: Path, relative: Any, what: str, *path: str | int, read: Any) -> None:
    """A file named relative to a folder must stay inside it (no `../../etc/passwd`) and be readable text."""
    if not isinstance(relative, str):
        return
    target = (folder / relative).resolve()
    if target != folder and folder not in target.parents:
        report.add(f"{what} {relative!r} is outside {folder}", *path)
        return
    try:
        read(target)
    except files.FileProblem as exc:
        report.add(f"{what} {relative!r}: {exc}", *path)
