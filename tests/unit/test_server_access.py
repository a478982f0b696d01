"""The servers' access rules and caps as plain functions: which binds need a key, which Host
headers are served, how the API key is found, and the queued-token budget."""

from __future__ import annotations

import pytest

from posttrain.models.server.errors import APIError
from posttrain.models.server.limits import ServerLimits, TokenBudget
from posttrain.models.server.security import (
    allowed_hosts,
    check_bind,
    host_name,
    resolve_api_key,
)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_key(host: str) -> None:
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com"])
def test_anything_else_needs_a_key(host: str) -> None:
    with pytest.raises(ValueError, match=f"refusing to serve on {host} without an API key"):
        check_bind(host, None)
    check_bind(host, "key")


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("a.example:8000", "a.example"),
        ("A.Example", "a.example"),
        ("[::1]:80", "::1"),
        ("::1", "::1"),
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_host_names_are_read_without_their_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_hosts_served_by_bind_address() -> None:
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("10.0.0.5") == {"10.0.0.5"}
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::") is None  # key required


def test_the_key_comes_from_the_flag_then_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("POSTTRAIN_API_KEY", "from-env")
    assert resolve_api_key("flag") == "flag"
    assert resolve_api_key(None) == "from-env"
    monkeypatch.setenv("POSTTRAIN_API_KEY", "")
    assert resolve_api_key(None) is None


def test_the_budget_refuses_what_does_not_fit_now_or_ever() -> None:
    budget = TokenBudget(100)
    with budget.reserve(60):
        with pytest.raises(APIError) as busy, budget.reserve(50):
            pass
        assert busy.value.status == 429 and busy.value.headers == {"retry-after": "1"}
        with budget.reserve(40):
            assert budget.used == 100
    assert budget.used == 0  # released, also after the refusal
    with pytest.raises(APIError) as never, budget.reserve(101):
        pass
    assert never.value.status == 400 and "--max-queued-tokens" in never.value.message


def test_limits_name_their_flag() -> None:
    with pytest.raises(ValueError, match="--request-timeout must be > 0"):
        ServerLimits(request_timeout_s=0)
    limits = ServerLimits(max_sampled_tokens=100)
    assert limits.max_tokens(None, room=500, n=4, param="max_tokens") == 25  # default, cut
    assert limits.max_tokens(None, room=10, n=4, param="max_tokens") == 10
    assert limits.max_tokens(30, room=10, n=2, param="max_tokens") == 10
    with pytest.raises(APIError, match="--max-sampled-tokens"):
        limits.max_tokens(30, room=500, n=4, param="max_tokens")
