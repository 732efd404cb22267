"""Units of rtsctl bench that need no server: histogram recording and merging, payloads, flag parsing."""

from __future__ import annotations

import random

import pytest

from rtsctl.bench import histogram as H
from rtsctl.bench.aggregate import Aggregator
from rtsctl.bench.config import fraction, millis, seconds
from rtsctl.bench.payload import RequestSource
from rtsctl.bench.workers import split_by
from rtsctl.support.errors import RtsctlError


def test_engine_buckets_replay_into_the_exact_hdr_histogram():
    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 1.5)) + 1 for _ in range(20000)] + [1, 2047, 2048, 10**9]
    direct = H.new_hist()
    for v in values:
        direct.record_value(v)
    assert H.to_hist(H.counts_of(values)).equals(direct)


def test_merge_of_two_histograms_equals_one_histogram_of_both():
    rng = random.Random(3)
    a = [rng.randint(50, 5_000_000) for _ in range(5000)]
    b = [rng.randint(50, 200_000) for _ in range(7000)]
    merged = H.decode(H.encode(H.to_hist(H.counts_of(a))))
    merged.add(H.decode(H.encode(H.to_hist(H.counts_of(b)))))
    assert merged.equals(H.to_hist(H.counts_of(a + b)))
    assert H.summarize(merged) == H.summarize(H.to_hist(H.counts_of(a + b)))


def test_interval_log_round_trip(tmp_path):
    counts = [H.counts_of([100, 200, 300]), H.counts_of([5000] * 10)]
    lines = [H.log_line(i, 1.0, c) for i, c in enumerate(counts)]
    H.write_log(tmp_path / "x.hlog", 1700000000.0, lines, {"status": {"200": 13}})
    start, meta, intervals = H.read_log(tmp_path / "x.hlog")
    assert start == 1700000000.0 and meta == {"status": {"200": 13}}
    assert [h.get_total_count() for _, _, h in intervals] == [3, 10]
    (tmp_path / "junk.hlog").write_text("hello\n")
    with pytest.raises(ValueError):
        H.read_log(tmp_path / "junk.hlog")


def test_workers_intervals_settle_in_order_once_all_reported():
    seen = []
    agg = Aggregator(workers=2, on_interval=lambda p, a: seen.append((p["t"], p["ok"])))
    agg.interval_from(0, (0, 1.0, 5, 0, 5, {100: 5}, None, 0))
    assert seen == []                                     # worker 1 has not reported second 0 yet
    agg.interval_from(1, (0, 1.0, 3, 1, 4, {200: 3}, None, 0))
    agg.interval_from(1, (1, 1.5, 2, 0, 2, {200: 2}, None, 0))
    agg.finish(0, None)                                   # worker 0 ended: second 1 settles with worker 1's share
    agg.close()
    assert seen == [(1.0, 8), (1.5, 2)]
    assert agg.lat == {100: 5, 200: 5} and agg.sent == 11


def test_split_is_exact():
    assert split_by(250, [4, 4]) == [125, 125]
    assert sum(split_by(101, [3, 2, 2])) == 101


def test_template_numbers_are_unique_across_workers():
    heads = [RequestSource(b"POST / HTTP/1.1\r\n", "POST", template='{"n": "u-{i}"}', start=w, step=2)
             for w in range(2)]
    bodies = [s.next().split(b"\r\n\r\n", 1)[1] for s in heads for _ in range(3)]
    assert sorted(bodies) == sorted(f'{{"n": "u-{i}"}}'.encode() for i in range(6))
    req = heads[0].next()
    assert req.endswith(b"Content-Length: 12\r\n\r\n{\"n\": \"u-6\"}")


def test_flag_values():
    assert seconds("500ms", "-d") == 0.5 and seconds("2m", "-d") == 120 and seconds("3", "-d") == 3
    assert millis("0.25s", "--max-p99") == 250 and millis("250", "--max-p99") == 250
    assert fraction("1%", "x") == 0.01 and fraction("0.2", "x") == 0.2
    for bad in (lambda: seconds("soon", "-d"), lambda: fraction("150%", "x"), lambda: millis("fast", "x")):
        with pytest.raises(RtsctlError):
            bad()
