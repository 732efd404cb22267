"""What went wrong with a deployment that failed to come up, printed where the user already looks.

When an apply fails on a deployment, the error line alone ("ResourceNotReady: User container has crashed")
sends users hunting for logs. This prints, per failed deployment: the service's error code, the last lines
of its container (Azure: `online_deployments.get_logs`) or instance log (local), and for the codes the
troubleshooting guide names (MicrosoftDocs azureml-docs, how-to-troubleshoot-online-endpoints.md: "ERROR:
OutOfQuota", "ERROR: ImageBuildFailure", "ERROR: ResourceNotReady" with its liveness-probe and crash causes,
and the Kubernetes codes such as DeploymentCrashLoopBackOff, UserScriptImportError, PodOutOfMemory) one line
saying what to do. The local backend has no service codes; its failures are named after what
its supervisor saw (init() failed, crash loop, liveness probe failure).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from rtsctl.support.errors import ResourceError, RtsctlError

LOG_LINES = 20
MAX_LINE = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x1b]")

#: code -> what to do (how-to-troubleshoot-online-endpoints.md; local codes follow the same advice)
HINTS = {
    "outofquota": "the subscription has no cores left for this VM family in the region: lower instance_count, "
                  "pick another instance_type, or request more quota (portal: Quotas); managed endpoints "
                  "reserve 20 % extra cores for upgrades",
    "imagebuildfailure": "the environment's image failed to build: check the conda file or Dockerfile (the build "
                         "log is in the workspace's storage account); building it locally shows the same error",
    "resourcenotready": "the scoring container crashed or exited before it was ready: the log lines above show "
                        "init()'s error (a missing package, a model path, an exception); fix it and apply again",
    "livenessprobefailed": "the container did not answer its liveness probe in time: if init() is slow, raise "
                           "liveness_probe.initial_delay (and timeout); otherwise look for a hang in the log",
    "initfailed": "init() raised: the log lines above show the traceback; fix the scoring script or its "
                  "environment and apply again",
    "crashloop": "the instance keeps exiting after it starts: the log lines above show why; fix it and apply again",
    "instanceexited": "the instance process exited before it was ready (Azure would say ResourceNotReady): the "
                      "log lines above show why; fix the script or its environment and apply again",
    "oomkilled": "the instance used more memory than its limit and was killed (Kubernetes: OOMKilled), then restarted: "
                 "raise the deployment's resources.limits.memory, or make init()/run() use less (plan shows the "
                 "limit and how it is enforced)",
    "frontcrashloop": "the endpoint's front process keeps dying and is restarted with backoff: its log (front.log, "
                      "named above) shows why; a scoring script that signals its parent process is a common cause",
    "outofcapacity": "the region has no capacity for this instance_type now: try another instance_type or retry later",
    # Kubernetes deployments (the same guide, "Common errors specific to Kubernetes deployments")
    "deploymentcrashloopbackoff": "the container keeps crashing while it initializes: the log lines above show "
                                  "score.py's exception (a syntax or import error); if there is none, the pod needs "
                                  "more memory than its instance type's limit",
    "kubernetescrashloopbackoff": "one or more pods are stuck crash-looping: the log lines above show why (an error "
                                  "in score.py's init(), or more memory needed than the instance type allows)",
    "userscriptinitfailed": "init() in score.py raised: the log lines above show the exception; fix it and apply again",
    "userscriptimporterror": "score.py imports a package the environment lacks: add it to the conda file and "
                             "apply again (the local backend shows the same error in seconds)",
    "userscriptfunctionnotfound": "score.py has no init() or no run(): add both and apply again",
    "podoutofmemory": "the pod needs more memory than the instance type gives it: pick a larger instance_type",
    "podunschedulable": "no node can take the pod: the cluster lacks the resources of the instance type, or no node "
                        "matches its node selector; scale the node pool, or use a smaller instance_type",
    "imagepullloopbackoff": "the cluster cannot pull the image from the workspace's container registry: check the "
                            "cluster's network policy and its access to the registry",
}


def failure_code(exc: BaseException, log: Sequence[str] = ()) -> str | None:
    """The service's code, or for the local backend one named after what its supervisor reported (in the
    error, or in the lines it writes into the instance log: `--- liveness probe failed N times: restarting`)."""
    code = getattr(exc, "code", None)
    if code:
        return str(code)
    text = str(exc)
    if "OOMKilled" in text or any("OOMKilled" in line for line in log[-5:]):
        return "OOMKilled"
    if "front restarted" in text and "keeps dying" in text:
        return "FrontCrashLoop"
    if "liveness probe failed" in text or any("liveness probe failed" in line for line in log[-5:]):
        return "LivenessProbeFailed"
    if "crash-loop" in text or "crash loop" in text:
        return "CrashLoop"
    if "(init() failed)" in text:
        return "InitFailed"
    if "exited with code" in text or "killed by signal" in text:
        return "InstanceExited"
    return None


def explain(backend: Any, errors: dict[str, RtsctlError], report: Callable[[str], None],
            lines: int = LOG_LINES) -> None:
    """Print the forensics of each failed deployment in `errors` (address -> its exception)."""
    for address, exc in errors.items():
        if address.startswith("endpoint.") and failure_code(exc) == "FrontCrashLoop":
            report(f"\n[bold red]{address} failed[/bold red] [bold](FrontCrashLoop)[/bold]: {_markup_safe(_clean(str(exc)))}")
            report(f"  [yellow]what to do:[/yellow] {HINTS['frontcrashloop']}")
            continue
        if not address.startswith("deployment.") or "/" not in address:
            continue
        endpoint, deployment = address.removeprefix("deployment.").split("/", 1)
        tails = _log_tails(backend, endpoint, deployment, lines)
        code = failure_code(exc, [line for tail in tails.values() for line in tail])
        reason = exc.reason if isinstance(exc, ResourceError) else str(exc)
        report(f"\n[bold red]{address} failed[/bold red]" + (f" [bold]({code})[/bold]" if code else "")
               + f": {_markup_safe(_clean(reason))}")
        for source, tail in tails.items():
            report(f"  last {len(tail)} log line(s) of {source}:" if tail else f"  {source}: the log is empty")
            for line in tail:
                report(_markup_safe(f"    | {_clean(line)}"))
        hint = HINTS.get((code or "").lower())
        if hint:
            report(f"  [yellow]what to do:[/yellow] {hint}")


def _log_tails(backend: Any, endpoint: str, deployment: str, lines: int) -> dict[str, list[str]]:
    """The last `lines` of each log source; a log that cannot be read says why in one line instead."""
    try:
        sources = backend.logs(endpoint, deployment, tail=lines)
        # the access log says which requests were answered, not why an instance failed: left out
        return {source: list(islice(stream, lines)) for source, stream in sources.items()
                if not source.endswith("/access")}
    except RtsctlError as exc:
        return {"logs": [f"(could not read the logs: {exc})"]}
    except Exception as exc:  # forensics never hides the failure it explains
        return {"logs": [f"(could not read the logs: {type(exc).__name__}: {exc})"]}


def _clean(text: str) -> str:
    """One terminal-safe line: no control characters (a log is user output), bounded length."""
    text = _CONTROL.sub("?", str(text).rstrip("\n"))
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def _markup_safe(text: str) -> str:
    from rich.markup import escape

    return escape(text)
