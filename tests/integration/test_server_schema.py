"""Both servers against their own OpenAPI documents, with schemathesis (`make test-all`).

Schemathesis generates requests from each document, valid and invalid, and checks every
answer: no 5xx, every status and body as documented, invalid requests refused with a 4xx,
the key enforced where the document says so. Valid requests must be accepted unless refused
for what a schema cannot say (a prompt longer than the context once tokenised, n *
max_tokens over the cap, a checkpoint path that holds no checkpoint), each named by its
error code. The servers are real subprocesses with an API key and small caps, so each
request is cheap.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")  # the `schema` extra
from hypothesis import HealthCheck, given, settings  # noqa: E402  (schemathesis needs it)
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from posttrain.models.server_process import ServerProcess, serve_model  # noqa: E402
from posttrain.rewards.reward_model_server import reward_model_server  # noqa: E402

pytestmark = pytest.mark.slow

KEY = "schema-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Generated requests per operation and mode (a GET without parameters has one form only):
# about 350 requests to the policy server and 230 to the reward server.
EXAMPLES = {"serve": 30, "serve-rm": 75}
# 400s a schema-valid request may still get, by error code.
SCHEMA_CANNOT_SAY = {
    "context_length_exceeded",  # token counts depend on the tokenizer
    "too_many_tokens",  # n * max_tokens over --max-sampled-tokens
    "request_too_large",  # all prompts' tokens over --max-queued-tokens
    "chat_template_error",  # the model's template refuses the conversation
    "length_mismatch",  # serve-rm: as many responses as prompts
}
WEIGHT_ROUTES = {"/v1/weights", "/update_weights_from_disk"}
TALLY: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@schemathesis.check
def refused_only_for_what_a_schema_cannot_say(ctx: Any, response: Any, case: Any) -> None:
    """Schema-valid requests succeed, or fail for a reason the document names elsewhere."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code < 400:
        return
    if case.operation.path in WEIGHT_ROUTES and response.status_code in (400, 403, 409):
        return  # whether a path holds a checkpoint, and the version order, are state
    if response.status_code in (408, 429):
        return  # load, not the request
    code = None
    if response.status_code == 400:
        code = (response.json().get("error") or {}).get("code")
    assert code in SCHEMA_CANNOT_SAY, (
        f"schema-valid request refused: {response.status_code} {response.text[:300]}"
    )


def _validate(case: Any, server: str) -> None:
    response = case.call_and_validate(
        headers=AUTH,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[refused_only_for_what_a_schema_cannot_say],
    )
    TALLY[server]["requests"] += 1
    TALLY[server]["5xx"] += response.status_code >= 500
    TALLY[server][f"{response.status_code // 100}xx"] += 1


@pytest.fixture(scope="module")
def policy_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("schema-weights")
    log = tmp_path_factory.mktemp("schema") / "serve.log"
    caps = ["--max-n", "2", "--max-prompts", "4", "--max-sampled-tokens", "16"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        server = serve_model(
            tiny_model_dir, *caps, "--weights-root", str(root), log_path=log, api_key=KEY
        )
        server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def rm_server(
    llama_template_rm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("schema-rm") / "serve-rm.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        server = reward_model_server(
            llama_template_rm, "--max-items", "8", log_path=log, api_key=KEY
        )
        server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def policy_schema(policy_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{policy_server.url}/openapi.json", headers=AUTH)


@pytest.fixture(scope="module")
def rm_schema(rm_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{rm_server.url}/openapi.json", headers=AUTH)


POLICY_OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/weights"),
    ("GET", "/v1/weights"),
    ("POST", "/update_weights_from_disk"),
    ("GET", "/stats"),
    ("GET", "/model_info"),
]
RM_OPERATIONS = [("GET", "/health"), ("GET", "/info"), ("POST", "/score")]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def _fuzz(schema: Any, method: str, path: str, mode: GenerationMode, server: str) -> None:
    """`EXAMPLES` generated requests to one operation, each sent and checked."""
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[server],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        _validate(case, server)

    run()


def test_the_document_lists_every_route(policy_schema: Any, rm_schema: Any) -> None:
    listed = {(m.upper(), p) for p, ops in policy_schema.raw_schema["paths"].items() for m in ops}
    assert listed == set(POLICY_OPERATIONS)
    listed = {(m.upper(), p) for p, ops in rm_schema.raw_schema["paths"].items() for m in ops}
    assert listed == set(RM_OPERATIONS)


def _cases(operations: list[tuple[str, str]]) -> list[tuple[str, str, GenerationMode]]:
    """Every operation in every mode, except invalid data for a GET: it takes no parameters,
    so it has no invalid form to generate."""
    return [
        (method, path, mode)
        for method, path in operations
        for mode in MODES
        if not (mode is GenerationMode.NEGATIVE and method == "GET")
    ]


@pytest.mark.parametrize(("method", "path", "mode"), _cases(POLICY_OPERATIONS), ids=str)
def test_the_policy_server_answers_as_documented(
    policy_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    _fuzz(policy_schema, method, path, mode, "serve")


@pytest.mark.parametrize(("method", "path", "mode"), _cases(RM_OPERATIONS), ids=str)
def test_the_reward_server_answers_as_documented(
    rm_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    _fuzz(rm_schema, method, path, mode, "serve-rm")


@pytest.mark.parametrize(("name", "examples"), [("serve", 30), ("serve-rm", 60)])
def test_schemathesis_run_finds_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, name: str, examples: int
) -> None:
    """The command line's run adds the coverage phase (boundary values, every invalid form
    of each field, undeclared methods) and every check but positive-data acceptance,
    which the custom check above replaces."""
    server = request.getfixturevalue("policy_server" if name == "serve" else "rm_server")
    command = [
        *(str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.url}/openapi.json"),
        *("--header", f"Authorization: Bearer {KEY}", "--max-examples", str(examples)),
        *("--checks", "all", "--exclude-checks", "positive_data_acceptance", "--seed", "1"),
    ]
    # In tmp_path: the command keeps a cache (.schemathesis/) in its working directory.
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    generated = re.search(r"(\d+) generated", done.stdout)
    assert generated is not None, done.stdout[-2000:]
    TALLY[f"{name} (schemathesis run)"]["requests"] += int(generated.group(1))


def test_both_servers_were_exercised_without_a_5xx() -> None:
    """Runs after the generated tests (file order); prints the tally for the record."""
    print({server: dict(counts) for server, counts in TALLY.items()})  # -s shows it
    assert TALLY["serve"]["requests"] >= 200 and TALLY["serve-rm"]["requests"] >= 150
    assert TALLY["serve"]["5xx"] == 0 and TALLY["serve-rm"]["5xx"] == 0
