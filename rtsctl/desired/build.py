"""Manifest -> desired resources: one `Resource` per thing a reconciler manages.

This is where the manifest's shape (az ml v2 field names, nested deployments) becomes
the engine's flat, addressed resources with explicit dependencies and content digests.
Only declared fields enter a spec, so the diff never sees fields the user left to the
service's defaults.
"""

from __future__ import annotations

from typing import Any

from reconcilers.base import BackendSettings

from rtsctl.desired.digest import conda_part, current, digest_path, digest_text
from rtsctl.support.errors import ManifestError
from rtsctl.manifest import Manifest
from rtsctl.manifest.files import FileProblem, read_text
from rtsctl.manifest.marks import field_path, line_of
from rtsctl.observe.ownership import OWNER_TAG
from rtsctl.desired.resources import Observed, Resource, Source

AZUREML_EXTENSION = "Microsoft.AzureML.Kubernetes"
MAX_PEM_BYTES = 256 * 1024  # a certificate chain or a key; far below what would hurt
DEPLOYMENT_FIELDS = ("instance_type", "instance_count", "environment_variables", "request_settings",
                     "liveness_probe", "readiness_probe", "app_insights_enabled", "description", "engine",
                     "resources")


def plain(value: Any) -> Any:
    """Marked containers -> plain dicts and lists (specs are compared by value and type)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def settings_for(manifest: Manifest) -> BackendSettings:
    data = manifest.data
    tags = {"managed-by": "rtsctl", OWNER_TAG: manifest.name}
    return BackendSettings(provider=plain(data.get("provider") or {"kind": "local"}),
                           resource_group=data["resource_group"], workspace=data["workspace"]["name"],
                           manifest_path=manifest.path, tags=tags, owner=manifest.name)


def with_current_environment(observed: Observed | None, res: Resource) -> Observed | None:
    """A deployment as observed, its environment digest read as the manifest's when it is an alias of it (the
    same files as an earlier rtsctl digested them): an upgrade never rolls a deployment out for nothing."""
    env, wanted = (observed.spec.get("environment") if observed else None), res.spec.get("environment")
    if isinstance(env, dict) and wanted:
        env["digest"] = current(env.get("digest"), wanted["digest"], res.inputs.get("environment_aliases") or ())
    return observed


def build_resources(manifest: Manifest) -> list[Resource]:
    """Every resource the manifest declares, in declaration order."""
    data = manifest.data
    provider = data.get("provider") or {}
    location = provider.get("location")

    def source(*path: str | int) -> Source:
        return Source(manifest.display, line_of(data, list(path)))

    def pick(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
        return {k: plain(mapping[k]) for k in keys if k in mapping}

    rg = data["resource_group"]
    out: list[Resource] = [Resource("resource_group", rg, {"location": location} if location else {},
                                    source=source("resource_group"))]
    ws = data["workspace"]
    workspace = Resource("workspace", ws["name"],
                         {**({"location": location} if location else {}),
                          **pick(ws, "experiment_name", "description", "tags")},
                         depends_on=(f"resource_group.{rg}",), source=source("workspace"))
    out.append(workspace)
    if isinstance(data.get("load_testing"), dict):
        testing = data["load_testing"]
        where = testing.get("location") or location
        out.append(Resource("load_testing", testing["name"],
                            {**({"location": where} if where else {}), **pick(testing, "description", "tags")},
                            inputs={"test": testing.get("test")}, depends_on=(f"resource_group.{rg}",),
                            source=source("load_testing")))

    model_digests: dict[str, str] = {}
    for i, model in enumerate(data.get("models", [])):
        path = manifest.resolve_path(model["path"])
        model_digests[model["name"]] = digest_path(path)
        out.append(Resource("model", model["name"],
                            {"type": model.get("type", "custom_model"), "digest": model_digests[model["name"]],
                             **pick(model, "description")},
                            inputs={"path": path}, depends_on=(workspace.address,), source=source("models", i)))

    env_digests: dict[str, str] = {}
    env_aliases: dict[str, list[str]] = {}  # the digest earlier rtsctl versions gave the same files (conda bytes)
    for i, env in enumerate(data.get("environments", [])):
        inputs: dict[str, Any] = {}
        parts, legacy = [env.get("image", "")], [env.get("image", "")]
        if "conda_file" in env:
            inputs["conda_file"] = manifest.resolve_path(env["conda_file"])
            text = read_text(inputs["conda_file"])  # validate checked it: regular, bounded, UTF-8
            parts.append(conda_part(text))
            legacy.append(text)
        if "build" in env:
            inputs["build_path"] = manifest.resolve_path(env["build"]["path"])
            inputs["dockerfile_path"] = env["build"].get("dockerfile_path", "Dockerfile")
            parts += [inputs["dockerfile_path"], digest_path(inputs["build_path"])]
            legacy += parts[-2:]
        env_digests[env["name"]] = digest_text(*parts)
        if legacy != parts:
            inputs["digest_aliases"] = env_aliases[env["name"]] = [digest_text(*legacy)]
        out.append(Resource("environment", env["name"],
                            {**pick(env, "image", "description"), "digest": env_digests[env["name"]]},
                            inputs=inputs, depends_on=(workspace.address,), source=source("environments", i)))

    for i, compute in enumerate(data.get("computes", [])):
        out.extend(_compute_resources(manifest, compute, i, rg, location, workspace.address, source("computes", i)))

    for e, endpoint in enumerate(data["endpoints"]):
        out.extend(_endpoint_resources(manifest, endpoint, e, workspace.address, model_digests, env_digests, source,
                                       env_aliases))
    return out


def _compute_resources(manifest: Manifest, compute: dict[str, Any], index: int, rg: str, location: str | None,
                       workspace: str, src: Source) -> list[Resource]:
    if compute["type"] != "kubernetes":
        spec = {"type": compute["type"], **({"max_instances": compute["max_instances"]}
                                            if "max_instances" in compute else {})}
        return [Resource("compute", compute["name"], spec, depends_on=(workspace,), source=src)]
    cluster = compute["cluster"]
    cluster_rg = cluster.get("resource_group", rg)
    existing = bool(cluster.get("existing", False))
    aks_spec = {"resource_group": cluster_rg, **({"location": location} if location and not existing else {}),
                **{k: cluster[k] for k in ("node_count", "vm_size", "kubernetes_version") if k in cluster}}
    aks = Resource("aks_cluster", cluster["name"], aks_spec, inputs={"existing": existing},
                   depends_on=() if existing or cluster_rg != rg else (f"resource_group.{rg}",), source=src)
    extension = _extension_resource(manifest, compute, index, cluster_rg, existing, aks.address, src)
    attach = Resource("compute", compute["name"],
                      {"type": "kubernetes", "namespace": compute.get("namespace", "azureml"),
                       "cluster": cluster["name"], "cluster_resource_group": cluster_rg},
                      depends_on=(workspace, extension.address), source=src)
    return [aks, extension, attach]


def _extension_resource(manifest: Manifest, compute: dict[str, Any], index: int, cluster_rg: str, existing: bool,
                        aks: str, src: Source) -> Resource:
    """The AzureML extension on the cluster, with the inference settings the Azure CLI would send.

    Spec `configuration_settings` holds what is compared: the manifest's own settings plus, on a cluster
    rtsctl creates, the inference defaults (on an adopted cluster only what the manifest says, so an
    extension someone else configured is not rewritten). TLS material never enters the spec: the files are
    inputs, read and sent as protected settings at apply time; only their digest is compared (sensitive).
    """
    ext = plain(compute.get("extension") or {})
    where = ["computes", index, "extension"]

    def fail(message: str, *path: str) -> None:
        raise ManifestError(message, manifest.display, line_of(manifest.data, [*where, *path]) or src.line,
                            field_path([*where, *path]))

    tls = ext.get("tls") or {}
    declared: dict[str, Any] = {str(k): v for k, v in (ext.get("configuration_settings") or {}).items()}
    settings: dict[str, Any] = {}
    if not existing or "allow_insecure_connections" in ext or tls:
        # dev/test default: HTTP scoring (the docs' AKS proof-of-concept command); `tls` turns HTTPS on
        settings["allowInsecureConnections"] = bool(ext.get("allow_insecure_connections", not tls))
    if not existing or "inference_router_service_type" in ext:
        settings["inferenceRouterServiceType"] = ext.get("inference_router_service_type", "LoadBalancer")
    if not existing:
        settings["enableInference"] = True
    inputs: dict[str, Any] = {"existing": existing, "name": ext.get("name")}
    if settings.get("allowInsecureConnections"):
        inputs["warnings"] = ["allowInsecureConnections=true: endpoints on this cluster score over plain HTTP "
                              "(dev/test only); give extension.tls for HTTPS"]
    spec: dict[str, Any] = {}
    if tls:
        if settings.get("allowInsecureConnections"):
            fail("tls and allow_insecure_connections: true exclude each other (HTTPS or plain HTTP)",
                 "allow_insecure_connections")
        settings["sslCname"] = tls["cname"]
        if "secret" in tls:
            settings["scoringFe.sslSecret"] = tls["secret"]
        else:
            files, texts = {}, []
            for key in ("cert_file", "key_file"):
                path = manifest.resolve_path(tls[key])
                try:  # regular, bounded, checked before reading (no FIFO or /dev/zero read into memory)
                    text = read_text(path, MAX_PEM_BYTES)
                except FileProblem as exc:
                    fail(f"{tls[key]}: {str(exc).removesuffix(f' ({path})')}", "tls", key)
                if not text.isascii():
                    fail(f"{tls[key]} is not a PEM file (PEM is ASCII text)", "tls", key)
                texts.append(text)
                files[key] = text
            inputs["tls_pem"] = files  # the bytes checked here are the bytes sent: no second read at apply time
            spec["tls_digest"] = digest_text(*texts)
    return Resource("k8s_extension", compute["cluster"]["name"],
                    {"cluster": compute["cluster"]["name"], "cluster_resource_group": cluster_rg,
                     "extension_type": AZUREML_EXTENSION, "configuration_settings": {**settings, **declared},
                     **spec},
                    inputs=inputs, depends_on=(aks,), source=src)


def _endpoint_resources(manifest: Manifest, endpoint: dict[str, Any], e: int, workspace: str,
                        model_digests: dict[str, str], env_digests: dict[str, str], source,
                        env_aliases: dict[str, list[str]]) -> list[Resource]:
    ep = endpoint["name"]
    # compute is always in the spec (None: managed), so switching managed <-> kubernetes is a replacement
    spec = {"auth_mode": endpoint.get("auth_mode", "key"), "compute": endpoint.get("compute"),
            **{k: plain(endpoint[k]) for k in ("description", "tags") if k in endpoint}}
    deps = (workspace,) + ((f"compute.{endpoint['compute']}",) if "compute" in endpoint else ())
    out = [Resource("endpoint", ep, spec, inputs={"smoke_test": plain(endpoint.get("smoke_test")),
                                                 "rollout": plain(endpoint.get("rollout"))},
                    depends_on=deps, source=source("endpoints", e))]
    dep_addresses = []
    for d, dep in enumerate(endpoint["deployments"]):
        code_path = manifest.resolve_path(dep["code_configuration"]["code"])
        dspec: dict[str, Any] = {
            "endpoint": ep,
            "model": {"name": dep["model"], "digest": model_digests[dep["model"]]},
            "code": {"digest": digest_path(code_path)},
            "scoring_script": dep["code_configuration"]["scoring_script"],
            "instance_count": dep.get("instance_count", 1),
            **{k: plain(dep[k]) for k in DEPLOYMENT_FIELDS if k in dep},
        }
        ddeps = [f"endpoint.{ep}", f"model.{dep['model']}"]
        if "environment" in dep:
            dspec["environment"] = {"name": dep["environment"], "digest": env_digests[dep["environment"]]}
            ddeps.append(f"environment.{dep['environment']}")
        if "environment_variables" in dspec:
            dspec["environment_variables"] = {k: str(v) for k, v in dspec["environment_variables"].items()}
        inputs = {"code_path": code_path, "environment_aliases": env_aliases.get(dep.get("environment"), []),
                  "smoke_test": plain(dep.get("smoke_test"))}  # its own smoke test overrides the endpoint's
        resource = Resource("deployment", f"{ep}/{dep['name']}", dspec, inputs=inputs,
                            depends_on=tuple(ddeps), source=source("endpoints", e, "deployments", d))
        out.append(resource)
        dep_addresses.append(resource.address)
    weights = plain(endpoint.get("traffic")) if "traffic" in endpoint else {endpoint["deployments"][0]["name"]: 100}
    rollout = plain(endpoint.get("rollout"))
    if rollout and "request" not in (rollout.get("gate") or {}) and endpoint.get("smoke_test"):
        rollout["request"] = plain(endpoint["smoke_test"]["request"])  # the gate's default body
    out.append(Resource("traffic", ep, {"weights": weights}, inputs={"rollout": rollout},
                        depends_on=(f"endpoint.{ep}", *dep_addresses),
                        source=source("endpoints", e, "traffic") if "traffic" in endpoint else source("endpoints", e)))
    return out

