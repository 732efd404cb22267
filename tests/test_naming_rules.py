"""Our naming rules against their sources, with the real azure-ai-ml code as the oracle where it has one.

The SDK checks endpoint and deployment names with `re.match(NAME_REGEX_PATTERN)`, whose `$` also matches before
a final newline: it accepts "rts-score\\n". Ours must agree with it on every other name, and refuse that one.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rtsctl.manifest import names

ALPHABET = st.sampled_from(list("abcXYZ0129-_.\n /é"))
NAMES = st.text(alphabet=ALPHABET, min_size=0, max_size=40)


def sdk_accepts_online_name(name: str) -> bool:
    from azure.ai.ml.entities._endpoint._endpoint_helpers import validate_endpoint_or_deployment_name
    from azure.ai.ml.exceptions import ValidationException

    try:
        validate_endpoint_or_deployment_name(name)
    except ValidationException:
        return False
    return True


@settings(max_examples=400, deadline=None, derandomize=True)
@given(NAMES)
def test_online_names_agree_with_azure_ai_ml_except_its_trailing_newline(name):
    ours = names.name_problem("endpoint", name) is None
    if name.endswith("\n"):
        assert not ours
    else:
        assert ours == sdk_accepts_online_name(name), name
    assert (names.name_problem("deployment", name) is None) == ours


@settings(max_examples=400, deadline=None, derandomize=True)
@given(NAMES)
def test_model_names_agree_with_the_model_dataplane_pattern(name):
    # azure-ai-ml _restclient/model_dataplane/operations/_models_operations.py, as a full match
    pattern = r"^(?![\-_.])[a-zA-Z0-9\-_.]{1,255}(?<!\.)$"
    assert (names.name_problem("model", name) is None) == (re.fullmatch(pattern, name) is not None), name


def test_the_issue_names():
    for kind, bad in [("endpoint", "rts-score\n"), ("endpoint", "ab"), ("endpoint", "rts-score-"),
                      ("deployment", "blue_1"), ("deployment", "b"), ("workspace", "ws"), ("compute", "c"),
                      ("resource_group", "rg."), ("resource_group", ".."), ("env_var", "A=B"),
                      ("subscription_id", "not-a-guid"), ("namespace", "AzureML")]:
        assert names.name_problem(kind, bad), (kind, bad)
    for kind, good in [("endpoint", "rts-score"), ("deployment", "blue"), ("workspace", "rts-ws"),
                       ("workspace", "e2etest_test_863132474581"), ("compute", "local-cpu"), ("resource_group", "rts_rg(1).x"), ("aks_cluster", "rts_aks"),
                       ("model", "dummy-model"), ("env_var", "GREETING_STYLE"), ("namespace", "azureml"),
                       ("subscription_id", "00000000-0000-4000-8000-0000000005ab")]:
        assert names.name_problem(kind, good) is None, (kind, good)


def test_every_rule_names_its_source():
    for kind, rule in names.RULES.items():
        assert rule.source and rule.says, kind
