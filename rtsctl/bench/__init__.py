"""rtsctl bench: a lean async HTTP/1.1 load tester with HDR latency histograms.

One module per job: cli (argparse wiring), config (flags -> BenchConfig), payload (request bodies),
wire (URL, request bytes, TLS, error names), runner (the event-loop engine: closed and open loop),
histogram (HDR quantization, encode/decode, interval logs), aggregate (merge worker intervals),
workers (one or several processes), progress (live line), report (text / JSON, thresholds),
chart (terminal charts), html (self-contained SVG report), merge (`rtsctl bench merge`).
"""
