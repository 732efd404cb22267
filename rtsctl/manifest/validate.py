"""Schema validation (jsonschema 2020-12) plus the rules a schema cannot say.

Every failure is a ManifestError naming file, line and field; the first error wins, so
a user fixes one thing at a time, as with a compiler.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtsctl.errors import ManifestError

from .marks import field_path, line_of

if TYPE_CHECKING:
    from .load import Manifest

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}


def validate(manifest: Manifest, file: str) -> None:
    _validate_schema(manifest.data, file)
    _validate_rules(manifest, file)


def _validate_schema(data: dict[str, Any], file: str) -> None:
    import jsonschema

    from schemas import manifest_schema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    error = min(errors, key=lambda e: (line_of(data, list(e.absolute_path)) or 0, -len(e.absolute_path)))
    error = _deepest(error)
    path = list(error.absolute_path)
    message, path = _describe(error, path)
    raise ManifestError(message, file, line_of(data, path), field_path(path) or None)


def _deepest(error: Any) -> Any:
    """For oneOf/anyOf/allOf, the sub-error that says the most."""
    while error.context:
        relevant = [e for e in error.context if e.validator not in ("if", "then", "not")]
        if error.validator == "oneOf" or not relevant:
            break
        error = max(relevant, key=lambda e: len(e.absolute_path))
    return error


def _describe(error: Any, path: list[str | int]) -> tuple[str, list[str | int]]:
    kind, instance = error.validator, error.instance
    if kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in allowed)
        if extra:
            hint = difflib.get_close_matches(extra[0], allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(allowed)})"
            return f"unknown field {extra[0]!r}{suggestion}", path + [extra[0]]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required field {missing!r}", path + [missing]
    if kind == "type":
        expected = error.validator_value
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in (expected if isinstance(expected, list) else [expected]))
        return f"expected {names}, got {_show(instance)}", path
    if kind == "enum":
        return f"must be one of {', '.join(map(repr, error.validator_value))}, got {_show(instance)}", path
    if kind == "pattern":
        return f"{_show(instance)} is not a valid name (pattern {error.validator_value})", path
    if kind == "oneOf" and path and "image" in (error.schema.get("oneOf", [{}])[0].get("required", [])):
        return "an environment needs exactly one of 'image' or 'build'", path
    if kind in ("minimum", "maximum", "minItems"):
        return f"{_show(instance)}: {error.message}", path
    return error.message, path


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _validate_rules(manifest: Manifest, file: str) -> None:
    data = manifest.data

    def fail(message: str, *path: str | int) -> None:
        raise ManifestError(message, file, line_of(data, list(path)), field_path(list(path)))

    def names(section: str, items: Iterable[dict[str, Any]], prefix: tuple[str | int, ...] = ()) -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item["name"] in seen:
                fail(f"duplicate name {item['name']!r}", *prefix, section, i, "name")
            seen.add(item["name"])
        return seen

    def must_exist(relative: str, what: str, *path: str | int, directory: bool | None = None) -> Path:
        target = manifest.resolve_path(relative)
        if not target.exists() or (directory is True and not target.is_dir()):
            fail(f"{what} {relative!r} not found (looked in {target})", *path)
        return target

    models = names("models", data.get("models", []))
    environments = names("environments", data.get("environments", []))
    computes = {c["name"]: c for c in data.get("computes", [])}
    names("computes", data.get("computes", []))
    names("endpoints", data.get("endpoints", []))

    for i, model in enumerate(data.get("models", [])):
        must_exist(model["path"], "model path", "models", i, "path")
    for i, env in enumerate(data.get("environments", [])):
        if "conda_file" in env:
            must_exist(env["conda_file"], "conda file", "environments", i, "conda_file")
        if "build" in env:
            must_exist(env["build"]["path"], "build context", "environments", i, "build", "path", directory=True)

    demand: dict[str, list[str]] = {}
    for e, endpoint in enumerate(data["endpoints"]):
        where = ("endpoints", e)
        deployments = names("deployments", endpoint["deployments"], where)
        if "compute" in endpoint and endpoint["compute"] not in computes:
            fail(f"unknown compute {endpoint['compute']!r} (declared: {', '.join(sorted(computes)) or 'none'})",
                 *where, "compute")
        for d, dep in enumerate(endpoint["deployments"]):
            at = (*where, "deployments", d)
            if dep["model"] not in models:
                fail(f"unknown model {dep['model']!r} (declared: {', '.join(sorted(models)) or 'none'})", *at, "model")
            if "environment" in dep and dep["environment"] not in environments:
                fail(f"unknown environment {dep['environment']!r} (declared: {', '.join(sorted(environments)) or 'none'})",
                     *at, "environment")
            code = must_exist(dep["code_configuration"]["code"], "code folder", *at, "code_configuration", "code",
                              directory=True)
            if not (code / dep["code_configuration"]["scoring_script"]).is_file():
                fail(f"scoring script {dep['code_configuration']['scoring_script']!r} not found in {code}",
                     *at, "code_configuration", "scoring_script")
            if "compute" in endpoint:
                demand.setdefault(endpoint["compute"], []).append(f"{endpoint['name']}/{dep['name']} "
                                                                 f"{dep.get('instance_count', 1)}")
        traffic = endpoint.get("traffic")
        if traffic is None:
            if len(deployments) > 1:
                fail("traffic is required when an endpoint has several deployments (e.g. {blue: 100})", *where, "name")
        else:
            for name in traffic:
                if name not in deployments:
                    fail(f"traffic names unknown deployment {name!r} (declared: {', '.join(sorted(deployments))})",
                         *where, "traffic", name)
            total = sum(traffic.values())
            if total not in (0, 100):
                fail(f"traffic must total 100 (or 0), got {total}", *where, "traffic")
        smoke = endpoint.get("smoke_test") or {}
        if "deployment" in smoke and smoke["deployment"] not in deployments:
            fail(f"unknown deployment {smoke['deployment']!r}", *where, "smoke_test", "deployment")

    for c, compute in enumerate(data.get("computes", [])):
        limit = compute.get("max_instances")
        if limit is None or compute["name"] not in demand:
            continue
        asked = sum(int(entry.rsplit(" ", 1)[1]) for entry in demand[compute["name"]])
        if asked > limit:
            fail(f"deployments ask for {asked} instances ({', '.join(demand[compute['name']])}) "
                 f"but the compute allows {limit}", "computes", c, "max_instances")
