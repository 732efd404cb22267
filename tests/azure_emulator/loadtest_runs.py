"""A load test run from its PATCH to DONE: the status progression, the engines (locust_engine.py), the results
(loadtest_results.py), stop, and the run's own routes (files, metric namespaces/definitions/dimensions, metrics).

A mixin of `loadtesting.LoadTestingApi`, which provides the plumbing (ctx, workdir, account, blob_url, test lookups,
test_view, check_test); conventions and sources are in loadtesting.py's docstring.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from . import keyvault
from . import loadtest_results as results
from .blob import Blob
from .errors import json_response
from .loadtest_model import (
    ID_RE,
    MAX_RUNS,
    OUTPUT_URL_SECONDS,
    SCRIPT_TYPES,
    TERMINAL,
    ApiError,
    ResourceState,
    RunRecord,
    TestRecord,
    now_iso,
)
from .locust_engine import (
    MAX_RUN_SECONDS,
    START_TIMEOUT,
    STOP_GRACE,
    EngineError,
    LocustRun,
    engine_env,
    run_seconds,
)


class RunsMixin:
    def run(self, state: ResourceState, run_id: str) -> RunRecord:
        found = state.runs.get(run_id)
        if found is None:
            raise ApiError(404, "TestRunNotFound", f"Test run not found with given name \"{run_id}\".")
        return found


    def _cancel(self, run: RunRecord) -> None:
        run.stop_requested = True
        if run.engine is not None:
            asyncio.get_running_loop().create_task(run.engine.kill())
        if run.task is not None and not run.task.done():
            run.task.cancel()


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
        if len(state.runs) >= MAX_RUNS:
            raise ApiError(400, "BadRequest", f"A load testing resource holds at most {MAX_RUNS} test runs here: "
                                              f"delete old ones.")
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
        run.task = asyncio.get_running_loop().create_task(self.execute(host, test, run))
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

    async def execute(self, host: str, test: TestRecord, run: RunRecord) -> None:
        """The run, start to end, in the emulator's loop: secrets, files, engines, results; FAILED with the reason
        when any step cannot be done."""
        folder = self.workdir / "loadtesting" / run.body["testRunId"] / uuid.uuid4().hex[:8]
        try:
            self.set_status(run, "PROVISIONING")
            values = self.engine_values(run)
            if test.body.get("kind") != "Locust":
                raise EngineError(f"the emulator runs Locust tests only (this test's kind is "
                                  f"{test.body.get('kind')}).")
            folder.mkdir(parents=True)
            script, config = self.stage_files(host, test, folder)
            # the emulator is test tooling: its engines are the tests' pinned Locust
            from ..locust_tool import locust_python

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
        except Exception as exc:  # noqa: BLE001 -- an emulator bug, or a value the OS refuses (a NUL in a secret):
            if run.engine is not None:  # the run fails, it never stays CONFIGURING
                await run.engine.kill()
            run.body["errorDetails"] = [{"message": f"The emulator could not run the test: {type(exc).__name__}: "
                                                    f"{exc}"}]
            self.finish(host, run, "FAILED")
        finally:   # what the run produced is in the blob store (csv.zip, logs.zip) and in memory (its history)
            shutil.rmtree(folder, ignore_errors=True)

    def engine_values(self, run: RunRecord) -> dict[str, str]:
        """Environment variables and secret values for the engines (secrets read with the load test's identity)."""
        values = dict(run.body.get("environmentVariables") or {})
        secrets = run.body.get("secrets") or {}
        principal = self.identity_principal(run) if any(
            s.get("type") == "AKV_SECRET_URI" for s in secrets.values()) else ""
        for name, secret in secrets.items():
            if secret.get("type") == "SECRET_VALUE":
                values[name] = str(secret.get("value") or "")
                continue
            vault = (keyvault.parse_secret_uri(secret.get("value")) or ("",))[0]
            refused = keyvault.may_read_secrets(self.ctx, vault, principal)
            if refused:
                raise EngineError(f"Key Vault reference of secret '{name}' could not be resolved: {refused}.")
            try:
                values[name] = keyvault.resolve(self.ctx, secret.get("value"))
            except KeyError as exc:
                raise EngineError(f"Key Vault reference of secret '{name}' could not be resolved: {exc.args[0]}.")
        return values

    def identity_principal(self, run: RunRecord) -> str:
        """The service reads Key Vault with the resource's managed identity (learn.microsoft.com/azure/load-testing/
        how-to-use-a-managed-identity: "Currently, you can only use the managed identity for accessing Azure Key
        Vault"; system-assigned unless keyvaultReferenceIdentityType says UserAssigned); without one it cannot. The
        identity's principal (object) id is what the vault's access policies name."""
        resource = self.ctx.store.get(run.resource_id)
        identity = (resource.body.get("identity") if resource else None) or {}
        kinds = {k.strip().lower() for k in str(identity.get("type") or "None").split(",")}
        wanted = str(run.body.get("keyvaultReferenceIdentityType") or "SystemAssigned").lower()
        if wanted == "userassigned":
            wanted_id = str(run.body.get("keyvaultReferenceIdentityId") or "").lower()
            assigned = {k.lower(): v for k, v in (identity.get("userAssignedIdentities") or {}).items()}
            if wanted_id not in assigned:
                raise EngineError(f"keyvaultReferenceIdentityId '{wanted_id}' is not a user-assigned identity of the "
                                  f"load testing resource.")
            return str(assigned[wanted_id].get("principalId") or "")
        if "systemassigned" not in kinds:
            raise EngineError("The load testing resource has no system-assigned managed identity to read Key Vault "
                              "secrets with (identity.type must include SystemAssigned).")
        return str(identity.get("principalId") or "")

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
        # spec TestRun.virtualUsers "Number of virtual users, for which test has been run": the users asked for
        # (LOCUST_USERS x engines), else the most Locust reported (a LoadTestShape sets its own)
        users = [results.number(r.get("User Count")) or 0 for r in run.history
                 if r.get("Name") == results.LOCUST_TOTAL]
        run.body["virtualUsers"] = engine.users if engine.users is not None else int(max(users, default=0))
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
            names = sorted({r["Name"] for r in self.history(run) if r.get("Type") and r.get("Name")})
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
        return json_response({"value": results.series(self.history(run), name, aggregation, grain, span,
                                                      samplers)})

    @staticmethod
    def history(run: RunRecord) -> list[dict]:
        """Locust's stats history: final once the run ended, else read live from the CSV file the master rewrites
        every second (the service serves client metrics while a run executes: the portal charts them live)."""
        if run.history or run.engine is None:
            return run.history
        return run.engine.rows("stats_history")
