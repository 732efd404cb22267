"""Azure Load Testing: the ARM resource Microsoft.LoadTestService/loadTests and its data plane, whose Locust test
runs RUN FOR REAL (locust_engine.py) and report what Locust measured (loadtest_results.py).

What a client must know (host names, versions, conventions):
  * ARM: PUT/PATCH/GET/DELETE/list `.../providers/Microsoft.LoadTestService/loadTests/{name}` (azure-mgmt-loadtesting
    1.0.0 sends api-version 2022-12-01; create/update/delete are long-running like every emulated PUT -- spec
    LoadTestService.Management examples/2022-12-01/LoadTests_CreateOrUpdate.json answers 201 +
    Azure-AsyncOperation). `properties.dataPlaneURI` is `{guid}.{region}.cnt-prod.loadtesting.azure.com`, WITHOUT a
    scheme (azure-sdk-for-js sdk/loadtesting/load-testing-rest/README.md "Data-Plane Endpoint": "00000000-0000-0000-
    0000-000000000000.aaa.cnt-prod.loadtesting.azure.com ... followed by aaa which is the Azure region of the
    resource" -- its example abbreviates East US as `eus`, the Az.LoadTesting PowerShell docs show
    `{guid}.eastus.cnt-prod...` for a resource in eastus, which the emulator follows: a client must take the URI
    from the resource, never build it; the clients take it as `endpoint` and add https://). identity SystemAssigned
    / UserAssigned get principalId/tenantId/clientId as in that example. `location` must be one of REGIONS (ARM's
    LocationNotAvailableForResourceType otherwise).
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
    must have a SystemAssigned identity, or the UserAssigned `keyvaultReferenceIdentityId`; a vault under access
    policies must give that identity's principalId secrets `get` (PUT {vault}/accessPolicies/add), an RBAC vault --
    what azure-ai-ml's workspace template creates -- a role assignment of Key Vault Secrets User (or Officer /
    Administrator) at the vault or above: keyvault.may_read_secrets). LOCUST_USERS (per engine), LOCUST_SPAWN_RATE
    (per engine), LOCUST_RUN_TIME, LOCUST_HOST as environment variables set the load (see locust_engine.py).
  * runs: PATCH /test-runs/{testRunId} {testId, displayName?, description?, environmentVariables?, secrets?,
    passFailCriteria?} -> 201 status ACCEPTED; then PROVISIONING, CONFIGURING, EXECUTING (engines running),
    DEPROVISIONING, DONE -- or FAILED with errorDetails [{message}], or CANCELLING then CANCELLED after POST
    /test-runs/{id}:stop (spec enum Status; begin_test_run's TestRunStatusPoller stops at DONE/FAILED/CANCELLED). A
    finished run has testRunStatistics, testResult, passFailCriteria with actualValue/result, virtualUsers
    (LOCUST_USERS x engines), startDateTime/endDateTime, duration (ms), portalUrl, and testArtifacts.outputArtifacts
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
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from . import keyvault
from . import loadtest_results as results
from .blob import API_VERSION as BLOB_API_VERSION
from .blob import Blob
from .context import Context
from .errors import ArmError, json_response
from .ids import ArmPath, key
from .kinds import Kind, deep_merge, props, register
from .loadtest_model import (
    ENV_NAME_RE,
    FILE_NAME_RE,
    FILE_TYPES,
    FILE_URL_SECONDS,
    ID_RE,
    MAX_ENGINES,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_TESTS,
    MAX_VALUE_CHARS,
    MAX_VARIABLES,
    SCRIPT_TYPES,
    VALIDATION_SECONDS,
    ApiError,
    ResourceState,
    TestFile,
    TestRecord,
    now_iso,
)
from .loadtest_model import error_response as _error
from .loadtest_runs import RunsMixin

HOST_SUFFIX = ".cnt-prod.loadtesting.azure.com"
AUDIENCE = "https://cnt-prod.loadtesting.azure.com"
# Regions where the emulator offers Load Testing (guess: a subset of learn.microsoft.com/azure/load-testing/
# overview-what-is-azure-load-testing "Region availability"); the TLS certificate names each one.
REGIONS = ("eastus", "eastus2", "westus", "westus2", "westus3", "centralus", "northcentralus", "southcentralus",
           "canadacentral", "brazilsouth", "northeurope", "westeurope", "uksouth", "francecentral",
           "germanywestcentral", "swedencentral", "switzerlandnorth", "norwayeast", "italynorth", "polandcentral",
           "australiaeast", "japaneast", "koreacentral", "southeastasia", "eastasia", "centralindia",
           "southafricanorth", "uaenorth", "israelcentral")


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


class LoadTestingApi(RunsMixin):
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
        if existing is None and len(state.tests) >= MAX_TESTS:
            raise ApiError(400, "BadRequest", f"A load testing resource holds at most {MAX_TESTS} tests here.")
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
            if not ENV_NAME_RE.match(name) or not isinstance(value, str) or len(value) > MAX_VALUE_CHARS \
                    or "\x00" in value:
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
        # guess: the service's own file-name rule is not published; these names reach Locust's command line
        # (`-f name`, `--config name`), so one must never read as an option or leave the run folder
        if not FILE_NAME_RE.match(name) or name in (".", ".."):
            raise ApiError(400, "BadRequest", f"'{name}' is not a valid file name (1-200 characters of letters, "
                                              f"digits, '.', '_', '-' and spaces, not starting with '-').")
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
