"""Property-based fuzzing against the schema: every operation of ``/schema/openapi.json``, with valid
and invalid input that schemathesis derives from it, must answer without a 5xx, with a documented status
code and a body that matches the schema.

The number of examples is bounded and generation is derandomised, so a run takes the same time and
finds the same things every time. The summary goes to ``tests/artifacts/fuzz-summary.txt`` and into the
assertion message.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chatstore.app import create_app
from chatstore.core.settings import Settings

EXAMPLES_PER_OPERATION = 25
API_KEY = "fuzzing-key-0123456789abcdef"
CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
SUMMARY_PATH = Path(__file__).parent / "artifacts" / "fuzz-summary.txt"


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
            case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"}, checks=CHECKS)
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


def test_every_operation_holds_up_to_generated_input(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, api_key=API_KEY))
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
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
