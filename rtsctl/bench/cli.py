"""`rtsctl bench` argparse wiring. Cheap to import: the engine, aiohttp-free as it is, loads only inside run()."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Load-test a scoring endpoint: a lean async HTTP/1.1 client (keep-alive, uvloop), latencies in an HDR histogram,
closed loop (-c/-t connections as fast as the server answers) or open loop (--rate R: constant arrival rate,
latency measured from the intended send time, so a slow server cannot hide its queueing).

Target: a MANIFEST (URI and key read from the deployed endpoint; no secrets on the command line) or -u URL -k KEY.
Length: -t T -i I (the seed's flags: T workers x I requests each, exactly), -n total, or -d duration (default 10 s);
or --stages, a ramp of connections (closed loop) or of request rates (open loop) that sets both length and load.
"""

EPILOG = """\
examples:
  rtsctl bench manifests/dev.yaml -d 30s -c 64
  rtsctl bench manifests/dev.yaml --deployment green --rate 500 -d 1m --max-p99 250ms
  rtsctl bench manifests/dev.yaml --stages 10s:50/s,30s:400/s,10s:0/s     (open-loop rate ramp)
  rtsctl bench manifests/dev.yaml --stages 10s:8,20s:64,10s:0              (closed-loop connection ramp)
  rtsctl bench -u http://127.0.0.1:8080/score -k KEY -t 4 -i 25
  rtsctl bench -u URL -k KEY --template '{"name": "user-{i}"}' -o json --max-error-rate 1%
  rtsctl bench -u URL -k KEY --workers 2 -c 64 -d 20s --hdr-out run1.hlog --html-out run1.html
  rtsctl bench merge run1.hlog run2.hlog --html-out all.html
  rtsctl bench manifests/dev.yaml --engine locust --workers 2 -d 30s -c 32
  rtsctl bench manifests/dev.yaml --engine locust --workers 2 --remote-workers 4 --locust-master 10.0.0.4 -d 5m
  rtsctl bench manifests/azure.yaml --engine azure-load-testing --engines 4 --regions eastus,westeurope -d 5m

engine locust: Locust (pinned, installed once with uv into rtsctl's cache; RTSCTL_LOCUST_PYTHON names your own)
runs a master and --workers workers; -c is its users, --stages a LoadTestShape, --rate closed-loop pacing per user.
Its figures are Locust's: percentiles from its response-time buckets (whole ms below 100 ms), coarser than the
native engine's HDR histogram. Not with it: --template, -i, -n, --hdr-out, --warmup.

engine azure-load-testing: the same locustfile as a test in the manifest's load_testing: resource (Azure Load
Testing, azure backend), on --engines instances in --regions; the key goes to the workspace's Key Vault, the test
references it. Its figures are the service's aggregates; the report links the run in the portal. Not with it: what
locust refuses, and --workers, -k, --cacert.

exit codes: 0 ok, 1 error (bad input, or no request succeeded), 3 a --max-error-rate / --max-p99 threshold was
crossed, 130 interrupted (the partial report is still printed).
"""


MERGE_DESCRIPTION = """\
Combine HdrHistogram interval logs written by `rtsctl bench --hdr-out` (several runs, or several machines loading
one endpoint at once) into one report: histograms add exactly, status codes and errors add up, the timeline is laid
on wall-clock seconds.
"""


def merge_parser(prog: str = "rtsctl bench merge") -> argparse.ArgumentParser:
    """`bench merge`'s own options: what `run_merge` reads (its help shows only these)."""
    p = argparse.ArgumentParser(prog=prog, description=MERGE_DESCRIPTION, add_help=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n  rtsctl bench merge run1.hlog run2.hlog --html-out all.html\n\n"
                                       "exit codes: 0 ok, 1 error, 3 a --max-error-rate / --max-p99 threshold was crossed")
    p.add_argument("-h", "--help", action="help", help="show this help message and exit")
    p.add_argument("files", nargs="+", metavar="FILE", help="interval logs written by --hdr-out")
    _merge_outputs(p)
    return p


def _merge_outputs(p) -> None:
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="report format")
    p.add_argument("--hdr-out", metavar="FILE", help="write an HdrHistogram interval log (for `bench merge`)")
    p.add_argument("--html-out", metavar="FILE", help="write a self-contained HTML report with charts")
    p.add_argument("--no-chart", action="store_true", help="no terminal charts in the text report")
    p.add_argument("--max-error-rate", metavar="X", help="fail above this error rate (1%% or 0.01); exit 3")
    p.add_argument("--max-p99", metavar="D", help="fail when p99 latency is above D (250, 250ms, 0.5s); exit 3")


class _Help(argparse.Action):
    """-h: `bench merge -h` shows merge's own help, anything else bench's."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        if (getattr(namespace, "manifest", None) or [None])[0] == "merge":
            merge_parser().print_help()
        else:
            parser.print_help()
        parser.exit()


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench", help="load-test an endpoint (open or closed loop, HDR latency, JSON for CI)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="rtsctl bench [MANIFEST | -u URL [-k KEY]] [options]\n       rtsctl bench merge FILE... [options]",
        add_help=False)
    p.add_argument("-h", "--help", action=_Help, help="show this help message and exit (`bench merge -h`: merge's)")
    p.add_argument("manifest", nargs="*", metavar="MANIFEST",
                   help="manifest whose endpoint to load; or `merge FILE...` to combine --hdr-out files")

    t = p.add_argument_group("target")
    t.add_argument("--endpoint", metavar="NAME", help="endpoint of the manifest (default: its only / first one)")
    t.add_argument("--deployment", metavar="NAME",
                   help="send to this deployment only (azureml-model-deployment header), bypassing traffic weights")
    from rtsctl.commands.args import add_manifest_args

    add_manifest_args(t, positional=False)
    t.add_argument("-u", "--url", metavar="URL", help="scoring URL (instead of a manifest)")
    t.add_argument("-k", "--key", metavar="KEY", help="key, sent as 'Authorization: Bearer KEY'")
    t.add_argument("--cacert", metavar="FILE", help="CA bundle to verify an https endpoint")
    t.add_argument("--insecure", action="store_true", help="do not verify the https certificate")

    g = p.add_argument_group("load")
    g.add_argument("-t", "--threads", type=int, metavar="N",
                   help="concurrent workers (the seed's flag; same as -c)")
    g.add_argument("-c", "--concurrency", type=int, metavar="N", help="connections kept busy (default 16; against a MANIFEST at most what its deployments "
                        "serve at once: max_concurrent_requests_per_instance x instance_count, beyond which they "
                        "answer 429)")
    g.add_argument("-i", "--iterations", type=int, metavar="N", help="requests per worker (the seed's flag)")
    g.add_argument("-n", "--requests", type=int, metavar="N", help="total requests")
    g.add_argument("-d", "--duration", metavar="D", help="run for D (10, 10s, 2m; default 10s if no count)")
    g.add_argument("--rate", metavar="R", help="open loop: R requests per second, whatever the server does")
    g.add_argument("--stages", metavar="D:N,...",
                   help="ramp linearly from 0 through each stage's target (k6 stages): 10s:100,30s:500,10s:0 ramps "
                        "connections (closed loop); 10s:100/s,30s:500/s ramps the request rate (open loop)")
    g.add_argument("--warmup", metavar="D", help="load for D first, without measuring")
    g.add_argument("--timeout", metavar="D", help="per-request timeout (default 30s)")
    g.add_argument("--workers", type=int, metavar="P",
                   help="client processes (use the cores; their histograms are merged); with --engine locust, "
                        "Locust workers on this machine")

    e = p.add_argument_group("engine (native: this machine, fastest; locust: Locust's master and workers, here "
                             "and on other machines; azure-load-testing: Locust on Azure Load Testing's engines)")
    e.add_argument("--engine", choices=("native", "locust", "azure-load-testing"), default="native",
                   help="load engine (default native). locust: a Locust master and --workers workers run a "
                        "locustfile rtsctl writes; azure-load-testing: Azure Load Testing runs it on --engines "
                        "instances; the report, thresholds and exit codes are rtsctl's")
    e.add_argument("--remote-workers", type=int, metavar="N",
                   help="locust: also wait for N workers on other machines (prints the command to run there)")
    e.add_argument("--locust-master", metavar="ADDRESS",
                   help="locust: the address of this machine the master listens on (default 127.0.0.1; "
                        "needed with --remote-workers)")
    e.add_argument("--engines", type=int, metavar="N",
                   help="azure-load-testing: engine instances (default 1), spread over --regions")
    e.add_argument("--regions", metavar="R1,R2",
                   help="azure-load-testing: regions the engines run in (default: the Load Testing resource's)")
    e.add_argument("--load-testing", metavar="NAME",
                   help="azure-load-testing: the Load Testing resource (default: the manifest's load_testing:)")
    e.add_argument("--test-id", metavar="ID",
                   help="azure-load-testing: the test to create or reuse (default: the manifest's load_testing.test, "
                        "else rtsctl-<endpoint>)")
    e.add_argument("--results-dir", metavar="DIR",
                   help="azure-load-testing: download the run's result and log archives into DIR")

    r = p.add_argument_group("request")
    r.add_argument("--payload", metavar="FILE", help="JSON body from FILE (JSON Lines: one per line, cycled)")
    r.add_argument("--template", metavar="TEXT",
                   help="body with {i} replaced by the request number, e.g. '{\"name\": \"user-{i}\"}'")
    r.add_argument("--body", metavar="TEXT", help='literal body (default: the manifest\'s smoke_test.request (a deployment\'s own with '
                        '--deployment), else {"name": "rtsctl"})')
    r.add_argument("-m", "--method", default="POST", help="HTTP method (default POST)")
    r.add_argument("-H", "--header", action="append", metavar="'NAME: VALUE'", help="extra header (repeatable)")
    r.add_argument("--content-type", default="application/json", metavar="TYPE",
                   help="Content-Type (default application/json; JSON bodies are validated)")

    o = p.add_argument_group("output")
    o.add_argument("-o", "--output", choices=("text", "json"), default="text", help="report format")
    o.add_argument("--hdr-out", metavar="FILE", help="write an HdrHistogram interval log (for `bench merge`)")
    o.add_argument("--html-out", metavar="FILE", help="write a self-contained HTML report with charts")
    o.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="live progress line on stderr (default: only on a terminal)")
    o.add_argument("--no-chart", action="store_true", help="no terminal charts in the text report")

    c = p.add_argument_group("CI gates (exit code 3 when crossed)")
    c.add_argument("--max-error-rate", metavar="X", help="fail above this error rate (1%% or 0.01)")
    c.add_argument("--max-p99", metavar="D", help="fail when p99 latency is above D (250, 250ms, 0.5s)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from rtsctl.support.errors import RtsctlError
    positional = list(args.manifest or [])
    if positional and positional[0] == "merge":
        from rtsctl.bench.merge import run_merge
        return run_merge(positional[1:], args)
    if len(positional) > 1:
        raise RtsctlError(f"one MANIFEST at a time (got {len(positional)}: {' '.join(positional)})")
    ns = argparse.Namespace(**vars(args))
    ns.manifest = positional[0] if positional else None
    from rtsctl.bench.config import check_engine, from_args
    check_engine(ns)         # a flag the engine cannot honour is refused before the manifest is read
    from rtsctl.bench.session import execute
    if ns.engine == "azure-load-testing":
        return run_cloud(ns)
    outputs = None
    if ns.manifest and not ns.url:  # the verb reads the manifest's endpoint; the load tester only gets the values
        from rtsctl import engine
        outputs = engine.read_outputs(ns.manifest, ns.endpoint, getattr(ns, "variables", None))
    return execute(from_args(ns, outputs))


def run_cloud(ns) -> int:
    """--engine azure-load-testing: the endpoint and the load testing service both come from the MANIFEST."""
    from rtsctl import engine
    from rtsctl.bench.cloud import CloudRun, default_test_id, execute, parse_regions
    from rtsctl.bench.config import from_args, positive_int
    from rtsctl.manifest.names import name_problem
    from rtsctl.support.errors import RtsctlError

    if not ns.manifest or ns.url:
        raise RtsctlError("--engine azure-load-testing loads a MANIFEST's endpoint (its key goes to the workspace's "
                          "Key Vault): give the manifest, not -u")
    engines = positive_int(ns.engines, "--engines") if ns.engines is not None else 1
    regions = parse_regions(ns.regions)
    for flag, kind, value in (("--test-id", "load_test_id", ns.test_id), ("--load-testing", "load_testing",
                                                                          ns.load_testing)):
        if value is not None and (problem := name_problem(kind, value)):
            raise RtsctlError(f"{flag}: {problem}")
    with engine.load_service(ns.manifest, ns.endpoint, getattr(ns, "variables", None), ns.load_testing) as (
            outputs, service, test):
        cfg = from_args(ns, outputs)
        test_id = ns.test_id or test or default_test_id(cfg.endpoint or "")
        run = CloudRun(engines=engines, regions=regions, test_id=test_id, results_dir=ns.results_dir,
                       poll_s=service.poll_interval)
        return execute(cfg, service, run)
