"""Property-based fuzzing against the schema: every operation of ``/schema/openapi.json``, with valid
and invalid input that schemathesis derives from it, must pass every check schemathesis has (as
``--checks all``): no 5xx, documented status codes, content types, headers and bodies that match the
schema, valid input accepted, invalid input refused, and the key enforced. Two strategies go where
the schema cannot lead: cursors forged around the real ones (their kind kept, their key anything JSON
can hold), and bodies nested far deeper than any decoder or walker should follow.

The number of examples is bounded and generation is derandomised, so a run takes the same time and
finds the same things every time. The summary goes to ``tests/artifacts/fuzz-summary.txt`` and into the
assertion message.
"""

import base64
import json
import re
from collections.abc import Callable
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from chatstore.api.limits import MAX_BODY_DEPTH
from chatstore.core.settings import Settings
from tests.conftest import AppFactory, ClientFactory

EXAMPLES_PER_OPERATION = 25
API_KEY = "fuzzing-key-0123456789abcdef"
# Values whose validity no schema states, which schemathesis' positive_data_acceptance therefore takes
# as valid whenever their type fits: a `cursor` is valid only if the listing gave it out (it is opaque,
# and a forged one gets 400 naming it); a search `q` needs a letter or digit in Unicode's sense, which
# an OpenAPI 3.1 `pattern` (ECMA-262, no Unicode property classes without the `u` flag) cannot say
# portably; `metadata` (of a session, or of an imported one) is any JSON object within a size in bytes
# of JSON, a depth, and without NUL anywhere, which JSON Schema has no keywords for; and an import's
# tree holds together only across its fields (a message's `id` unique, its `parent_id` naming an
# earlier message, the session's `current_message_id` naming one), which no JSON Schema keyword
# relates. The AI SDK's chat body (`POST /api/ui/chat`) has rules between its items and fields too:
# its last message is the new one, a user's message of text parts, and `messageId` goes with
# `regenerate-message` only. A 400 naming these, and only these, is the right answer to such input;
# anything else still fails the check.
UNDECLARABLE = re.compile(
    r"cursor|q|(session\.)?metadata([.\[].*)?|messages\[\d+\]\.(id|parent_id)|session\.current_message_id"
    r"|messages\[\d+\]\.(role|parts(\[\d+\]\.(type|text))?)|messageId"
)


def positive_data_acceptance_except_undeclarable(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, but a 400 whose only problems are ``UNDECLARABLE`` values passes."""
    if response.status_code == 400:
        problems = response.json().get("extra") or []
        if problems and all(UNDECLARABLE.fullmatch(str(problem.get("key"))) for problem in problems):
            return None
    return positive_data_acceptance(ctx, response, case)


# Every check schemathesis has, as `--checks all` runs them, with the one exception above narrowed.
load_all_checks()
ALL_CHECKS: list[Callable[..., Any]] = [
    positive_data_acceptance_except_undeclarable if check is positive_data_acceptance else check
    for check in CHECKS.get_all()
]
SUMMARY_PATH = Path(__file__).parents[1] / "artifacts" / "fuzz-summary.txt"


@pytest.fixture(autouse=True, scope="module")
def fresh_summary() -> None:
    """One run's summary: a line per backend."""
    SUMMARY_PATH.unlink(missing_ok=True)


def fuzz_operation(operation: Any, mode: GenerationMode, failures: list[str]) -> int:
    """Run the operation's examples in ``mode``; returns how many ran, adds what failed to ``failures``."""
    examples = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal examples
        examples += 1
        try:
            case.call_and_validate(checks=ALL_CHECKS)
        except (AssertionError, FailureGroup) as failure:
            # Keep going: one summary lists every operation that fails, not just the first.
            failures.append(f"{operation.label} [{mode.value}]: {str(failure).strip()[:2000]}")

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or a body (GET /healthz) has no invalid input to send.
        if mode is not GenerationMode.NEGATIVE:
            raise
    return examples


def test_every_operation_holds_up_to_generated_input(settings: Settings, make_app: AppFactory) -> None:
    app = make_app(api_key=API_KEY)
    # The key goes through schemathesis' own auth, so that its negative cases can leave it out.
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"bearer": {"bearer": API_KEY}}}})
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    examples = 0
    try:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                examples += fuzz_operation(operation, mode, failures)
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan ran in schemathesis' client: close the database

    summary = (
        f"schemathesis fuzzing ({settings.database_url.split(':')[0]}): operations: {len(operations)}, "
        f"examples: {examples} (up to {EXAMPLES_PER_OPERATION} valid and {EXAMPLES_PER_OPERATION} invalid "
        f"per operation), failures: {len(failures)}"
    )
    SUMMARY_PATH.parent.mkdir(exist_ok=True)
    with SUMMARY_PATH.open("a") as report:
        report.write(summary + "\n" + "".join(f"  {failure}\n" for failure in failures))
    assert operations, "the schema has no operations"
    assert not failures, summary + "\n" + "\n".join(failures)
    print(summary)


# --- Forged cursors and deep bodies ------------------------------------------------------------------

FORGED_EXAMPLES = 300
DEEP_EXAMPLES = 60

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
times = st.builds(lambda moment, zone: moment.replace(tzinfo=zone).isoformat(), st.datetimes(), offsets)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([2**31 - 1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**64])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        ["\u0000", "a\u0000b", "\ud800", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
    )
    | times
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
)


def deep(depth: int, array: bool) -> str:
    return "[" * depth + "]" * depth if array else '{"a":' * depth + "1" + "}" * depth


# Depths drawn as numbers (the documents are built in the test, so a failure reports a short example):
# from just past the body limit to far past the decoder's own recursion limit (about 1,000); in a
# cursor, as deep as fits in a URL within the header limit.
body_depths = st.integers(min_value=MAX_BODY_DEPTH + 1, max_value=20_000)
cursor_depths = st.integers(min_value=2, max_value=1_500)
cursor_keys = st.lists(json_values, max_size=3).map(json.dumps) | st.tuples(cursor_depths, st.booleans())


def listings(client: TestClient[Litestar]) -> dict[str, str]:
    """Each listing's path, with the kind its cursors carry (read from a real one)."""
    session_id = client.post("/api/sessions", json={"name": "hello"}).json()["id"]
    client.post("/api/sessions", json={"name": "hello again"})
    for _ in range(2):
        chat = {"session_id": session_id, "messages": [{"role": "user", "content": "hello"}]}
        assert client.post("/api/chat", json=chat).status_code == 200
    paths = [
        "/api/sessions?limit=1",
        "/api/sessions?limit=1&order=activity",
        f"/api/sessions/{session_id}/messages?limit=1",
        f"/api/sessions/{session_id}/messages?limit=1&direction=backward",
        "/api/search?q=hello&limit=1",
    ]
    kinds = {}
    for path in paths:
        cursor = client.get(path).headers["x-next-cursor"]
        kinds[path] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[0]
    return kinds


def test_forged_cursors_get_a_400_naming_the_cursor_or_a_page(make_client: ClientFactory) -> None:
    with make_client() as client:
        kinds = listings(client)

        @given(path=st.sampled_from(sorted(kinds)), key=cursor_keys, own_kind=st.booleans())
        @hypothesis_settings(
            max_examples=FORGED_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def forge(path: str, key: str | tuple[int, bool], own_kind: bool) -> None:
            key = key if isinstance(key, str) else deep(*key)
            kind = json.dumps(kinds[path] if own_kind else "sessions:created")
            cursor = base64.urlsafe_b64encode(f"[{kind}, {key}]".encode()).decode().rstrip("=")
            response = client.get(f"{path}&cursor={cursor}")
            assert response.status_code in (200, 400), (path, key[:200], response.text[:500])
            if response.status_code == 400:
                assert response.json()["detail"].startswith("cursor:"), response.text

        forge()


# (method, path, where the deep document goes: DEEP in a body, or the whole body)
DEEP = "<deep>"
JSON_BODIES = [
    ("POST", "/api/sessions", DEEP),
    ("POST", "/api/sessions", '{"metadata": {"k": <deep>}}'),
    ("PATCH", "/api/sessions/{session}", '{"metadata": {"k": <deep>}}'),
    ("POST", "/api/sessions/import", '{"session": {"metadata": <deep>}}'),
    ("POST", "/api/chat", '{"session_id": "{session}", "messages": <deep>}'),
    ("POST", "/api/sessions/{session}/regenerate", DEEP),
]


def test_deeply_nested_bodies_get_a_400_naming_the_body(make_client: ClientFactory) -> None:
    with make_client() as client:
        session_id = client.post("/api/sessions").json()["id"]

        @given(endpoint=st.sampled_from(JSON_BODIES), depth=body_depths, array=st.booleans())
        @hypothesis_settings(
            max_examples=DEEP_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def send(endpoint: tuple[str, str, str], depth: int, array: bool) -> None:
            method, path, template = endpoint
            body = template.replace(DEEP, deep(depth, array)).replace("{session}", session_id)
            response = client.request(
                method,
                path.replace("{session}", session_id),
                content=body.encode(),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 400, (method, path, len(body), response.text[:500])
            assert response.json()["detail"].startswith("body:"), response.text

        send()
