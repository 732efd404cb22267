"""Content-addressed asset versions (models, environments) shared by model.py and environment.py.

Azure ML asset versions are immutable, so rtsctl never edits one: every version it registers carries the
engine's content digest as the tag `rtsctl.digest`. Observe finds the version whose tag matches the
desired digest (no-op: nothing is uploaded again); when none matches it reports the latest version, and
the plan's update registers the next integer version.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any

from rtsctl.desired.digest import current
from rtsctl.desired.resources import Observed, Resource

from .common import DIGEST_TAG, AzureReconciler, drop_none, is_managed, managed_tags, owner_of
from .errors import is_not_found


def _version_key(version: str | None) -> tuple[int, str]:
    try:
        return (int(str(version)), "")
    except (TypeError, ValueError):
        return (-1, str(version))


class AssetReconciler(AzureReconciler):
    """Shared logic; subclasses say which operations group to use and how to build an entity."""

    @property
    @abstractmethod
    def operations(self) -> Any:
        """ml.models or ml.environments."""

    @abstractmethod
    def build(self, res: Resource, version: str, tags: dict[str, str]) -> Any:
        """The SDK entity to register as `version`."""

    @abstractmethod
    def observed_spec(self, asset: Any) -> dict[str, Any]:
        """Spec fields (besides digest) read back from a version."""

    def versions(self, address: str, name: str, include_archived: bool = False) -> list[Any]:
        from azure.ai.ml.constants import ListViewType

        view = ListViewType.ALL if include_archived else ListViewType.ACTIVE_ONLY
        with self.errors(address):
            try:
                found = list(self.operations.list(name=name, list_view_type=view))
            except Exception as exc:  # noqa: BLE001 - a missing container or workspace means "no versions"
                if is_not_found(exc):
                    return []
                raise
        return sorted(found, key=lambda a: _version_key(a.version))

    @staticmethod
    def matching(versions: list[Any], digest: str) -> Any | None:
        for asset in reversed(versions):
            if (asset.tags or {}).get(DIGEST_TAG) == digest:
                return asset
        return None

    def to_observed(self, res: Resource, asset: Any) -> Observed:
        tags = asset.tags or {}
        spec = {**self.observed_spec(asset), "digest": tags.get(DIGEST_TAG, "(not registered by rtsctl)")}
        if "description" in res.spec:
            spec["description"] = asset.description
        return Observed(
            address=res.address,
            spec=drop_none(spec),
            owned=is_managed(tags),
            owner=owner_of(tags),
            outputs={"version": str(asset.version), "id": asset.id},
            handle=asset,
        )

    def observe(self, res: Resource) -> Observed | None:
        versions = self.versions(res.address, res.name)
        if not versions:
            return None
        aliases = res.inputs.get("digest_aliases") or []
        asset = next((found for digest in [res.spec["digest"], *aliases]
                      if (found := self.matching(versions, digest)) is not None), versions[-1])
        observed = self.to_observed(res, asset)
        observed.spec["digest"] = current(observed.spec["digest"], res.spec["digest"], aliases)
        return observed

    def create(self, res: Resource) -> None:
        digest = res.spec["digest"]
        # idempotent under retries: an attempt whose response was lost may have registered this content
        # already -- reuse it rather than register a duplicate
        if self.matching(self.versions(res.address, res.name), digest) is not None:
            return
        every = self.versions(res.address, res.name, include_archived=True)
        archived = self.matching(every, digest)
        with self.errors(res.address):
            if archived is not None:  # destroyed earlier (archived): bring it back, nothing to upload
                self.operations.restore(name=res.name, version=str(archived.version))
                return
            version = str(max([0, *(_version_key(a.version)[0] for a in every)]) + 1)
            tags = managed_tags(self.settings.tags, {DIGEST_TAG: digest})
            self.operations.create_or_update(self.build(res, version, tags))

    def update(self, res: Resource, observed: Observed) -> None:
        self.create(res)  # a new version: versions are immutable

    def content_digest(self, asset: Any) -> str:
        """The digest the manifest's files would have if they held this version's content (fetched)."""
        raise NotImplementedError

    def adopt(self, res: Resource, observed: Observed) -> Observed:
        asset = observed.handle
        if (asset.tags or {}).get(DIGEST_TAG) == res.spec["digest"]:
            return observed
        with self.errors(res.address):
            same = self.content_digest(asset) == res.spec["digest"]
        return dataclasses.replace(observed, spec={**observed.spec, "digest": res.spec["digest"]}) if same else observed

    def claim(self, res: Resource, observed: Observed) -> None:
        """Tag the version the plan observed as this manifest's; its content digest tag only when `adopt` found
        the fetched content equal to the manifest's (else the plan goes on showing the difference)."""
        asset = observed.handle
        tags = dict(asset.tags or {})
        if observed.spec.get("digest") == res.spec["digest"]:
            tags[DIGEST_TAG] = res.spec["digest"]
        asset.tags = managed_tags(tags, self.settings.tags)
        with self.errors(res.address):  # a version's tags may change (`az ml model update --set tags...`)
            self.operations.create_or_update(asset)

    def delete(self, observed: Observed) -> None:
        """Archive the versions rtsctl registered (the SDK has no delete for workspace assets)."""
        name = observed.address.split(".", 1)[1]
        for asset in self.versions(observed.address, name):
            if is_managed(asset.tags):
                with self.errors(observed.address):
                    try:
                        self.operations.archive(name=name, version=str(asset.version))
                    except Exception as exc:  # noqa: BLE001
                        if not is_not_found(exc):
                            raise

