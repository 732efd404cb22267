"""The local serving runtime: what answers `POST /score` on the local backend.

Architecture (one endpoint):

    client ──TCP 127.0.0.1:port──▶ front (serving.front, uvloop)      one process per endpoint
                                     │  key check, routing, admission, timeouts, Azure's status codes
                                     │  supervisor (serving.supervisor): spawns, probes, restarts
                                     ├──Unix socket, pipelined──▶ host (serving.host) instance 0
                                     └──Unix socket, pipelined──▶ host (serving.host) instance 1 …

Why this shape:
- Two Python hops per request (front, then instance) cost most of the old design's CPU (aiohttp on
  both sides). Both hops now speak a hand-written HTTP/1.1 subset (serving.wire) on raw asyncio
  Protocols: the front parses a request, checks the key, and appends the pre-encoded request to the
  instance's single pipelined connection; writes are corked once per event-loop turn, so under load
  one send() carries many requests and the host answers a batch per recv(). uvloop runs the front.
- The host is one thread, no asyncio, standard library only: it runs inside the user's environment
  (a uv venv with only their packages plus a copy of this package), answers in arrival order, and
  sends each answer before running the next request, like azmlinfsrv's sync worker. That order is
  what makes failures exact: the first unanswered request of a dead instance is the one it was
  running (replayed once, alone, on its successor; a poison request gets 502 and harms no other
  instance); the rest had not started (sent to another instance).
- Instances are children of the front (PR_SET_PDEATHSIG): only the front outlives rtsctl, and it
  carries its endpoint folder in its argv, so a killed rtsctl leaves nothing that cannot be found.
  The front is itself two processes (keeper.py): a keeper that holds the port's socket and restarts
  a dead worker at once, and the worker that serves. Each instance has a memory limit (limits.py: a
  cgroup, or RLIMIT_AS), and what it starts dies with it (its cgroup, and reaper.py: the hosts, the
  worker and the keeper are child subreapers that end what they adopt).
- Instances listen on Unix sockets in the endpoint's 0700 run folder: no TCP port, so the key
  check in the front guards every path to a scoring process.
- More instances use more cores: each is its own process; the front is one more.

Files: front.py (requests, deployments, status.json), keeper.py (the front's restarts, front.json),
supervisor.py (instances), limits.py (memory limits), reaper.py (orphans), host.py,
engines/ (how the host calls user code: native = init()/run(raw)), wire.py, logfile.py (rotated
logs), runtime.py (the copy of this package hosts import), standalone.py (a host on TCP for the
Azure emulator's data plane only).
"""
