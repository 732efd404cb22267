"""Writes tests/corpus/cases/*.yaml: one small broken manifest per case, from the table below.

    python -m tests.corpus.generate      # rewrites cases/ (commit the result)

Each case is BASE with one edit. Its first lines say what rtsctl must answer:
    # expect: <fragment of the one-line error, including the field>
    # line: <line the error must name>           (when the fault sits on one line)
    # setup: <kind> <relative path>              (made at test time: fifo, loop, big, dirloop)
    # env: KEY=<n>x<char>                        (an environment variable the case needs)
The test (tests/test_corpus.py) copies cases/, files/ and manifests/seed/ into a scratch project.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
CASES = HERE / "cases"

BASE = """\
provider: {kind: local}
resource_group: rts-corpus
workspace: {name: rts-ws}
models:
  - {name: m1, path: seed/model}
environments:
  - {name: env1, image: python:3.11-slim, conda_file: seed/conda.yaml}
computes:
  - {name: cpu, type: local, max_instances: 4}
endpoints:
  - name: rts-score
    compute: cpu
    deployments:
      - name: blue
        model: m1
        environment: env1
        code_configuration: {code: seed/src, scoring_script: score.py}
        instance_type: local
        instance_count: 1
        environment_variables: {GREETING_STYLE: seed}
    traffic: {blue: 100}
    smoke_test:
      request: {name: Daniel}
"""

DEP = "deployments[0]"
EP = "endpoints[0]"


def _bomb(key: str = "a") -> str:
    lines = [f'{key}0: &{key}0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*{key}{i - 1}"] * 9)
        lines.append(f"{key}{i}: &{key}{i} [{refs}]")
    return "\n".join(lines)


def _deep_block(levels: int) -> str:
    return "\n".join("  " * i + f"k{i}:" for i in range(levels)) + " 1"


# name: (old, new, expected fragment, marker for the line or None)
EDITS: dict[str, tuple[str, str, str, str | None]] = {
    # --- names: endpoint (azure-ai-ml NAME_REGEX_PATTERN, 3-32) ---
    "endpoint-name-trailing-newline": ("  - name: rts-score", '  - name: "rts-score\\n"', f"{EP}.name: 'rts-score\\n'", "rts-score\\n"),
    "endpoint-name-too-short-ab": ("  - name: rts-score", "  - name: ab", f"{EP}.name: 'ab' is 2 characters", "name: ab"),
    "endpoint-name-trailing-dash": ("  - name: rts-score", "  - name: rts-score-", f"{EP}.name: 'rts-score-' is not a valid name", "rts-score-"),
    "endpoint-name-leading-digit": ("  - name: rts-score", "  - name: 1rts", f"{EP}.name: '1rts' is not a valid name", "1rts"),
    "endpoint-name-underscore": ("  - name: rts-score", "  - name: rts_score", f"{EP}.name: 'rts_score' is not a valid name", "rts_score"),
    "endpoint-name-33-chars": ("  - name: rts-score", "  - name: " + "a" * 33, f"{EP}.name: '{'a' * 33}' is 33 characters", "a" * 33),
    "endpoint-name-space": ("  - name: rts-score", '  - name: "rts score"', f"{EP}.name: 'rts score' is not a valid name", "rts score"),
    "endpoint-name-dot": ("  - name: rts-score", "  - name: rts.score", f"{EP}.name: 'rts.score' is not a valid name", "rts.score"),
    "endpoint-name-unicode": ("  - name: rts-score", "  - name: rts-scöre", f"{EP}.name: 'rts-scöre' is not a valid name", "rts-scöre"),
    "endpoint-name-empty": ("  - name: rts-score", '  - name: ""', f"{EP}.name: '' is 0 characters", 'name: ""'),
    "endpoint-name-leading-dash": ("  - name: rts-score", "  - name: -rts", f"{EP}.name: '-rts' is not a valid name", "-rts"),
    "endpoint-name-number": ("  - name: rts-score", "  - name: 12345", f"{EP}.name: expected a string, got 12345", "12345"),
    "endpoint-name-crlf": ("  - name: rts-score", '  - name: "rts-score\\r"', f"{EP}.name: 'rts-score\\r' is not a valid name", "rts-score"),
    # --- names: deployment ---
    "deployment-name-underscore-blue_1": ("      - name: blue", "      - name: blue_1", f"{DEP}.name: 'blue_1' is not a valid name", "blue_1"),
    "deployment-name-one-letter": ("      - name: blue", "      - name: b", f"{DEP}.name: 'b' is 1 characters", "- name: b"),
    "deployment-name-two-letters": ("      - name: blue", "      - name: bl", f"{DEP}.name: 'bl' is 2 characters", "- name: bl"),
    "deployment-name-trailing-newline": ("      - name: blue", '      - name: "blue\\n"', f"{DEP}.name: 'blue\\n'", "blue\\n"),
    "deployment-name-trailing-dash": ("      - name: blue", "      - name: blue-", f"{DEP}.name: 'blue-' is not a valid name", "blue-"),
    "deployment-name-40-chars": ("      - name: blue", "      - name: " + "b" * 40, f"{DEP}.name: '{'b' * 40}' is 40 characters", "b" * 40),
    "deployment-name-leading-digit": ("      - name: blue", "      - name: 1blue", f"{DEP}.name: '1blue' is not a valid name", "1blue"),
    # --- names: workspace, resource group, compute, assets ---
    "workspace-name-ab": ("{name: rts-ws}", "{name: ab}", "workspace.name: 'ab' is 2 characters", "{name: ab}"),
    "workspace-name-underscore": ("{name: rts-ws}", "{name: rts_ws}", "workspace.name: 'rts_ws' is not a valid name", "rts_ws"),
    "workspace-name-newline": ("{name: rts-ws}", '{name: "rts-ws\\n"}', "workspace.name: 'rts-ws\\n'", "rts-ws\\n"),
    "workspace-name-34-chars": ("{name: rts-ws}", "{name: " + "w" * 34 + "}", "workspace.name: '" + "w" * 34 + "' is 34 characters", "w" * 34),
    "workspace-name-leading-dash": ("{name: rts-ws}", "{name: -ws}", "workspace.name: '-ws' is not a valid name", "-ws"),
    "resource-group-trailing-period": ("resource_group: rts-corpus", "resource_group: rts-corpus.", "resource_group: 'rts-corpus.' is not a valid name", "rts-corpus."),
    "resource-group-dotdot": ("resource_group: rts-corpus", 'resource_group: ".."', "resource_group: '..' is not a valid name", '".."'),
    "resource-group-slash": ("resource_group: rts-corpus", "resource_group: rts/../x", "resource_group: 'rts/../x' is not a valid name", "rts/../x"),
    "resource-group-newline": ("resource_group: rts-corpus", 'resource_group: "rts\\n"', "resource_group: 'rts\\n'", "rts\\n"),
    "resource-group-91-chars": ("resource_group: rts-corpus", "resource_group: " + "g" * 91, "resource_group: '" + "g" * 91 + "' is 91 characters", "g" * 91),
    "resource-group-empty": ("resource_group: rts-corpus", 'resource_group: ""', "resource_group: '' is 0 characters", 'resource_group: ""'),
    "compute-name-one-char": ("{name: cpu, type: local", "{name: c, type: local", "computes[0].name: 'c' is 1 characters", "{name: c,"),
    "compute-name-17-chars": ("{name: cpu, type: local", "{name: " + "c" * 17 + ", type: local", "computes[0].name: '" + "c" * 17 + "' is 17 characters", "c" * 17),
    "compute-name-underscore": ("{name: cpu, type: local", "{name: cpu_1, type: local", "computes[0].name: 'cpu_1' is not a valid name", "cpu_1"),
    "model-name-leading-underscore": ("{name: m1, path", "{name: _m1, path", "models[0].name: '_m1' is not a valid name", "_m1"),
    "model-name-trailing-period": ("{name: m1, path", "{name: m1., path", "models[0].name: 'm1.' is not a valid name", "m1."),
    "model-name-slash": ("{name: m1, path", "{name: m/1, path", "models[0].name: 'm/1' is not a valid name", "m/1"),
    "model-name-256-chars": ("{name: m1, path", "{name: " + "m" * 256 + ", path", "models[0].name: '" + "m" * 256 + "' is 256 characters", "m" * 256),
    "environment-name-leading-dot": ("{name: env1, image", "{name: .env, image", "environments[0].name: '.env' is not a valid name", ".env"),
    "environment-name-space": ("{name: env1, image", '{name: "env 1", image', "environments[0].name: 'env 1' is not a valid name", "env 1"),
    "instance-type-newline": ("instance_type: local", 'instance_type: "local\\n"', f"{DEP}.instance_type: 'local\\n' is not a valid name", "instance_type"),
    "image-trailing-newline": ("image: python:3.11-slim", 'image: "python:3.11-slim\\n"', "environments[0].image: 'python:3.11-slim\\n' contains the control character '\\n'", "python:3.11-slim"),
    "model-reference-newline": ("        model: m1", '        model: "m1\\n"', f"{DEP}.model: 'm1\\n' contains the control character", "m1\\n"),
    "code-path-tab": ("{code: seed/src,", '{code: "seed/src\\t",', f"{DEP}.code_configuration.code: 'seed/src\\t' contains the control character '\\t'", "seed/src"),
    "subscription-id-not-a-guid": ("provider: {kind: local}", "provider: {kind: azure, subscription_id: my-subscription}", "provider.subscription_id: 'my-subscription' is 15 characters; a subscription ID is a GUID", "my-subscription"),
    "location-newline": ("provider: {kind: local}", 'provider: {kind: local, location: "westeurope\\n"}', "provider.location: 'westeurope\\n' contains the control character", "westeurope"),
    # --- numbers: bounds from the az ml schemas and docs ---
    "instance-count-100000": ("instance_count: 1", "instance_count: 100000", f"{DEP}.instance_count: 100000 is out of range", "100000"),
    "instance-count-zero": ("instance_count: 1", "instance_count: 0", f"{DEP}.instance_count: 0 is out of range", "instance_count: 0"),
    "instance-count-negative": ("instance_count: 1", "instance_count: -1", f"{DEP}.instance_count: -1 is out of range", "instance_count: -1"),
    "instance-count-float": ("instance_count: 1", "instance_count: 1.5", f"{DEP}.instance_count: expected an integer, got 1.5", "1.5"),
    "instance-count-string": ("instance_count: 1", 'instance_count: "2"', f"{DEP}.instance_count: expected an integer, got '2'", '"2"'),
    "instance-count-bool": ("instance_count: 1", "instance_count: true", f"{DEP}.instance_count: expected an integer, got True", "true"),
    "instance-count-infinite": ("instance_count: 1", "instance_count: .inf", f"{DEP}.instance_count: inf is not a finite number", ".inf"),
    "instance-count-5000-digits": ("instance_count: 1", "instance_count: " + "9" * 5000, "a number written with 5000 characters", "9" * 5000),
    "instance-count-over-compute": ("instance_count: 1", "instance_count: 5", "computes[0].max_instances: deployments ask for 5 instances", "max_instances: 4"),
    "instance-count-local-default-capacity": ("    compute: cpu\n", "", f"{EP}.deployments: deployments ask for 17 local instances", "    deployments:"),
    "request-timeout-over-managed-limit": ("        instance_count: 1\n", "        instance_count: 1\n        request_settings: {request_timeout_ms: 180001}\n", f"{DEP}.request_settings.request_timeout_ms: 180001 is out of range: managed", "180001"),
    "request-timeout-zero": ("        instance_count: 1\n", "        instance_count: 1\n        request_settings: {request_timeout_ms: 0}\n", "request_timeout_ms: 0 is out of range", "request_timeout_ms"),
    "request-timeout-huge": ("        instance_count: 1\n", "        instance_count: 1\n        request_settings: {request_timeout_ms: 1000000000}\n", "request_timeout_ms: 1000000000 is out of range", "request_timeout_ms"),
    "max-concurrent-zero": ("        instance_count: 1\n", "        instance_count: 1\n        request_settings: {max_concurrent_requests_per_instance: 0}\n", "max_concurrent_requests_per_instance: 0 is out of range", "max_concurrent"),
    "max-concurrent-huge": ("        instance_count: 1\n", "        instance_count: 1\n        request_settings: {max_concurrent_requests_per_instance: 100000}\n", "max_concurrent_requests_per_instance: 100000 is out of range", "max_concurrent"),
    "max-queue-wait-negative": ("        instance_count: 1\n", "        instance_count: 1\n        request_settings: {max_queue_wait_ms: -1}\n", "max_queue_wait_ms: -1 is out of range", "max_queue_wait_ms"),
    "probe-period-zero": ("        instance_count: 1\n", "        instance_count: 1\n        liveness_probe: {period: 0}\n", "liveness_probe.period: 0 is out of range", "liveness_probe"),
    "probe-timeout-huge": ("        instance_count: 1\n", "        instance_count: 1\n        readiness_probe: {timeout: 100000}\n", "readiness_probe.timeout: 100000 is out of range", "readiness_probe"),
    "probe-liveness-success-threshold": ("        instance_count: 1\n", "        instance_count: 1\n        liveness_probe: {success_threshold: 2}\n", "liveness_probe.success_threshold: a liveness probe's success_threshold is fixed at 1", "liveness_probe"),
    "probe-failure-threshold-zero": ("        instance_count: 1\n", "        instance_count: 1\n        readiness_probe: {failure_threshold: 0}\n", "readiness_probe.failure_threshold: 0 is out of range", "readiness_probe"),
    "max-instances-zero": ("max_instances: 4", "max_instances: 0", "computes[0].max_instances: 0 is out of range", "max_instances: 0"),
    "max-instances-huge": ("max_instances: 4", "max_instances: 100000", "computes[0].max_instances: 100000 is out of range", "max_instances: 100000"),
    "max-parallel-zero": ("provider: {kind: local}", "provider: {kind: local, max_parallel: 0}", "provider.max_parallel: 0 is out of range", "max_parallel"),
    "max-parallel-huge": ("provider: {kind: local}", "provider: {kind: local, max_parallel: 1000}", "provider.max_parallel: 1000 is out of range", "max_parallel"),
    "traffic-over-100": ("traffic: {blue: 100}", "traffic: {blue: 101}", f"{EP}.traffic.blue: 101 is out of range", "blue: 101"),
    "traffic-negative": ("traffic: {blue: 100}", "traffic: {blue: -5}", f"{EP}.traffic.blue: -5 is out of range", "blue: -5"),
    "traffic-sum-90": ("traffic: {blue: 100}", "traffic: {blue: 90}", f"{EP}.traffic: traffic must total 100", "blue: 90"),
    "smoke-timeout-zero": ("      request: {name: Daniel}", "      request: {name: Daniel}\n      timeout: 0", f"{EP}.smoke_test.timeout: 0 is out of range", "timeout: 0"),
    "smoke-timeout-huge": ("      request: {name: Daniel}", "      request: {name: Daniel}\n      timeout: 1.0e+9", f"{EP}.smoke_test.timeout: 1000000000.0 is out of range", "timeout: 1.0e+9"),
    "smoke-timeout-nan": ("      request: {name: Daniel}", "      request: {name: Daniel}\n      timeout: .nan", f"{EP}.smoke_test.timeout: nan is not a finite number", ".nan"),
    "smoke-status-99": ("      request: {name: Daniel}", "      request: {name: Daniel}\n      expected_status: 99", f"{EP}.smoke_test.expected_status: 99 is out of range", "expected_status"),
    "smoke-status-1000": ("      request: {name: Daniel}", "      request: {name: Daniel}\n      expected_status: 1000", f"{EP}.smoke_test.expected_status: 1000 is out of range", "expected_status"),
    # --- environment variables ---
    "env-var-name-with-equals": ("{GREETING_STYLE: seed}", '{"A=B": seed}', f"{DEP}.environment_variables.A=B: environment variable name 'A=B' is not a valid name", "A=B"),
    "env-var-value-with-nul": ("{GREETING_STYLE: seed}", '{GREETING_STYLE: "se\\0ed"}', f"{DEP}.environment_variables.GREETING_STYLE: contains a NUL character", "GREETING_STYLE"),
    "env-var-name-with-nul": ("{GREETING_STYLE: seed}", '{"GREETING\\0STYLE": seed}', "a key contains a NUL character", "GREETING"),
    "env-var-name-with-space": ("{GREETING_STYLE: seed}", '{"GREETING STYLE": seed}', "environment variable name 'GREETING STYLE' is not a valid name", "GREETING STYLE"),
    "env-var-name-leading-digit": ("{GREETING_STYLE: seed}", "{1GREETING: seed}", "environment variable name '1GREETING' is not a valid name", "1GREETING"),
    "env-var-name-empty": ("{GREETING_STYLE: seed}", '{"": seed}', "environment_variables: '' is 0 characters", '"": seed'),
    "env-var-value-40k": ("{GREETING_STYLE: seed}", "{GREETING_STYLE: " + "v" * 40000 + "}", f"{DEP}.environment_variables.GREETING_STYLE: value is 40000 characters", "GREETING_STYLE"),
    "env-var-value-list": ("{GREETING_STYLE: seed}", "{GREETING_STYLE: [a, b]}", "environment_variables.GREETING_STYLE: expected a string or a number or true or false", "GREETING_STYLE"),
    "env-var-too-many": ("{GREETING_STYLE: seed}", "{" + ", ".join(f"V{i}: x" for i in range(201)) + "}", f"{DEP}.environment_variables: has 201 entries; at most 200", "V200"),
    # --- tags ---
    "tag-name-forbidden-char": ("{name: rts-ws}", '{name: rts-ws, tags: {"a<b": x}}', "workspace.tags.a<b: tag name 'a<b' contains '<'", "a<b"),
    "tag-value-300-chars": ("{name: rts-ws}", "{name: rts-ws, tags: {team: " + "t" * 300 + "}}", "workspace.tags.team: ", "team"),
    "tag-too-many": ("{name: rts-ws}", "{name: rts-ws, tags: {" + ", ".join(f"t{i}: x" for i in range(51)) + "}}", "workspace.tags: has 51 entries; at most 50", "t50"),
    # --- YAML itself ---
    "billion-laughs": ("provider: {kind: local}", "provider: {kind: local}\n" + _bomb(), "the document expands to more than", None),
    "alias-bomb-in-smoke-request": ("      request: {name: Daniel}", "      request:\n" + "\n".join("        " + line for line in _bomb("r").splitlines()), "the document expands to more than", None),
    "deep-nesting-flow-1000": ("      request: {name: Daniel}", "      request: " + "[" * 1000 + "]" * 1000, "nested deeper than 64 levels", "[[[["),
    "deep-nesting-block-500": ("      request: {name: Daniel}", "      request:\n" + "\n".join("        " + line for line in _deep_block(500).splitlines()), "nested deeper than 64 levels", None),
    "too-many-values": ("      request: {name: Daniel}", "      request: [" + ",".join(["1"] * 21000) + "]", "the document expands to more than 20000 values", "request"),
    "long-string-aliased": ("      request: {name: Daniel}", "      request: {s: &s " + "y" * 120_000 + ", copies: [" + ", ".join(["*s"] * 199) + "]}", "the document expands to more than 20000 values", "copies"),
    "recursive-alias": ("      request: {name: Daniel}", "      request: &loop [1, *loop]", "recursive YAML alias *loop", "*loop"),
    "too-many-aliases": ("      request: {name: Daniel}", "      request: {a: &s x, b: [" + ", ".join(["*s"] * 201) + "]}", "more than 200 YAML aliases", "*s"),
    "duplicate-key": ("        instance_count: 1\n", "        instance_count: 1\n        instance_count: 2\n", "instance_count: duplicate key 'instance_count'", "instance_count: 2"),
    "yaml-syntax-unclosed-flow": ("{name: rts-ws}", "{name: rts-ws", "YAML syntax error", None),
    "yaml-tab-indentation": ("        instance_type: local", "\tinstance_type: local", "YAML syntax error", None),
    "yaml-two-documents": ("provider: {kind: local}", "provider: {kind: local}\n---\nfoo: 1\n---", "YAML syntax error: expected a single document in the stream, but found another document", None),
    "yaml-python-tag": ("resource_group: rts-corpus", "resource_group: !!python/object/apply:os.system [echo pwned]", "YAML syntax error: could not determine a constructor", "!!python"),
    "yaml-unknown-tag": ("resource_group: rts-corpus", "resource_group: !vault secret", "YAML syntax error: could not determine a constructor", "!vault"),
    "yaml-control-character": ("resource_group: rts-corpus", "resource_group: rts\x07corpus", "YAML cannot contain the character '\\x07'", "rts\x07corpus"),
    "smoke-request-date": ("      request: {name: Daniel}", "      request: {when: 2024-01-01}", f"{EP}.smoke_test.request: date value '2024-01-01' cannot be sent as JSON", "2024-01-01"),
    "smoke-request-binary": ("      request: {name: Daniel}", "      request: {blob: !!binary aGVsbG8=}", f"{EP}.smoke_test.request: bytes value", "!!binary"),
    "smoke-request-set": ("      request: {name: Daniel}", "      request: !!set {a, b}", f"{EP}.smoke_test.request: set value", "!!set"),
    "smoke-request-too-large": ("      request: {name: Daniel}", "      request: {big: &big " + "x" * 10000 + ", copies: [" + ", ".join(["*big"] * 150) + "]}", f"{EP}.smoke_test.request: is 1510", "copies"),
    "yaml-impossible-date": ("resource_group: rts-corpus", "resource_group: 2024-13-45", "YAML syntax error: invalid value '2024-13-45': month must be in 1..12", "2024-13-45"),
    "yaml-explicit-float-tag": ("max_instances: 4", "max_instances: !!float abc", "YAML syntax error: invalid value 'abc': could not convert string to float", "!!float"),
    "yaml-explicit-int-tag": ("max_instances: 4", "max_instances: !!int 4x", "YAML syntax error: invalid value '4x': invalid literal for int()", "!!int"),
    "smoke-request-nan": ("      request: {name: Daniel}", "      request: {score: .nan}", f"{EP}.smoke_test.request.score: nan is not a finite number", ".nan"),
    "description-nul": ("{name: rts-ws}", '{name: rts-ws, description: "a\\0b"}', "workspace.description: contains a NUL character", "description"),
    "description-6000-chars": ("{name: rts-ws}", "{name: rts-ws, description: " + "d" * 6000 + "}", "workspace.description: ", "description"),
    # --- files the manifest names ---
    "conda-file-dev-zero": ("conda_file: seed/conda.yaml", "conda_file: /dev/zero", "environments[0].conda_file: conda file '/dev/zero': a character device, not a regular file", "/dev/zero"),
    "conda-file-folder": ("conda_file: seed/conda.yaml", "conda_file: seed", "environments[0].conda_file: conda file 'seed': a folder, not a regular file", "conda_file: seed}"),
    "conda-file-non-utf8": ("conda_file: seed/conda.yaml", "conda_file: files/latin1.yaml", "environments[0].conda_file: conda file 'files/latin1.yaml': not UTF-8 text (byte 0xe9 at line 1)", "latin1"),
    "conda-file-nul-bytes": ("conda_file: seed/conda.yaml", "conda_file: files/nul.yaml", "environments[0].conda_file: conda file 'files/nul.yaml': contains a NUL byte at line 2", "nul.yaml"),
    "conda-file-missing": ("conda_file: seed/conda.yaml", "conda_file: seed/nope.yaml", "environments[0].conda_file: conda file 'seed/nope.yaml': not found", "nope.yaml"),
    "conda-file-fifo": ("conda_file: seed/conda.yaml", "conda_file: fifo.yaml", "environments[0].conda_file: conda file 'fifo.yaml': a FIFO, not a regular file", "fifo.yaml"),
    "conda-file-alias-bomb": ("conda_file: seed/conda.yaml", "conda_file: files/bomb.yaml", "environments[0].conda_file: conda file 'files/bomb.yaml': line ", "bomb.yaml"),
    "conda-file-a-list": ("conda_file: seed/conda.yaml", "conda_file: files/list.yaml", "environments[0].conda_file: conda file 'files/list.yaml': a conda file is a YAML mapping", "list.yaml"),
    "conda-file-too-big": ("conda_file: seed/conda.yaml", "conda_file: big.yaml", "environments[0].conda_file: conda file 'big.yaml': 2097152 bytes, larger than", "big.yaml"),
    "conda-file-symlink-loop": ("conda_file: seed/conda.yaml", "conda_file: loop.yaml", "environments[0].conda_file: conda file 'loop.yaml': ", "loop.yaml"),
    "conda-file-empty-path": ("conda_file: seed/conda.yaml", 'conda_file: ""', "environments[0].conda_file: conda file is empty", 'conda_file: ""'),
    "model-path-dev-zero": ("path: seed/model}", "path: /dev/zero}", "models[0].path: model path '/dev/zero': a character device", "/dev/zero"),
    "model-path-missing": ("path: seed/model}", "path: seed/nomodel}", "models[0].path: model path 'seed/nomodel': not found", "nomodel"),
    "model-path-fifo": ("path: seed/model}", "path: fifo.yaml}", "models[0].path: model path 'fifo.yaml': a FIFO", "fifo.yaml"),
    "model-folder-with-fifo": ("path: seed/model}", "path: fifodir}", "models[0].path: model path 'fifodir': contains a FIFO", "fifodir"),
    "model-folder-with-dev-zero-link": ("path: seed/model}", "path: zerodir}", "models[0].path: model path 'zerodir': contains a character device", "zerodir"),
    "code-folder-is-a-file": ("{code: seed/src,", "{code: seed/conda.yaml,", f"{DEP}.code_configuration.code: code folder 'seed/conda.yaml': a file, not a folder", "conda.yaml,"),
    "code-folder-missing": ("{code: seed/src,", "{code: seed/nosrc,", f"{DEP}.code_configuration.code: code folder 'seed/nosrc': not found", "nosrc"),
    "code-folder-symlink-loop": ("{code: seed/src,", "{code: loopdir,", f"{DEP}.code_configuration.code: code folder 'loopdir': contains a symlink to a folder", "loopdir"),
    "scoring-script-outside-folder": ("scoring_script: score.py}", "scoring_script: ../../../../etc/passwd}", f"{DEP}.code_configuration.scoring_script: scoring script '../../../../etc/passwd' is outside", "passwd"),
    "scoring-script-absolute": ("scoring_script: score.py}", "scoring_script: /dev/zero}", f"{DEP}.code_configuration.scoring_script: scoring script '/dev/zero' is outside", "/dev/zero"),
    "scoring-script-missing": ("scoring_script: score.py}", "scoring_script: scoer.py}", f"{DEP}.code_configuration.scoring_script: scoring script 'scoer.py': not found", "scoer.py"),
    "scoring-script-non-utf8": ("{code: seed/src, scoring_script: score.py}", "{code: files, scoring_script: latin1.yaml}", f"{DEP}.code_configuration.scoring_script: scoring script 'latin1.yaml': not UTF-8 text", "latin1"),
    "build-context-is-a-file": ("{name: env1, image: python:3.11-slim, conda_file: seed/conda.yaml}", "{name: env1, build: {path: seed/conda.yaml}}", "environments[0].build.path: build context 'seed/conda.yaml': a file, not a folder", "build:"),
    "dockerfile-outside-context": ("{name: env1, image: python:3.11-slim, conda_file: seed/conda.yaml}", "{name: env1, build: {path: seed/src, dockerfile_path: ../../Dockerfile}}", "environments[0].build.dockerfile_path: Dockerfile '../../Dockerfile' is outside", "build:"),
    "model-path-empty": ("path: seed/model}", 'path: ""}', "models[0].path: model path is empty", 'path: ""'),
    # --- schema and references ---
    "unknown-field": ("        instance_count: 1\n", "        instance_count: 1\n        instance_cuont: 1\n", f"{DEP}.instance_cuont: unknown field 'instance_cuont' (did you mean 'instance_count'?)", "instance_cuont"),
    "workspace-is-a-list": ("workspace: {name: rts-ws}", "workspace: [rts-ws]", "workspace: expected a mapping, got a list", "workspace: ["),
    "endpoints-missing": ("endpoints:\n", "endpoints_:\n", ": missing required field 'endpoints'", None),
    "duplicate-endpoint-names-by-case": ("    traffic: {blue: 100}\n", "    traffic: {blue: 100}\n  - name: RTS-Score\n    deployments: [{name: blue, model: m1, code_configuration: {code: seed/src, scoring_script: score.py}, instance_type: local}]\n", "endpoints[1].name: duplicate name 'RTS-Score'", "RTS-Score"),
    "unknown-model": ("        model: m1", "        model: m2", f"{DEP}.model: unknown model 'm2' (declared: m1)", "model: m2"),
    "unknown-environment": ("        environment: env1", "        environment: env2", f"{DEP}.environment: unknown environment 'env2'", "env2"),
    "unknown-compute": ("    compute: cpu", "    compute: gpu", f"{EP}.compute: unknown compute 'gpu'", "compute: gpu"),
    "traffic-unknown-deployment": ("traffic: {blue: 100}", "traffic: {bleu: 100}", f"{EP}.traffic.bleu: traffic names unknown deployment 'bleu'", "bleu"),
    "smoke-unknown-deployment": ("      request: {name: Daniel}", "      request: {name: Daniel}\n      deployment: green", f"{EP}.smoke_test.deployment: unknown deployment 'green'", "green"),
    "environment-image-and-build": ("{name: env1, image: python:3.11-slim, conda_file: seed/conda.yaml}", "{name: env1, image: python:3.11-slim, build: {path: seed/src}}", "environments[0]: an environment needs exactly one of 'image' or 'build'", "build:"),
    "provider-unknown-kind": ("provider: {kind: local}", "provider: {kind: gcp}", "provider.kind: must be one of 'local', 'azure', got 'gcp'", "gcp"),
    "unset-variable": ("resource_group: rts-corpus", "resource_group: ${RTS_CORPUS_UNSET_VARIABLE}", "resource_group: variable RTS_CORPUS_UNSET_VARIABLE is not set", "RTS_CORPUS_UNSET"),
    "variable-expands-too-large": ("resource_group: rts-corpus", "resource_group: rts-${RTS_CORPUS_BIG}", "resource_group: is 300004 characters after substituting variables", "RTS_CORPUS_BIG"),
    "too-many-deployments": ("      request: {name: Daniel}\n", "      request: {name: Daniel}\n  - {name: many, traffic: {dep0: 100}, deployments: [" + ", ".join(f"{{name: dep{i}, model: m1, code_configuration: {{code: seed/src, scoring_script: score.py}}, instance_type: local}}" for i in range(21)) + "]}\n", "endpoints[1].deployments: has 21 entries; at most 20", "dep20"),
    "kubernetes-pair-too-long": ("computes:\n  - {name: cpu, type: local, max_instances: 4}", "computes:\n  - {name: cpu, type: kubernetes, cluster: {name: aks1}}", "on Kubernetes, endpoint name + deployment name must be 6-62", None),
    "kubernetes-namespace-uppercase": ("computes:\n  - {name: cpu, type: local, max_instances: 4}", "computes:\n  - {name: cpu, type: kubernetes, namespace: AzureML, cluster: {name: aks1}}", "computes[0].namespace: 'AzureML' is not a valid name", "AzureML"),
    "kubernetes-cluster-name-dash": ("computes:\n  - {name: cpu, type: local, max_instances: 4}", "computes:\n  - {name: cpu, type: kubernetes, cluster: {name: -aks}}", "computes[0].cluster.name: '-aks' is not a valid name", "-aks"),
    "kubernetes-node-count-huge": ("computes:\n  - {name: cpu, type: local, max_instances: 4}", "computes:\n  - {name: cpu, type: kubernetes, cluster: {name: aks1, node_count: 100000}}", "computes[0].cluster.node_count: 100000 is out of range", "node_count"),
}

# Whole-file cases: (text or bytes, expected fragment, line)
FILES: dict[str, tuple[str | bytes, str, int | None]] = {
    "file-empty": ("", "the manifest is empty", 1),
    "file-top-level-list": ("- a\n- b\n", "the manifest must be a mapping at the top level", 1),
    "file-no-endpoints": ("resource_group: rg1\nworkspace: {name: rts-ws}\nendpoints: []\n",
                          "endpoints: has 0 entries; at least 1 allowed", 3),
    "file-only-a-scalar": ("just a string\n", "the manifest must be a mapping at the top level", 1),
    "file-non-utf8": (BASE.replace("rts-corpus", "rts-corp\xe9s").encode("latin-1"), "not UTF-8 text (byte 0xe9 at line 2)", 1),
    "file-nul-byte": (BASE.replace("rts-corpus", "rts-\0corpus").encode(), "contains a NUL byte at line 2", 1),
    "file-utf16": (BASE.encode("utf-16"), "contains a NUL byte at line 1", 1),
}

# conda files whose `pip:` entries are not PyPI requirements (issue 14): each refused by validate with the conda
# file's line (5: the entry under `pip:`), before anything exists. name -> the entry, as YAML
PIP_ENTRIES = {
    "requirement-option": "--requirement=/etc/passwd",
    "constraint-option": "--constraint=/etc/passwd",
    "carriage-return": '"six\\r-r /etc/passwd"',
    "extra-index-url": '"--extra-index-url http://127.0.0.1:9/${HOME}/simple/"',
    "index-url": "--index-url=http://127.0.0.1:9/simple/",
    "find-links": "--find-links=/tmp",
    "no-index": "--no-index",
    "editable": "--editable=/p",
    "file-url": "file:///p",
    "path": "/p",
    "relative-path": "./local-package",
    "name-at-url": "six @ file:///p",
    "name-at-https": "six @ https://127.0.0.1:9/six-1.0-py3-none-any.whl",
    "variable-in-marker": "'six; os_name == \"${HOME}\"'",
    "not-a-requirement": "six ===",
}
for _name in PIP_ENTRIES:
    EDITS[f"conda-pip-{_name}"] = (
        "conda_file: seed/conda.yaml", f"conda_file: files/pip-{_name}.yaml",
        f"environments[0].conda_file: conda file 'files/pip-{_name}.yaml': line 5: pip entry ", f"pip-{_name}.yaml")

# resources.limits.memory (issue 14): a quantity, and enough for a Python host
EDITS["resources-memory-too-small"] = ("        instance_count: 1\n", "        instance_count: 1\n        resources: {limits: {memory: 16Mi}}\n",
                                       f"{DEP}.resources.limits.memory: 16Mi is below 64Mi", "resources:")
EDITS["resources-memory-not-a-quantity"] = ("        instance_count: 1\n", "        instance_count: 1\n        resources: {limits: {memory: 2GB}}\n",
                                            f"{DEP}.resources.limits.memory: '2GB' is not a memory quantity", "resources:")

# A manifest padded past the 1 MiB limit at test time (setup `pad`): too big to commit.
EDITS["manifest-over-1mib"] = ("provider: {kind: local}", "provider: {kind: local}", "bytes, larger than the 524288-byte limit",
                               None)

# Cases whose manifest is made at test time (too big to commit): name -> (setup, expected fragment)
SETUPS = {
    "conda-file-fifo": "fifo fifo.yaml",
    "model-path-fifo": "fifo fifo.yaml",
    "conda-file-too-big": "big big.yaml",
    "conda-file-symlink-loop": "loop loop.yaml",
    "model-folder-with-fifo": "fifodir fifodir",
    "model-folder-with-dev-zero-link": "zerodir zerodir",
    "code-folder-symlink-loop": "dirloop loopdir",
    "manifest-over-1mib": "pad manifest-over-1mib.yaml",
}
ENVS = {"variable-expands-too-large": "RTS_CORPUS_BIG=300000xb"}


def _case_text(name: str, body: str, fragment: str, index: int | None) -> str:
    """The case file: header comments, then the manifest; `index` is the 0-based row of the fault in `body`."""
    extra = [f"# setup: {SETUPS[name]}"] if name in SETUPS else []
    extra += [f"# env: {ENVS[name]}"] if name in ENVS else []
    head = [f"# expect: {fragment}"]
    if index is not None:
        head.append(f"# line: {index + 1 + 2 + len(extra)}")
    return "\n".join(head + extra) + "\n" + body


def main() -> None:
    CASES.mkdir(exist_ok=True)
    for old in CASES.glob("*.yaml"):
        old.unlink()
    for name, (old, new, fragment, marker) in EDITS.items():
        assert old in BASE, name
        body = BASE.replace(old, new, 1)
        if name == "instance-count-local-default-capacity":
            body = body.replace("instance_count: 1", "instance_count: 17")
        if name == "kubernetes-pair-too-long":  # 32 + 31 characters: each valid alone, 63 together
            body = body.replace("  - name: rts-score", "  - name: " + "e" * 32).replace("name: blue", "name: " + "d" * 31)
            body = body.replace("{blue: 100}", "{" + "d" * 31 + ": 100}")
        line = None
        if marker is not None:
            line = next(i for i, row in enumerate(body.splitlines()) if marker in row)
        (CASES / f"{name}.yaml").write_text(_case_text(name, body, fragment, line), encoding="utf-8")
    for name, (content, fragment, line) in FILES.items():
        if isinstance(content, bytes):
            (CASES / f"{name}.yaml").write_bytes(content)
            (CASES / f"{name}.expect").write_text(f"{fragment}\n{line}\n", encoding="utf-8")
        else:
            (CASES / f"{name}.yaml").write_text(content, encoding="utf-8")
            (CASES / f"{name}.expect").write_text(f"{fragment}\n{line}\n", encoding="utf-8")
    files = HERE / "files"
    files.mkdir(exist_ok=True)
    (files / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (files / "nul.yaml").write_bytes(b"name: env\ndependencies: [py\0thon]\n")
    (files / "bomb.yaml").write_text(_bomb() + "\n", encoding="utf-8")
    (files / "list.yaml").write_text("- python=3.11\n- pip\n", encoding="utf-8")
    for name, entry in PIP_ENTRIES.items():
        (files / f"pip-{name}.yaml").write_text(
            f"name: env\ndependencies:\n  - pip\n  - pip:\n      - {entry}\n      - six\n", encoding="utf-8")


if __name__ == "__main__":
    main()
