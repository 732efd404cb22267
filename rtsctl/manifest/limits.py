"""Every bound the loader enforces, in one place, so README and RELIABILITY.md can quote them.

These are rtsctl's own limits against hostile or broken input (not Azure's; Azure's rules live
in names.py and the schema). Each is far above what a real manifest needs and far below what
would hang or exhaust a laptop.
"""

from __future__ import annotations

import os

MANIFEST_BYTES = 512 * 1024       # a manifest is a page or two of YAML; 512 KiB leaves room for inline smoke bodies
TEXT_FILE_BYTES = 1 << 20         # conda file, scoring script, Dockerfile
SCRIPT_BYTES = 4 << 20            # a scoring script may embed a little data
FOLDER_FILES = 10_000             # files in a code folder, model folder or build context
FOLDER_BYTES = 8 << 30            # total bytes under such a folder (models are big; they are hashed in chunks)
FILE_BYTES = 8 << 30              # one model file
YAML_DEPTH = 64                   # nesting of mappings and lists (a real manifest uses < 10)
YAML_ALIASES = 200                # alias uses per document
YAML_NODES = 20_000               # values after alias expansion (a scalar counts 1 per started KiB too): a billion
                                  # laughs stops here, before it is built; pure-Python YAML parses ~20k values/s
SCALAR_CHARS = 256 * 1024         # one string, after interpolation
INT_DIGITS = 30                   # a number written with more digits than any bound below is refused unparsed
JSON_BODY_BYTES = 256 * 1024      # a smoke-test request or expected response, serialized
ENV_VARS = 200                    # environment variables per deployment
ENV_NAME_CHARS = 256
ENV_VALUE_CHARS = 32 * 1024       # Linux refuses a single env string above 128 KiB (MAX_ARG_STRLEN)


def local_default_instances() -> int:
    """Instances the local backend runs, over all of a manifest's deployments, when their endpoint's compute declares
    no max_instances: one per CPU core this process may use (sched_getaffinity, which taskset and cgroup cpusets
    narrow), since each instance is a real scoring process on this machine. The one capacity rule: `validate` checks
    it, and `plan`/`apply` refuse through the same check before anything runs."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
