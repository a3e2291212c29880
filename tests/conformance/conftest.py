"""Fixtures of the Debezium conformance suite (``pytest -m conformance``): one JVM per session
with Debezium's embedded engine, engines stopped after each test, unique topic prefixes."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping

import pytest

from tests.conformance.debezium import DebeziumEngine, jvm_available, start_jvm

_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def debezium_jvm() -> None:
    """The JVM with Debezium's jars; skips (locally) or fails (under CI) when it cannot start."""
    reason = jvm_available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"Debezium conformance suite cannot run: {reason}")
        pytest.skip(reason)
    start_jvm()


@pytest.fixture
def debezium(debezium_jvm: None) -> Iterator[Callable[[Mapping[str, str]], DebeziumEngine]]:
    """Call it with connector properties to start a Debezium engine; stopped after the test."""
    engines: list[DebeziumEngine] = []

    def start(properties: Mapping[str, str]) -> DebeziumEngine:
        engine = DebeziumEngine(properties)
        engines.append(engine)
        engine.start()
        return engine

    yield start
    for engine in reversed(engines):
        engine.stop()


@pytest.fixture
def unique_prefix() -> Callable[[str], str]:
    """``unique_prefix("dbzpg")`` -> a topic prefix (and slot/publication name) unique in this
    process: two Debezium engines with the same ``topic.prefix`` stall in one JVM."""

    def make(kind: str) -> str:
        return f"{kind}{os.getpid()}x{next(_prefixes)}"

    return make
