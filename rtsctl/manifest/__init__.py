"""Manifest: load YAML keeping line marks, interpolate ${VARS}, validate against the schema.

`load_manifest(path)` returns a `Manifest` whose `data` is plain dicts and lists that
remember where each value was written, so every later error can name file:line.
`check_manifest(path)` returns every problem at once (for `rtsctl validate`).
"""

from rtsctl.manifest.load import Manifest, check_manifest, load_manifest

__all__ = ["Manifest", "check_manifest", "load_manifest"]
