"""Flags -> a validated BenchConfig (target, load shape, payload, outputs, thresholds). User errors: one line."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from rtsctl.bench.stages import Stages, parse_stages
from rtsctl.support.errors import RtsctlError

DEFAULT_CONCURRENCY = 16
DEFAULT_DURATION = 10.0
DEFAULT_TIMEOUT = 30.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def seconds(text: str, flag: str) -> float:
    """'10' / '10s' / '500ms' / '2m' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", str(text))
    if not m:
        raise RtsctlError(f"{flag}: {text!r} is not a duration (examples: 10, 10s, 500ms, 2m)")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def millis(text: str, flag: str) -> float:
    """'250' (ms) / '250ms' / '0.25s' -> milliseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*", str(text))
    if not m:
        raise RtsctlError(f"{flag}: {text!r} is not a latency (examples: 250, 250ms, 0.5s)")
    return float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)


def fraction(text: str, flag: str) -> float:
    """'1%' / '0.01' -> 0.01."""
    t = str(text).strip()
    try:
        value = float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise RtsctlError(f"{flag}: {text!r} is not a rate (examples: 1%, 0.01)") from None
    if not 0.0 <= value <= 1.0:
        raise RtsctlError(f"{flag}: {text!r} must be between 0 and 1 (or 0% and 100%)")
    return value


def positive_int(value, flag: str, minimum: int = 1) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise RtsctlError(f"{flag}: {value!r} is not a whole number") from None
    if n < minimum:
        raise RtsctlError(f"{flag} must be at least {minimum}")
    return n


@dataclass
class BenchConfig:
    url: str
    key: str | None = None
    verify: bool | str = True
    endpoint: str | None = None
    deployment: str | None = None
    method: str = "POST"
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    #: requests the manifest's deployments serve at once (by manifest name): the default -c against a manifest
    serves_at_once: dict = field(default_factory=dict)
    #: the manifest's smoke_test.request (the deployment's own with --deployment): the body when none is given
    manifest_body: str | None = None
    bodies: list | None = None
    template: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    per_conn: int | None = None
    total: int | None = None
    duration: float | None = None
    rate: float | None = None
    stages: Stages | None = None
    stages_text: str | None = None
    warmup: float = 0.0
    timeout: float = DEFAULT_TIMEOUT
    workers: int = 1
    output: str = "text"
    hdr_out: str | None = None
    html_out: str | None = None
    progress: bool | None = None
    chart: bool = True
    max_error_rate: float | None = None
    max_p99_ms: float | None = None
    #: the load engine: "native" (this package's own) or "locust" (rtsctl.bench.locust)
    engine: str = "native"
    #: Locust: workers started by the user on other machines, and the address the master listens on for them
    remote_workers: int = 0
    locust_master: str | None = None

    @property
    def open_loop(self) -> bool:
        return self.rate is not None or (self.stages is not None and self.stages.open_loop)

    @property
    def expected_requests(self) -> int | None:
        if self.stages is not None:
            return int(self.stages.count(self.stages.duration) + 1e-9) if self.stages.open_loop else None
        if self.per_conn is not None:
            return self.per_conn * self.concurrency
        if self.total is not None:
            return self.total
        if self.rate is not None and self.duration is not None:
            return int(round(self.rate * self.duration))
        return None


def load_shape(args, cfg: BenchConfig) -> None:
    """-t/-c, -i/-n/-d, --rate, --stages, --warmup, --timeout, --workers."""
    if args.threads is not None and args.concurrency is not None and args.threads != args.concurrency:
        raise RtsctlError("-t (workers, the seed's flag) and -c (concurrency) mean the same thing: give one")
    conc = args.threads if args.threads is not None else args.concurrency
    cfg.concurrency = positive_int(conc, "-c/-t") if conc is not None else default_concurrency(cfg)
    if args.iterations is not None and args.requests is not None:
        raise RtsctlError("-i (iterations per worker) and -n (total requests) both set the count: give one")
    if args.iterations is not None:
        cfg.per_conn = positive_int(args.iterations, "-i")
    if args.requests is not None:
        cfg.total = positive_int(args.requests, "-n")
    if args.duration is not None:
        cfg.duration = seconds(args.duration, "-d")
        if cfg.duration <= 0:
            raise RtsctlError("-d must be more than 0 seconds")
    if args.rate is not None:
        try:
            cfg.rate = float(args.rate)
        except ValueError:
            raise RtsctlError(f"--rate: {args.rate!r} is not a number of requests per second") from None
        if cfg.rate <= 0:
            raise RtsctlError("--rate must be more than 0 requests per second")
        if cfg.per_conn is not None:
            raise RtsctlError("--rate sets the pace of an open loop; -i (per-worker iterations) is closed-loop: "
                              "use -n or -d with --rate")
    if args.stages is not None:
        ramp(args, cfg, conc)
    if cfg.per_conn is None and cfg.total is None and cfg.duration is None:
        cfg.duration = DEFAULT_DURATION
    if args.warmup is not None:
        cfg.warmup = seconds(args.warmup, "--warmup")
    if args.timeout is not None:
        cfg.timeout = seconds(args.timeout, "--timeout")
        if cfg.timeout <= 0:
            raise RtsctlError("--timeout must be more than 0")
    cfg.workers = positive_int(args.workers, "--workers") if args.workers is not None else 1
    if cfg.workers > cfg.concurrency:
        raise RtsctlError(f"--workers {cfg.workers} needs at least as many connections (-c/-t is {cfg.concurrency})")


def default_concurrency(cfg: BenchConfig) -> int:
    """Against a manifest, no more connections than its deployments serve at once (beyond that an endpoint answers
    429, and the run measures throttling instead of the service); else DEFAULT_CONCURRENCY."""
    admitted = sum(cfg.serves_at_once.values())
    return max(1, min(DEFAULT_CONCURRENCY, admitted)) if admitted else DEFAULT_CONCURRENCY


def ramp(args, cfg: BenchConfig, connections: int | None) -> None:
    """--stages: the ramp sets the length and the load; flags that would set them too are refused."""
    clash = [flag for flag, value in (("-d", args.duration), ("-n", args.requests), ("-i", args.iterations),
                                      ("--rate", args.rate), ("--warmup", args.warmup)) if value is not None]
    if clash:
        raise RtsctlError(f"--stages sets the length and the load of the run: drop {', '.join(clash)}")
    cfg.stages, cfg.stages_text = parse_stages(args.stages), args.stages.strip()
    cfg.duration = cfg.stages.duration
    peak = math.ceil(cfg.stages.peak - 1e-9)
    if cfg.stages.open_loop:
        return
    if connections is not None and connections < peak:
        raise RtsctlError(f"--stages ramps to {peak} connections but -c/-t is {connections}: raise -c or leave it out")
    cfg.concurrency = connections if connections is not None else peak


def outputs(args, cfg: BenchConfig) -> None:
    cfg.output = args.output
    cfg.hdr_out = args.hdr_out
    cfg.html_out = args.html_out
    cfg.progress = args.progress
    cfg.chart = not args.no_chart
    if args.max_error_rate is not None:
        cfg.max_error_rate = fraction(args.max_error_rate, "--max-error-rate")
    if args.max_p99 is not None:
        cfg.max_p99_ms = millis(args.max_p99, "--max-p99")


def request_shape(args, cfg: BenchConfig) -> None:
    """Method, headers, payload (file / template / inline body)."""
    from rtsctl.bench.payload import DEFAULT_BODY, check_json, check_template, load_payload_file
    cfg.method = args.method.upper()
    if cfg.method in ("HEAD", "CONNECT") or not cfg.method.isalpha():
        raise RtsctlError(f"-m {args.method}: not a method bench can send (use POST, GET, PUT, ...)")
    cfg.content_type = args.content_type
    is_json = "json" in cfg.content_type.lower()
    for h in args.header or []:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise RtsctlError(f"-H {h!r}: expected 'Name: value'")
        cfg.headers[name.strip()] = value.strip()
    given = [x for x in (args.payload, args.template, args.body) if x is not None]
    if len(given) > 1:
        raise RtsctlError("give one of --payload FILE, --template TEXT, --body TEXT")
    if args.payload is not None:
        cfg.bodies = load_payload_file(args.payload, is_json)
    elif args.template is not None:
        check_template(args.template, is_json)
        cfg.template = args.template
    elif args.body is not None:
        if is_json:
            check_json(args.body, "--body")
        cfg.bodies = [args.body]
    elif cfg.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        cfg.bodies = [""]
    elif cfg.manifest_body is not None and is_json:  # as the rollout gate does: the manifest's smoke request
        cfg.bodies = [cfg.manifest_body]
    else:
        cfg.bodies = [DEFAULT_BODY]


def target(args, cfg: BenchConfig, out: dict | None = None) -> None:
    """-u/-k, or MANIFEST [--endpoint] [--deployment] through `out`, the endpoint's outputs as the engine observed
    them (the caller reads them: the load tester is a library the engine uses, so it never imports the engine)."""
    if args.insecure and args.cacert:
        raise RtsctlError("--insecure and --cacert contradict each other: give one")
    if args.manifest:
        if args.url:
            raise RtsctlError("give either a MANIFEST or -u URL, not both")
        if out is None:
            raise RtsctlError(f"{args.manifest}: no outputs were read for it")
        uri = out["scoring_uri"]
        cfg.url, cfg.endpoint = uri, out.get("endpoint") or args.endpoint
        cfg.key = args.key or out.get("primary_key")
        cfg.verify = out.get("verify", True)
        deployments = out.get("deployments") or []
        if args.deployment and deployments and args.deployment not in deployments:
            raise RtsctlError(f"endpoint {cfg.endpoint} has no deployment {args.deployment!r} "
                              f"(it has: {', '.join(deployments)})")
        live = out.get("live_deployments") or {}  # a successor serves the manifest name after a rollout
        at_once = out.get("serves_at_once") or {}
        cfg.serves_at_once = {args.deployment: at_once[args.deployment]} if args.deployment in at_once else at_once
        requests = out.get("smoke_requests") or {}
        own = requests.get(args.deployment) if args.deployment else None
        fallback = own if own is not None else requests.get("", next(iter(requests.values()), None))
        if fallback is not None:
            import json

            cfg.manifest_body = json.dumps(fallback)
    else:
        live = {}
        if not args.url:
            raise RtsctlError("nothing to load: give a MANIFEST, or -u URL [-k KEY]")
        if args.endpoint:
            raise RtsctlError("--endpoint picks an endpoint of a MANIFEST; with -u give the URL itself")
        cfg.url, cfg.key = args.url, args.key
    if args.insecure:
        cfg.verify = False
    elif args.cacert:
        cfg.verify = args.cacert
    cfg.deployment = live.get(args.deployment, args.deployment)


#: what the Locust engine cannot do, and why (refused before anything runs, naming the flag)
LOCUST_REFUSES = (
    ("template", "--template", "the locustfile sends fixed bodies (use --payload FILE with one body per line)"),
    ("iterations", "-i", "Locust runs for a duration, not an exact count (use -d)"),
    ("requests", "-n", "Locust runs for a duration, not an exact count (use -d)"),
    ("hdr_out", "--hdr-out", "Locust keeps bucketed response times, not an HDR histogram"),
    ("warmup", "--warmup", "Locust has no unmeasured warm-up phase"),
)


#: what the azure-load-testing engine refuses beyond Locust's (its engines run the same locustfile)
CLOUD_REFUSES = (
    ("workers", "--workers", "the service runs the engines: give --engines"),
    ("key", "-k", "the engines read the manifest endpoint's key from the workspace's Key Vault"),
    ("cacert", "--cacert", "the engines cannot read a file of this machine; they trust the public CAs"),
)
CLOUD_ONLY = (("engines", "--engines"), ("regions", "--regions"), ("load_testing", "--load-testing"),
              ("test_id", "--test-id"), ("results_dir", "--results-dir"))


def check_engine(args) -> None:
    """--engine and the flags that belong to one engine: checked first, before a manifest is read."""
    engine = getattr(args, "engine", None) or "native"
    if engine != "azure-load-testing":
        for dest, flag in CLOUD_ONLY:
            if getattr(args, dest, None) is not None:
                raise RtsctlError(f"{flag} is for --engine azure-load-testing")
    if engine in ("locust", "azure-load-testing"):
        for dest, flag, why in LOCUST_REFUSES + (CLOUD_REFUSES if engine != "locust" else ()):
            if getattr(args, dest, None) is not None:
                raise RtsctlError(f"{flag} cannot be used with --engine {engine}: {why}")
    if engine == "locust":
        if getattr(args, "remote_workers", None) and not getattr(args, "locust_master", None):
            raise RtsctlError("--remote-workers needs --locust-master ADDRESS: the address of this machine that "
                              "the other machines' workers connect to")
        return
    for dest, flag in (("remote_workers", "--remote-workers"), ("locust_master", "--locust-master")):
        if getattr(args, dest, None) is not None:
            raise RtsctlError(f"{flag} is for --engine locust")


def engine_shape(args, cfg: BenchConfig) -> None:
    cfg.engine = getattr(args, "engine", None) or "native"
    if cfg.engine != "locust":
        return
    if getattr(args, "remote_workers", None) is not None:
        cfg.remote_workers = positive_int(args.remote_workers, "--remote-workers")
    master = getattr(args, "locust_master", None)
    if master is not None:
        import ipaddress

        try:
            cfg.locust_master = str(ipaddress.ip_address(master.strip()))
        except ValueError:
            raise RtsctlError(f"--locust-master {master!r}: give an IP address of this machine "
                              "(e.g. 10.0.0.4, or 0.0.0.0 for all)") from None


def from_args(args, endpoint: dict | None = None) -> BenchConfig:
    """The run `args` ask for; `endpoint` holds the manifest endpoint's outputs (engine.read_outputs) when a
    MANIFEST is given."""
    check_engine(args)
    cfg = BenchConfig(url="")
    engine_shape(args, cfg)
    target(args, cfg, endpoint)
    load_shape(args, cfg)
    request_shape(args, cfg)
    outputs(args, cfg)
    return cfg
