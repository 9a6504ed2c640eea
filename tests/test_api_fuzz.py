"""Property tests: schemathesis against /openapi.json, hypothesis against the filter matcher."""

from __future__ import annotations

import fnmatch

import hypothesis.strategies as st
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mockhub.journal import Call, CallFilter
from mockhub.server import ThreadedHub


def test_every_inspection_endpoint_answers_to_its_schema(server: ThreadedHub) -> None:
    """No 500s, and every answer (errors included) matches the documented schema.

    Driven by hand rather than with schemathesis' pytest loader, which does not support this
    pytest's node API; each operation gets its own hypothesis run over the real server.
    """
    # The SSE stream never ends by design; it has its own tests.
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").exclude(path="/calls/stream")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            if case.query and "wait" in case.query:
                case.query["wait"] = 0  # a generated 300 s long poll would only test patience
            # Cross-field rules (an `error` fault needs a `preset` or a `status`; a stub exactly one
            # answer) are beyond JSON Schema: a schema-valid body may rightly get a 422 naming them.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()


# -- the matcher ------------------------------------------------------------------------------------

segments = st.text(alphabet="abcxyz-_.0", min_size=1, max_size=6)
paths = st.lists(segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
globs = st.lists(st.one_of(segments, st.just("*"), st.just("?")), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


@given(path=paths, pattern=globs)
def test_path_glob_agrees_with_fnmatch(path: str, pattern: str) -> None:
    call = Call(service="webhook", method="POST", path=path)
    assert CallFilter(path=pattern).matches(call) == fnmatch.fnmatchcase(path, pattern)


@given(path=paths)
def test_a_literal_path_matches_only_itself(path: str) -> None:
    assert CallFilter(path=path).matches(Call(service="webhook", method="GET", path=path))
    assert not CallFilter(path=path + "x").matches(Call(service="webhook", method="GET", path=path))


words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)


@given(body=words, needle=words)
def test_contains_is_a_substring_test_of_the_body(body: str, needle: str) -> None:
    call = Call(service="webhook", method="POST", path="/", body=body.encode())
    assert CallFilter(contains=needle).matches(call) == (needle in body)


@given(
    service=st.sampled_from(["webhook", "slack", "smtp"]),
    namespace=st.sampled_from(["default", "a", "b"]),
    method=st.sampled_from(["GET", "POST"]),
    wanted=st.fixed_dictionaries(
        {},
        optional={
            "service": st.sampled_from(["webhook", "slack", "smtp"]),
            "namespace": st.sampled_from(["default", "a", "b"]),
            "method": st.sampled_from(["get", "POST"]),
        },
    ),
)
def test_filters_combine_with_and(service: str, namespace: str, method: str, wanted: dict[str, str]) -> None:
    call = Call(service=service, namespace=namespace, method=method, path="/x")
    expected = all(
        {"service": service, "namespace": namespace, "method": method}[k] == (v.upper() if k == "method" else v)
        for k, v in wanted.items()
    )
    assert CallFilter(**wanted).matches(call) == expected
