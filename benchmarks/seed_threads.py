"""The seed's load test, as rtsloadtest.py does it: T threads, each calling requests.post() I times.

Kept as the baseline `rtsctl bench` replaces. Bare requests.post() opens a new TCP connection per call, as the seed
script does. `-d SECONDS` runs for a time instead of I iterations (for side-by-side benchmarks). Prints one JSON line.

    python benchmarks/seed_threads.py -u URL -k KEY -t 64 -i 25
    python benchmarks/seed_threads.py -u URL -k KEY -t 64 -d 5
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-u", required=True, help="web service URL")
    ap.add_argument("-k", default="", help="web service key")
    ap.add_argument("-t", type=int, default=4, help="number of threads")
    ap.add_argument("-i", type=int, default=10, help="calls per thread")
    ap.add_argument("-d", type=float, help="run for this many seconds instead of -i calls")
    args = ap.parse_args()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.k}"}
    codes: dict[int, int] = {}
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + args.d if args.d else None

    def worker() -> None:
        done = 0
        while (stop_at is None and done < args.i) or (stop_at is not None and time.perf_counter() < stop_at):
            started = time.perf_counter()
            try:
                resp = requests.post(args.u, json={"name": "Daniel"}, headers=headers, timeout=30)
                with lock:
                    codes[resp.status_code] = codes.get(resp.status_code, 0) + 1
                    latencies.append(time.perf_counter() - started)
            except requests.RequestException:
                with lock:
                    errors[0] += 1
            done += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.t)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    n = sum(codes.values()) + errors[0]
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3) if latencies else None  # noqa: E731
    print(json.dumps({"requests": n, "rps": round(n / elapsed, 1), "codes": codes, "errors": errors[0],
                      "p50_ms": pick(0.5), "p99_ms": pick(0.99), "elapsed_s": round(elapsed, 3)}))


if __name__ == "__main__":
    main()
