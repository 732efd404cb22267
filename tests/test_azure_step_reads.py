"""The read cache of one apply step (reconcilers/azure/clients.py ReadCache.step): kept until the step writes, never
shared with a step running beside it, dropped when another step held the endpoint's write gate meanwhile, and
bypassed by a poll (`fresh`). In process, on the real ReadCache and EndpointGate; the end-to-end count of the
emulator's requests per step is in tests/test_azure_e2e.py (`assert_each_step_reads_once`)."""

from __future__ import annotations

import threading

from reconcilers.azure.clients import ReadCache
from reconcilers.azure.gate import EndpointGate


class Service:
    """A value that changes, and how often it was read."""

    def __init__(self) -> None:
        self.value, self.reads = 0, 0

    def read(self) -> int:
        self.reads += 1
        return self.value


def test_a_step_reads_once_until_it_writes_or_polls():
    cache, service = ReadCache(), Service()
    with cache.step():
        assert [cache.read("ep", service.read) for _ in range(3)] == [0, 0, 0]
        assert service.reads == 1
        service.value = 1
        with cache.fresh():  # a poll waits for a change: never served what the step read
            assert cache.read("ep", service.read) == 1
        cache.forget()  # what StepPolicy does when the step sends a write
        assert cache.read("ep", service.read) == 1
        assert service.reads == 3
    assert cache.read("ep", service.read) == 1 and service.reads == 4  # outside a step: always fresh


def test_steps_side_by_side_never_share_a_read():
    cache, service = ReadCache(), Service()
    first_read, second_done = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def first() -> None:
        with cache.step():
            seen["first"] = cache.read("ep", service.read)
            first_read.set()
            second_done.wait(5)
            seen["first again"] = cache.read("ep", service.read)  # its own read, kept

    def second() -> None:
        first_read.wait(5)
        service.value = 7
        with cache.step():
            seen["second"] = cache.read("ep", service.read)  # not the first step's read
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"first": 0, "second": 7, "first again": 0}
    assert service.reads == 2


def test_entering_a_gate_another_step_held_drops_what_the_step_read():
    cache, service = ReadCache(), Service()
    gate = EndpointGate("e", lambda: cache.entered("gate:e"))
    step_read, other_done = threading.Event(), threading.Event()
    seen: list[int] = []

    def deleting() -> None:
        with cache.step():
            seen.append(cache.read("ep", service.read))  # before the gate: decides which gate to take
            step_read.set()
            other_done.wait(5)
            with gate.exclusive("deployment.e/blue", print):
                seen.append(cache.read("ep", service.read))  # another step wrote meanwhile: read again
            with gate.exclusive("deployment.e/blue", print):
                seen.append(cache.read("ep", service.read))  # it held the gate last itself: kept

    def traffic() -> None:
        step_read.wait(5)
        with cache.step(), gate.exclusive("traffic.e", print):
            service.value = 5
        other_done.set()

    threads = [threading.Thread(target=deleting), threading.Thread(target=traffic)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [0, 5, 5]
    assert service.reads == 2
