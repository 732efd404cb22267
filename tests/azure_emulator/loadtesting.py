"""Azure Load Testing: the ARM resource Microsoft.LoadTestService/loadTests and its data plane, whose Locust test
runs RUN FOR REAL (locust_engine.py) and report what Locust measured (loadtest_results.py).

What a client must know (host names, versions, conventions):
  * ARM: PUT/PATCH/GET/DELETE/list `.../providers/Microsoft.LoadTestService/loadTests/{name}` (azure-mgmt-loadtesting
    1.0.0 sends api-version 2022-12-01; create/update/delete are long-running like every emulated PUT -- spec
    LoadTestService.Management examples/2022-12-01/LoadTests_CreateOrUpdate.json answers 201 +
    Azure-AsyncOperation). `properties.dataPlaneURI` is `{guid}.{region}.cnt-prod.loadtesting.azure.com`, WITHOUT a
    scheme (azure-developer-loadtesting README "Data-Plane Endpoint": "00000000-0000-0000-0000-000000000000.aaa.cnt-
    prod.loadtesting.azure.com ... followed by aaa which is the Azure region of the resource"; the clients take it
    as `endpoint` and add https://). identity SystemAssigned / UserAssigned get principalId/tenantId/clientId as in
    that example. `location` must be one of REGIONS (ARM's LocationNotAvailableForResourceType otherwise).
  * data plane: host = dataPlaneURI, through the emulator's CONNECT proxy (certificate `*.{region}.cnt-prod.
    loadtesting.azure.com` for every region in REGIONS); bearer tokens for `https://cnt-prod.loadtesting.azure.com`
    (the SDKs' default credential scope `.../.default`) else 401. Any api-version is accepted and logged in
    `ctx.api_versions` (azure-developer-loadtesting 1.1.0b1 sends 2024-12-01-preview although its 1.2.0b1 changelog
    says 2025-05-01-preview; 1.2.0b1 sends 2025-11-01-preview; both know kind "Locust").
  * tests: PATCH /tests/{testId} (merge-patch; 201 create, 200 update), GET, DELETE, GET /tests. A Locust test has
    `kind: "Locust"`, `loadTestConfiguration.engineInstances` (1-400, spec; the emulator RUNS at most
    locust_engine.MAX_LOCAL_ENGINES), optional `regionalLoadTestConfig` [{region, engineInstances}] summing to
    engineInstances (engines all run locally; no regionalStatistics), `environmentVariables`, `secrets`
    {NAME: {type: AKV_SECRET_URI, value: "https://{vault}.vault.azure.net/secrets/{name}[/{version}]"}} and
    `passFailCriteria.passFailMetrics`. GET shows a secret's reference, never a value (SECRET_VALUE secrets are
    shown without their value: guess).
  * files: PUT /tests/{testId}/files/{fileName}?fileType=TEST_SCRIPT (the locustfile; JMX_FILE for JMeter),
    ADDITIONAL_ARTIFACTS (placed beside the script), USER_PROPERTIES (for Locust: a Locust config file, passed as
    --config), body application/octet-stream, at most 50 MB (SDK docstring). Scripts answer 201 VALIDATION_INITIATED
    and turn VALIDATION_SUCCESS (or VALIDATION_FAILURE when Python cannot parse the script: guess) from the second
    GET on, at least VALIDATION_SECONDS later, which is what begin_upload_test_file polls (its ValidationCheckPoller
    reads `validationStatus`; pass `_polling_interval=` to poll faster than its 5 s); other files answer
    VALIDATION_NOT_REQUIRED (recording test_run_ops.pyTestRunOpstest_get_metrics.json). File urls are SAS-shaped
    blob urls served by the emulator's blob route (expire 10 min after the answer: same recording).
  * engines: every engine gets the test's (and run's) `environmentVariables` and one variable per secret, named as
    the key of `secrets`, holding the Key Vault value (read with the load test's managed identity: the resource
    must have a SystemAssigned identity, or the UserAssigned `keyvaultReferenceIdentityId`; RBAC on the vault is
    not checked). LOCUST_USERS (per engine), LOCUST_SPAWN_RATE (per engine), LOCUST_RUN_TIME, LOCUST_HOST as
    environment variables set the load (see locust_engine.py).
  * runs: PATCH /test-runs/{testRunId} {testId, displayName?, description?, environmentVariables?, secrets?,
    passFailCriteria?} -> 201 status ACCEPTED; then PROVISIONING, CONFIGURING, EXECUTING (engines running),
    DEPROVISIONING, DONE -- or FAILED with errorDetails [{message}], or CANCELLING then CANCELLED after
    POST /test-runs/{id}:stop (spec enum Status; begin_test_run's TestRunStatusPoller stops at DONE/FAILED/
    CANCELLED). A finished run has testRunStatistics, testResult, passFailCriteria with actualValue/result,
    virtualUsers, startDateTime/endDateTime, duration (ms), portalUrl, and testArtifacts.outputArtifacts
    resultFileInfo `csv.zip` (Locust's results_stats.csv, results_stats_history.csv, results_failures.csv,
    results_exceptions.csv) and logsFileInfo `logs.zip` (master.log, engine{N}.log), downloadable by their urls
    (expire 1 h: recording above). Metrics: GET /test-runs/{id}/metric-namespaces, GET .../metric-definitions?
    metricNamespace=LoadTestRunMetrics, POST .../metrics?metricname=&metricNamespace=&timespan={start}/{end}
    [&aggregation=&interval=PT5S] body {"filters": [{"name": "SamplerName", "values": [...]}]}, GET
    .../metric-dimensions/SamplerName/values (loadtest_results.py).
Errors are Azure.Core's `{"error": {"code", "message"}}` with header x-ms-error-code (spec ErrorResponse); codes and
texts: guess (TestNotFound, TestRunNotFound, BadRequest, Conflict). Not modelled: JMeter and URL tests (stored, but
their runs fail), app components, server metrics, test profiles, triggers, notification rules, autoStopCriteria,
quick-start tests, ZIPPED_ARTIFACTS extraction, persistence of tests and runs across an emulator restart.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from . import keyvault, loadtest_results as results
from .blob import API_VERSION as BLOB_API_VERSION, Blob
from .context import Context
from .errors import ArmError, json_response
from .ids import ArmPath, key
from .kinds import Kind, deep_merge, props, register
from .locust_engine import START_TIMEOUT, STOP_GRACE, EngineError, LocustRun, engine_env, run_seconds, MAX_RUN_SECONDS

HOST_SUFFIX = ".cnt-prod.loadtesting.azure.com"
AUDIENCE = "https://cnt-prod.loadtesting.azure.com"
# Regions where the emulator offers Load Testing (guess: a subset of learn.microsoft.com/azure/load-testing/
# overview-what-is-azure-load-testing "Region availability"); the TLS certificate names each one.
REGIONS = ("eastus", "eastus2", "westus", "westus2", "westus3", "centralus", "northcentralus", "southcentralus",
           "canadacentral", "brazilsouth", "northeurope", "westeurope", "uksouth", "francecentral",
           "germanywestcentral", "swedencentral", "switzerlandnorth", "norwayeast", "italynorth", "polandcentral",
           "australiaeast", "japaneast", "koreacentral", "southeastasia", "eastasia", "centralindia",
           "southafricanorth", "uaenorth", "israelcentral")
ID_RE = re.compile(r"^[a-z0-9_-]{2,50}$")              # spec: testId / testRunId pattern and lengths
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")   # guess: POSIX names (values reach the engines' env)
MAX_FILE_BYTES = 50 * 1024 * 1024                      # SDK: "File size can't be more than 50 MB"
MAX_FILES = 50                                         # guess
MAX_VARIABLES = 200                                    # guess (env vars + secrets of a test)
MAX_VALUE_CHARS = 32 * 1024                            # guess
MAX_ENGINES = 400                                      # SDK model LoadTestConfiguration: "range of 1-400"
VALIDATION_SECONDS = 0.2                               # guess (the service validates in seconds: recording)
FILE_URL_SECONDS = 600                                 # recording: expireDateTime = answer + 10 min
OUTPUT_URL_SECONDS = 3600                              # recording: output artifacts expire 1 h later
TERMINAL = ("DONE", "FAILED", "CANCELLED")
SCRIPT_TYPES = ("TEST_SCRIPT", "JMX_FILE")
FILE_TYPES = ("JMX_FILE", "USER_PROPERTIES", "ADDITIONAL_ARTIFACTS", "ZIPPED_ARTIFACTS", "URL_TEST_CONFIG",
              "TEST_SCRIPT")


def now_iso(ts: float | None = None) -> str:
    return results.iso(time.time() if ts is None else ts)


class LoadTestKind(Kind):
    type_key = "microsoft.loadtestservice/loadtests"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        location = str(out.get("location") or "").replace(" ", "").lower()
        if location not in REGIONS:
            raise ArmError(400, "LocationNotAvailableForResourceType",
                           f"The provided location '{out.get('location')}' is not available for resource type "
                           f"'Microsoft.LoadTestService/loadTests'. List of available regions for the resource type "
                           f"is '{','.join(REGIONS)}'.")
        old = existing.body if existing else {}
        out["identity"] = self.identity(ctx, out.get("identity"), old.get("identity"))
        p = props(out)
        p["dataPlaneURI"] = props(old).get("dataPlaneURI") if old else f"{uuid.uuid4()}.{location}{HOST_SUFFIX}"
        return out, None

    @staticmethod
    def identity(ctx: Context, wanted: dict | None, old: dict | None) -> dict:
        """Managed identities as the spec example shows them: principalId/tenantId for SystemAssigned, clientId/
        principalId per user-assigned id (kept across updates)."""
        wanted, old = dict(wanted or {"type": "None"}), old or {}
        kinds = {k.strip().lower() for k in str(wanted.get("type") or "None").split(",")}
        out = {"type": wanted.get("type") or "None"}
        if "systemassigned" in kinds:
            out["principalId"] = old.get("principalId") or str(uuid.uuid4())
            out["tenantId"] = ctx.settings.tenant_id
        if "userassigned" in kinds:
            before = {k.lower(): v for k, v in (old.get("userAssignedIdentities") or {}).items()}
            out["userAssignedIdentities"] = {
                rid: before.get(rid.lower()) or {"clientId": str(uuid.uuid4()), "principalId": str(uuid.uuid4())}
                for rid in (wanted.get("userAssignedIdentities") or {})}
        return out

    def on_deleted(self, ctx, removed_ids):
        if ctx.loadtesting is not None:
            ctx.loadtesting.forget(removed_ids)


register(LoadTestKind())


def _error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status,
                         headers={"x-ms-error-code": code})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class TestFile:
    name: str
    file_type: str
    uploaded: float
    status: str
    details: str | None = None
    gets: int = 0


@dataclass
class TestRecord:
    body: dict
    files: dict[str, TestFile] = field(default_factory=dict)   # by file name


@dataclass
class RunRecord:
    body: dict
    resource_id: str
    engine: LocustRun | None = None
    task: asyncio.Task | None = None
    stop_requested: bool = False
    history: list[dict] = field(default_factory=list)


@dataclass
class ResourceState:
    resource_id: str
    tests: dict[str, TestRecord] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)


class LoadTestingApi:
    """Tests, files and runs per load testing resource (by data plane host), in memory."""

    def __init__(self, ctx: Context, authority, workdir: Path):
        self.ctx, self.authority, self.workdir = ctx, authority, workdir
        self.states: dict[str, ResourceState] = {}     # data plane host -> state

    # -- plumbing ------------------------------------------------------------------------------------
    def resource_for(self, host: str):
        found = self.ctx.store.find(lambda r: ArmPath.parse(r.id).type_key() == LoadTestKind.type_key
                                    and str(props(r.body).get("dataPlaneURI", "")).lower() == host)
        return found[0] if found else None

    def account(self, host: str) -> str:
        """The blob account holding a resource's files (guess: the service's own storage, one per resource)."""
        return "lt" + re.sub(r"[^a-z0-9]", "", host.split(".")[0])[:20]

    def blob_url(self, host: str, container: str, name: str, seconds: int) -> str:
        expiry = now_iso(time.time() + seconds)
        return (f"https://{self.account(host)}.blob.core.windows.net/{container}/{quote(name)}?sv={BLOB_API_VERSION}"
                f"&se={quote(expiry)}&sr=b&sp=r&sig=emulated")

    def forget(self, removed_ids: list[str]) -> None:
        gone = {key(i) for i in removed_ids}
        for host, state in list(self.states.items()):
            if key(state.resource_id) in gone:
                del self.states[host]
                for run in state.runs.values():
                    self._cancel(run)

    def _cancel(self, run: RunRecord) -> None:
        run.stop_requested = True
        if run.engine is not None:
            asyncio.get_running_loop().create_task(run.engine.kill())
        if run.task is not None and not run.task.done():
            run.task.cancel()

    async def close(self) -> None:
        runs = [run for state in self.states.values() for run in state.runs.values()]
        for run in runs:
            if run.task is not None and not run.task.done():
                run.task.cancel()
        await asyncio.gather(*(r.task for r in runs if r.task is not None), return_exceptions=True)
        await asyncio.gather(*(r.engine.kill() for r in runs if r.engine is not None), return_exceptions=True)

    # -- entry ----------------------------------------------------------------------------------------
    async def handle(self, request: web.Request, host: str) -> web.Response:
        self.ctx.api_versions.append((request.method, f"//{host}{request.path}", request.query.get("api-version")))
        problem = self.authority.verify(request.headers.get("Authorization"), audience=AUDIENCE)
        if problem is not None:
            await request.read()
            return _error(401, "AuthenticationFailed", problem)
        resource = self.resource_for(host)
        if resource is None:
            return _error(404, "ResourceNotFound", f"No load testing resource has the data plane '{host}'.")
        state = self.states.setdefault(host, ResourceState(resource.id))
        segs = [s for s in request.path.split("/") if s]
        try:
            return await self.route(request, host, state, resource, segs)
        except ApiError as err:
            return _error(err.status, err.code, err.message)

    async def route(self, request, host, state, resource, segs) -> web.Response:
        method = request.method
        if segs == ["tests"] and method == "GET":
            return json_response({"value": [self.test_view(host, t) for t in state.tests.values()]})
        if segs[:1] == ["tests"] and len(segs) == 2:
            if method == "PATCH":
                return await self.put_test(request, host, state, segs[1])
            test = self.test(state, segs[1])
            if method == "GET":
                return json_response(self.test_view(host, test))
            if method == "DELETE":
                del state.tests[segs[1]]
                return web.Response(status=204)
        if segs[:1] == ["tests"] and len(segs) == 3 and segs[2] == "files" and method == "GET":
            test = self.test(state, segs[1])
            return json_response({"value": [self.file_view(host, segs[1], f) for f in test.files.values()]})
        if segs[:1] == ["tests"] and len(segs) == 4 and segs[2] == "files":
            return await self.file_route(request, host, state, segs[1], segs[3])
        if segs == ["test-runs"] and method == "GET":
            wanted = request.query.get("testId")
            runs = [r for r in state.runs.values() if not wanted or r.body.get("testId") == wanted]
            return json_response({"value": [self.run_view(r) for r in runs]})
        if segs[:1] == ["test-runs"] and len(segs) == 2:
            run_id, _, action = segs[1].partition(":")
            if action == "stop" and method == "POST":
                return self.stop(state, run_id)
            if action:
                raise ApiError(404, "NotFound", f"No action '{action}' on test runs.")
            if method == "PATCH":
                return await self.put_run(request, host, state, resource, run_id)
            run = self.run(state, run_id)
            if method == "GET":
                return json_response(self.run_view(run))
            if method == "DELETE":
                self._cancel(run)
                del state.runs[run_id]
                return web.Response(status=204)
        if segs[:1] == ["test-runs"] and len(segs) >= 3:
            return await self.run_data(request, state, segs)
        raise ApiError(404, "NotFound", f"The emulator has no Load Testing route for {method} {request.path}.")

    def test(self, state: ResourceState, test_id: str) -> TestRecord:
        found = state.tests.get(test_id)
        if found is None:
            raise ApiError(404, "TestNotFound", f"Test couldn't find with given identifier {test_id}")
        return found

    def run(self, state: ResourceState, run_id: str) -> RunRecord:
        found = state.runs.get(run_id)
        if found is None:
            raise ApiError(404, "TestRunNotFound", f"Test run not found with given name \"{run_id}\".")
        return found

    @staticmethod
    async def body_of(request: web.Request) -> dict:
        raw = await request.read()
        try:
            value = json.loads(raw or b"{}")
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"The request body is not valid JSON: {exc}")
        if not isinstance(value, dict):
            raise ApiError(400, "BadRequest", "The request body must be a JSON object.")
        return value

    # -- tests ----------------------------------------------------------------------------------------
    async def put_test(self, request, host: str, state: ResourceState, test_id: str) -> web.Response:
        if not ID_RE.match(test_id):
            raise ApiError(400, "BadRequest", f"testId '{test_id}' must be 2-50 characters of a-z, 0-9, '_' or '-'.")
        patch = await self.body_of(request)
        existing = state.tests.get(test_id)
        body = deep_merge(existing.body if existing else {}, patch)
        self.check_test(body, self.resource_for(host))
        stamp, who = now_iso(), self.ctx.settings.client_id
        body.update({"testId": test_id, "lastModifiedDateTime": stamp, "lastModifiedBy": who})
        body.setdefault("createdDateTime", stamp)
        body.setdefault("createdBy", who)
        body.setdefault("kind", "JMX")                   # guess: a test without kind is a JMeter test
        body.setdefault("keyvaultReferenceIdentityType", "SystemAssigned")   # recording: what the SDK tests send
        config = body.setdefault("loadTestConfiguration", {})
        config.setdefault("splitAllCSVs", False)         # recording: defaults shown by the service
        config.setdefault("quickStartTest", False)
        if existing is None:
            state.tests[test_id] = TestRecord(body)
        else:
            existing.body = body
        return json_response(self.test_view(host, state.tests[test_id]), status=200 if existing else 201)

    def check_test(self, body: dict, resource) -> None:
        def bad(message: str) -> ApiError:
            return ApiError(400, "BadRequest", message)

        if body.get("kind") not in (None, "URL", "JMX", "Locust"):
            raise bad(f"kind '{body.get('kind')}' is not one of URL, JMX, Locust.")
        if len(str(body.get("description") or "")) > 100:
            raise bad("description must be at most 100 characters.")
        if body.get("displayName") is not None and not 2 <= len(str(body["displayName"])) <= 50:
            raise bad("displayName must be 2-50 characters.")
        config = body.get("loadTestConfiguration") or {}
        engines = config.get("engineInstances", 1)
        if not isinstance(engines, int) or not 1 <= engines <= MAX_ENGINES:
            raise bad(f"engineInstances must be an integer from 1 to {MAX_ENGINES}.")
        regional = config.get("regionalLoadTestConfig")
        if regional:
            if not isinstance(regional, list) or not all(isinstance(r, dict) for r in regional):
                raise bad("regionalLoadTestConfig must be a list of {region, engineInstances}.")
            regions = [str(r.get("region", "")).lower() for r in regional]
            if any(r not in REGIONS for r in regions):
                raise bad(f"regionalLoadTestConfig names a region Load Testing does not offer: {regions}.")
            # guess: the regional split must account for every engine, and include the resource's own region
            if sum(int(r.get("engineInstances") or 0) for r in regional) != engines:
                raise bad("The sum of engineInstances in regionalLoadTestConfig must equal engineInstances.")
            if resource is not None and str(resource.body.get("location", "")).lower() not in regions:
                raise bad("regionalLoadTestConfig must include the region of the load testing resource.")
        variables = body.get("environmentVariables") or {}
        secrets = body.get("secrets") or {}
        if not isinstance(variables, dict) or not isinstance(secrets, dict):
            raise bad("environmentVariables and secrets must be objects.")
        if len(variables) + len(secrets) > MAX_VARIABLES:
            raise bad(f"At most {MAX_VARIABLES} environment variables and secrets.")
        for name, value in variables.items():
            if not ENV_NAME_RE.match(name) or not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
                raise bad(f"environmentVariables['{name}']: the name must be a valid environment variable name "
                          f"and the value a string of at most {MAX_VALUE_CHARS} characters.")
        for name, secret in secrets.items():
            if not ENV_NAME_RE.match(name) or not isinstance(secret, dict):
                raise bad(f"secrets['{name}']: the name must be a valid environment variable name.")
            if secret.get("type") == "AKV_SECRET_URI" and keyvault.parse_secret_uri(secret.get("value")) is None:
                raise bad(f"secrets['{name}']: '{secret.get('value')}' is not a Key Vault secret identifier.")
            if secret.get("type") not in ("AKV_SECRET_URI", "SECRET_VALUE"):
                raise bad(f"secrets['{name}']: type must be AKV_SECRET_URI or SECRET_VALUE.")
        for key_, criterion in ((body.get("passFailCriteria") or {}).get("passFailMetrics") or {}).items():
            problem = results.criterion_problem(criterion if isinstance(criterion, dict) else {})
            if problem:
                raise bad(f"passFailCriteria.passFailMetrics['{key_}']: {problem}.")

    @staticmethod
    def hide_secret_values(secrets: dict | None) -> dict:
        return {name: ({"type": s.get("type")} if s.get("type") == "SECRET_VALUE" else dict(s))
                for name, s in (secrets or {}).items()}

    def test_view(self, host: str, test: TestRecord) -> dict:
        out = json.loads(json.dumps(test.body))
        if "secrets" in out:
            out["secrets"] = self.hide_secret_values(out["secrets"])
        test_id = out["testId"]
        artifacts: dict = {"additionalFileInfo": []}
        for f in test.files.values():
            view = self.file_view(host, test_id, f, count_get=False)
            if f.file_type in SCRIPT_TYPES:
                artifacts["testScriptFileInfo"] = view
            elif f.file_type == "USER_PROPERTIES":
                artifacts["userPropFileInfo"] = view
            elif f.file_type == "URL_TEST_CONFIG":
                artifacts["urlTestConfigFileInfo"] = view
            else:
                artifacts["additionalFileInfo"].append(view)
        out["inputArtifacts"] = artifacts
        return out

    # -- files ----------------------------------------------------------------------------------------
    def file_view(self, host: str, test_id: str, f: TestFile, count_get: bool = True) -> dict:
        if count_get:
            f.gets += 1
        if f.status == "VALIDATION_INITIATED" and f.gets >= 2 and time.time() - f.uploaded >= VALIDATION_SECONDS:
            f.status = "VALIDATION_FAILURE" if f.details else "VALIDATION_SUCCESS"
        out = {"url": self.blob_url(host, test_id, f.name, FILE_URL_SECONDS), "fileName": f.name,
               "fileType": f.file_type, "expireDateTime": now_iso(time.time() + FILE_URL_SECONDS),
               "validationStatus": f.status}
        if f.status == "VALIDATION_FAILURE":
            out["validationFailureDetails"] = f.details
        return out

    async def file_route(self, request, host: str, state: ResourceState, test_id: str, name: str) -> web.Response:
        test = self.test(state, test_id)
        if request.method == "PUT":
            return await self.upload(request, host, test, test_id, name)
        found = test.files.get(name)
        if found is None:
            raise ApiError(404, "FileNotFound", f"File with given name {name} not found for test {test_id}.")
        if request.method == "GET":
            return json_response(self.file_view(host, test_id, found))
        if request.method == "DELETE":
            del test.files[name]
            self.ctx.blobs.delete(self.account(host), test_id, name)
            return web.Response(status=204)
        raise ApiError(405, "BadRequest", f"{request.method} is not supported on test files.")

    async def upload(self, request, host: str, test: TestRecord, test_id: str, name: str) -> web.Response:
        if "/" in name or name in (".", "..") or not 1 <= len(name) <= 200:
            raise ApiError(400, "BadRequest", f"'{name}' is not a valid file name.")
        data = await request.content.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ApiError(400, "BadRequest", "File size can't be more than 50 MB.")
        file_type = request.query.get("fileType") or ("JMX_FILE" if name.endswith(".jmx") else "ADDITIONAL_ARTIFACTS")
        if file_type not in FILE_TYPES:
            raise ApiError(400, "BadRequest", f"fileType '{file_type}' is not one of {', '.join(FILE_TYPES)}.")
        if len(test.files) >= MAX_FILES and name not in test.files:
            raise ApiError(400, "BadRequest", f"A test holds at most {MAX_FILES} files.")
        kind = test.body.get("kind")
        if (file_type == "TEST_SCRIPT") != (kind in ("Locust", "URL")) and file_type in SCRIPT_TYPES:
            raise ApiError(400, "BadRequest", f"fileType {file_type} does not fit a test of kind {kind} "
                                              f"(Locust scripts are TEST_SCRIPT, JMeter scripts JMX_FILE).")
        details, status = None, "VALIDATION_NOT_REQUIRED"
        if file_type in SCRIPT_TYPES:
            status = "VALIDATION_INITIATED"
            if kind == "Locust":
                try:
                    ast.parse(data.decode("utf-8"), filename=name)     # parsed only, never run here
                except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
                    details = f"The Locust script could not be parsed: {exc}"
            for old in [f for f in test.files.values() if f.file_type in SCRIPT_TYPES and f.name != name]:
                del test.files[old.name]              # one test script per test
        self.ctx.blobs.put(self.account(host), test_id, name, Blob(data, {}, "application/octet-stream"))
        test.files[name] = TestFile(name, file_type, time.time(), status, details)
        return json_response(self.file_view(host, test_id, test.files[name], count_get=False), status=201)

    # -- runs -----------------------------------------------------------------------------------------
    def run_view(self, run: RunRecord) -> dict:
        out = json.loads(json.dumps(run.body))
        if "secrets" in out:
            out["secrets"] = self.hide_secret_values(out["secrets"])
        return out

    async def put_run(self, request, host: str, state: ResourceState, resource, run_id: str) -> web.Response:
        if not ID_RE.match(run_id):
            raise ApiError(400, "BadRequest", f"testRunId '{run_id}' must be 2-50 characters of a-z, 0-9, '_' or '-'.")
        patch = await self.body_of(request)
        existing = state.runs.get(run_id)
        if existing is not None:      # guess: an existing run takes new display fields only
            existing.body.update({k: patch[k] for k in ("displayName", "description") if k in patch})
            return json_response(self.run_view(existing))
        test = self.test(state, str(patch.get("testId") or ""))
        script = next((f for f in test.files.values() if f.file_type in SCRIPT_TYPES), None)
        if script is None or script.status not in ("VALIDATION_SUCCESS", "VALIDATION_INITIATED"):
            raise ApiError(400, "BadRequest", f"Test {test.body['testId']} has no validated test script.")
        stamp = now_iso()
        body = {k: json.loads(json.dumps(v)) for k, v in test.body.items()
                if k in ("passFailCriteria", "autoStopCriteria", "secrets", "certificate", "environmentVariables",
                         "loadTestConfiguration", "kind", "keyvaultReferenceIdentityType",
                         "keyvaultReferenceIdentityId", "publicIPDisabled", "subnetId")}
        body["environmentVariables"] = {**body.get("environmentVariables", {}), **(patch.get("environmentVariables")
                                                                                  or {})}
        body["secrets"] = {**body.get("secrets", {}), **(patch.get("secrets") or {})}
        if patch.get("passFailCriteria"):
            body["passFailCriteria"] = patch["passFailCriteria"]
        self.check_test({**body, "loadTestConfiguration": body.get("loadTestConfiguration") or {}}, resource)
        body.update({"testRunId": run_id, "testId": test.body["testId"], "displayName": patch.get("displayName")
                     or f"TestRun_{time.strftime('%m/%d/%Y_%H:%M:%S')}", "description": patch.get("description"),
                     "status": "ACCEPTED", "executedDateTime": stamp, "createdDateTime": stamp,
                     "createdBy": self.ctx.settings.client_id, "lastModifiedDateTime": stamp,
                     "lastModifiedBy": self.ctx.settings.client_id,
                     "testArtifacts": {"inputArtifacts": self.test_view(host, test)["inputArtifacts"]},
                     "portalUrl": "https://portal.azure.com/#blade/Microsoft_Azure_CloudNativeTesting/NewReport//"
                                  f"resourceId/{quote(resource.id.lower(), safe='')}/testId/{test.body['testId']}"
                                  f"/testRunId/{run_id}"})
        run = RunRecord(body, resource.id)
        state.runs[run_id] = run
        run.task = asyncio.get_running_loop().create_task(self.execute(host, state, test, run))
        return json_response(self.run_view(run), status=201)

    def stop(self, state: ResourceState, run_id: str) -> web.Response:
        run = self.run(state, run_id)
        if run.body["status"] not in TERMINAL:
            run.stop_requested = True
            self.set_status(run, "CANCELLING")
            if run.engine is not None:
                asyncio.get_running_loop().create_task(run.engine.stop())
        return json_response(self.run_view(run))

    def set_status(self, run: RunRecord, status: str) -> None:
        run.body["status"] = status
        run.body["lastModifiedDateTime"] = now_iso()

    async def execute(self, host: str, state: ResourceState, test: TestRecord, run: RunRecord) -> None:
        folder = self.workdir / "loadtesting" / run.body["testRunId"] / uuid.uuid4().hex[:8]
        try:
            self.set_status(run, "PROVISIONING")
            values = self.engine_values(run)
            if test.body.get("kind") != "Locust":
                raise EngineError(f"the emulator runs Locust tests only (this test's kind is "
                                  f"{test.body.get('kind')}).")
            folder.mkdir(parents=True)
            script, config = self.stage_files(host, test, folder)
            from tests.locust_tool import locust_python   # the emulator is test tooling: same pinned Locust

            python = await asyncio.get_running_loop().run_in_executor(None, locust_python)
            if run.stop_requested:
                return self.finish(host, run, "CANCELLED")
            self.set_status(run, "CONFIGURING")
            engines = int((run.body.get("loadTestConfiguration") or {}).get("engineInstances") or 1)
            env = engine_env(values, self.ctx.ca_path, self.ctx.proxy_url)
            run.engine = LocustRun(folder, script, engines, env, config)
            from reconcilers.local.procs import free_port

            await run.engine.start(python, free_port())
            run.body["startDateTime"] = now_iso()
            run.engine.started = time.time()
            self.set_status(run, "CANCELLING" if run.stop_requested else "EXECUTING")
            if run.stop_requested:
                await run.engine.stop()
            limit = (run_seconds(env.get("LOCUST_RUN_TIME")) or MAX_RUN_SECONDS) + START_TIMEOUT + STOP_GRACE
            code = await run.engine.wait(limit)
            self.set_status(run, "CANCELLING" if run.stop_requested else "DEPROVISIONING")
            stats = results.statistics(run.engine.rows("stats"))
            if not stats and not run.stop_requested:
                raise EngineError(f"Locust ended (exit code {code}) without results. Master log tail:\n"
                                  f"{run.engine.log_tail()}")
            self.collect(host, run, stats)
            self.finish(host, run, "CANCELLED" if run.stop_requested else "DONE")
        except EngineError as exc:
            if run.engine is not None:
                await run.engine.kill()
                self.upload_outputs(host, run)
            run.body["errorDetails"] = [{"message": str(exc)}]
            self.finish(host, run, "FAILED")
        except asyncio.CancelledError:
            if run.engine is not None:
                await run.engine.kill()
            raise

    def engine_values(self, run: RunRecord) -> dict[str, str]:
        """Environment variables and secret values for the engines (secrets read with the load test's identity)."""
        values = dict(run.body.get("environmentVariables") or {})
        secrets = run.body.get("secrets") or {}
        if any(s.get("type") == "AKV_SECRET_URI" for s in secrets.values()):
            self.check_identity(run)
        for name, secret in secrets.items():
            if secret.get("type") == "SECRET_VALUE":
                values[name] = str(secret.get("value") or "")
                continue
            try:
                values[name] = keyvault.resolve(self.ctx, secret.get("value"))
            except KeyError as exc:
                raise EngineError(f"Key Vault reference of secret '{name}' could not be resolved: {exc.args[0]}.")
        return values

    def check_identity(self, run: RunRecord) -> None:
        """The service reads Key Vault with the resource's managed identity (how-to-parameterize-load-tests: grant the
        load testing resource's identity access to the vault); without one it cannot."""
        resource = self.ctx.store.get(run.resource_id)
        identity = (resource.body.get("identity") if resource else None) or {}
        kinds = {k.strip().lower() for k in str(identity.get("type") or "None").split(",")}
        wanted = str(run.body.get("keyvaultReferenceIdentityType") or "SystemAssigned").lower()
        if wanted == "systemassigned" and "systemassigned" not in kinds:
            raise EngineError("The load testing resource has no system-assigned managed identity to read Key Vault "
                              "secrets with (identity.type must include SystemAssigned).")
        if wanted == "userassigned":
            wanted_id = str(run.body.get("keyvaultReferenceIdentityId") or "").lower()
            if wanted_id not in {k.lower() for k in (identity.get("userAssignedIdentities") or {})}:
                raise EngineError(f"keyvaultReferenceIdentityId '{wanted_id}' is not a user-assigned identity of the "
                                  f"load testing resource.")

    def stage_files(self, host: str, test: TestRecord, folder: Path) -> tuple[str, str | None]:
        """Copy the test's files into the run folder (one folder: the service puts artifacts beside the script)."""
        script = config = None
        for f in test.files.values():
            blob = self.ctx.blobs.get(self.account(host), test.body["testId"], f.name)
            if blob is None:
                continue
            (folder / Path(f.name).name).write_bytes(blob.data)
            if f.file_type in SCRIPT_TYPES:
                if f.status == "VALIDATION_FAILURE":
                    raise EngineError(f"The test script {f.name} failed validation: {f.details}")
                script = f.name
            elif f.file_type == "USER_PROPERTIES":
                config = f.name
        if script is None:
            raise EngineError("The test has no test script.")
        return script, config

    def collect(self, host: str, run: RunRecord, stats: dict[str, dict]) -> None:
        engine = run.engine
        run.history = engine.rows("stats_history")
        run.body["testRunStatistics"] = stats
        criteria, verdict = results.judge(run.body.get("passFailCriteria"), stats)
        run.body["passFailCriteria"], run.body["testResult"] = criteria, verdict
        users = [results._num(r.get("User Count")) or 0 for r in run.history if r.get("Name") == results.LOCUST_TOTAL]
        run.body["virtualUsers"] = int(max(users)) if users else engine.users
        self.upload_outputs(host, run)

    def upload_outputs(self, host: str, run: RunRecord) -> None:
        run_id, account = run.body["testRunId"], self.account(host)
        outputs = {}
        for what, name, field_ in (("csv", "csv.zip", "resultFileInfo"), ("logs", "logs.zip", "logsFileInfo")):
            self.ctx.blobs.put(account, run_id, name, Blob(run.engine.zip_outputs(what), {}, "application/zip"))
            outputs[field_] = {"url": self.blob_url(host, run_id, name, OUTPUT_URL_SECONDS), "fileName": name,
                               "fileType": "ADDITIONAL_ARTIFACTS",
                               "expireDateTime": now_iso(time.time() + OUTPUT_URL_SECONDS),
                               "validationStatus": "VALIDATION_NOT_REQUIRED"}
        run.body.setdefault("testArtifacts", {})["outputArtifacts"] = outputs

    def finish(self, host: str, run: RunRecord, status: str) -> None:
        end = time.time()
        run.body["endDateTime"] = now_iso(end)
        if run.engine is not None and run.engine.started:
            run.body["duration"] = int((end - run.engine.started) * 1000)
        run.body.setdefault("testResult", "NOT_APPLICABLE")
        self.set_status(run, status)

    # -- run data -------------------------------------------------------------------------------------
    async def run_data(self, request, state: ResourceState, segs: list[str]) -> web.Response:
        run = self.run(state, segs[1])
        what, q = segs[2], request.query
        if what == "files" and len(segs) == 4:
            artifacts = run.body.get("testArtifacts") or {}
            infos = list((artifacts.get("outputArtifacts") or {}).values())
            infos += [v for v in (artifacts.get("inputArtifacts") or {}).values() if isinstance(v, dict)]
            infos += (artifacts.get("inputArtifacts") or {}).get("additionalFileInfo") or []
            found = next((i for i in infos if i.get("fileName") == segs[3]), None)
            if found is None:
                raise ApiError(404, "FileNotFound", f"File {segs[3]} not found for test run {segs[1]}.")
            return json_response(found)
        if what == "metric-namespaces":
            return json_response({"value": results.NAMESPACES})
        if what == "metric-definitions":
            namespace = q.get("metricNamespace")
            return json_response({"value": results.DEFINITIONS if namespace == "LoadTestRunMetrics" else []})
        if what == "metric-dimensions" and len(segs) == 5 and segs[4] == "values":
            names = sorted({r["Name"] for r in run.history if r.get("Type") and r.get("Name")})
            return json_response({"value": names if segs[3].lower() in results.DIMENSION_ALIASES else []})
        if what == "metrics" and request.method == "POST":
            return await self.metrics(request, run)
        raise ApiError(404, "NotFound", f"The emulator has no Load Testing route for {request.method} {request.path}.")

    async def metrics(self, request, run: RunRecord) -> web.Response:
        q = request.query
        name, namespace = q.get("metricname"), q.get("metricNamespace")
        definition = next((d for d in results.DEFINITIONS if d["name"] == name), None)
        if namespace != "LoadTestRunMetrics" or definition is None:
            raise ApiError(400, "BadRequest", f"Metric '{name}' is not in namespace '{namespace}' (known: "
                                              f"{[d['name'] for d in results.DEFINITIONS]} in LoadTestRunMetrics).")
        aggregation = q.get("aggregation")
        if aggregation and aggregation not in definition["supportedAggregationTypes"]:
            raise ApiError(400, "BadRequest", f"Aggregation '{aggregation}' is not supported by {name} "
                                              f"({definition['supportedAggregationTypes']}).")
        grain = results.GRAINS.get(q.get("interval") or "PT5S")
        span = results.parse_timespan(q.get("timespan"))
        if grain is None or span is None:
            raise ApiError(400, "BadRequest", "interval must be a TimeGrain (PT5S, PT10S, PT1M, PT5M, PT1H) and "
                                              "timespan '{start}/{end}' in ISO 8601.")
        samplers = None
        for item in (await self.body_of(request)).get("filters") or []:
            if str(item.get("name", "")).lower() in results.DIMENSION_ALIASES:
                samplers = [str(v) for v in item.get("values") or []][:100]
        return json_response({"value": results.series(run.history, name, aggregation, grain, span, samplers)})
