"""`rtsctl bench --engine locust`: the same bench configuration driven by Locust (distributed: one master, N
workers), its results rendered in rtsctl's own reports. script.py writes the locustfile bundle (fixed code + a JSON
of data), results.py turns Locust's stats into rtsctl's result document, tool.py finds or provisions a Python that
has Locust, run.py starts and ends the processes. The Azure Load Testing engine reuses script.py and results.py."""
