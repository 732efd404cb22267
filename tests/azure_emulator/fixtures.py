"""Pytest fixtures for the Azure emulator. Enable with `pytest_plugins = ["tests.azure_emulator.fixtures"]`.

* `azure_emulator` / `azure_emulator_async`: a started Emulator (sync / async LROs), stopped afterwards.
* `azure_emulator_factory(**kwargs)`: start emulators with any options; all stopped at teardown.
* `azure_env`: the `azure_emulator` with its `env()` applied to os.environ for the test (restored after),
  which in-process SDK blob uploads need; also undoes azure-ai-ml's AZUREML_CURRENT_CLOUD side effect.
* `fast_arm_deployments`: removes azure-ai-ml's hard-coded 5 s sleep in workspace creation, in-process.
"""

from __future__ import annotations

import pytest

from .server import Emulator


@pytest.fixture
def azure_emulator_factory():
    started: list[Emulator] = []

    def make(**kwargs) -> Emulator:
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def azure_emulator(azure_emulator_factory) -> Emulator:
    return azure_emulator_factory(lro_mode="sync")


@pytest.fixture
def azure_emulator_async(azure_emulator_factory) -> Emulator:
    return azure_emulator_factory(lro_mode="async")


def apply_env(emu: Emulator, monkeypatch) -> Emulator:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    for name, value in emu.env().items():
        monkeypatch.setenv(name, value)
    return emu


@pytest.fixture
def azure_env(azure_emulator, monkeypatch) -> Emulator:
    return apply_env(azure_emulator, monkeypatch)


@pytest.fixture
def fast_arm_deployments(monkeypatch):
    from azure.ai.ml._arm_deployments import arm_deployment_executor

    monkeypatch.setattr(arm_deployment_executor.LROConfigurations, "SLEEP_TIME", 0.05)
