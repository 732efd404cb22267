"""Real SDK clients pointed at an emulator (imports azure.* lazily; for tests and benchmarks).

The credential is the REAL azure-identity ClientSecretCredential against the emulator's token
route; blob uploads need `emu.env()` in os.environ (REQUESTS_CA_BUNDLE + HTTPS_PROXY).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Emulator


def credential(emu: "Emulator"):
    from azure.identity import ClientSecretCredential

    s = emu.settings
    return ClientSecretCredential(s.tenant_id, s.client_id, s.client_secret, authority=emu.url,
                                  disable_instance_discovery=True, connection_verify=emu.ca_path)


def _mgmt_kwargs(emu: "Emulator") -> dict:
    return {"base_url": emu.url, "credential_scopes": [emu.url + "/.default"], "connection_verify": emu.ca_path}


def resource_client(emu: "Emulator", cred=None):
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(cred or credential(emu), emu.settings.subscription_id, **_mgmt_kwargs(emu))


def monitor_client(emu: "Emulator", cred=None):
    from azure.mgmt.monitor import MonitorManagementClient

    return MonitorManagementClient(cred or credential(emu), emu.settings.subscription_id, **_mgmt_kwargs(emu))


def aks_client(emu: "Emulator", cred=None):
    from azure.mgmt.containerservice import ContainerServiceClient

    return ContainerServiceClient(cred or credential(emu), emu.settings.subscription_id, **_mgmt_kwargs(emu))


def extensions_client(emu: "Emulator", cred=None):
    from azure.mgmt.kubernetesconfiguration.extensions import KubernetesConfigurationExtensionsMgmtClient

    return KubernetesConfigurationExtensionsMgmtClient(cred or credential(emu), emu.settings.subscription_id,
                                                       **_mgmt_kwargs(emu))


def ml_client(emu: "Emulator", resource_group: str, workspace: str | None = None, cred=None):
    from azure.ai.ml import MLClient

    return MLClient(cred or credential(emu), emu.settings.subscription_id, resource_group, workspace,
                    cloud=emu.cloud_name, cloud_metadata=emu.cloud_metadata())


def _dataplane_kwargs(emu: "Emulator") -> dict:
    """Data-plane hosts ({vault}.vault.azure.net, {guid}.{region}.cnt-prod.loadtesting.azure.com) are reached by
    their real names through the emulator's proxy."""
    return {"connection_verify": emu.ca_path, "proxies": {"https": emu.proxy_url}}


def load_test_mgmt_client(emu: "Emulator", cred=None):
    from azure.mgmt.loadtesting import LoadTestMgmtClient

    return LoadTestMgmtClient(cred or credential(emu), emu.settings.subscription_id, **_mgmt_kwargs(emu))


def load_test_admin_client(emu: "Emulator", data_plane_uri: str, cred=None):
    """`data_plane_uri`: the resource's properties.dataPlaneURI (no scheme, as the service gives it)."""
    from azure.developer.loadtesting import LoadTestAdministrationClient

    return LoadTestAdministrationClient(data_plane_uri, cred or credential(emu), **_dataplane_kwargs(emu))


def load_test_run_client(emu: "Emulator", data_plane_uri: str, cred=None):
    from azure.developer.loadtesting import LoadTestRunClient

    return LoadTestRunClient(data_plane_uri, cred or credential(emu), **_dataplane_kwargs(emu))


def secret_client(emu: "Emulator", vault_url: str, cred=None):
    """`vault_url`: https://{vault}.vault.azure.net"""
    from azure.keyvault.secrets import SecretClient

    return SecretClient(vault_url, cred or credential(emu), **_dataplane_kwargs(emu))
