"""Structured output and budgets through the Temporal backend and real ``agy-trio worker``s.

The agent's settings travel as JSON in the workflow (the schema as its
class's import path), the worker rebuilds the config and plays the turn on
the real SDK, and the structured answer comes back with the turn's status.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig, StopReason
from agy_trio.adapters.temporal import TemporalBackend
from agy_trio.errors import StructuredOutputError
from tests.sample_schemas import Rating
from tests.temporal.conftest import Cluster
from tests.temporal.sample_tools import record_visit

pytestmark = pytest.mark.sdk


async def test_a_response_class_survives_the_workflow_and_comes_back(cluster: Cluster) -> None:
    cluster.ensure_workers(1)
    backend = TemporalBackend(cluster.target, task_queue=cluster.task_queue)
    config = RuntimeConfig(inter_agent_delay=0, chat_timeout=90)
    async with (
        agy_trio.open_runtime(config, backend=backend) as rt,
        rt.open_agent(AgentConfig(name="rater", response_schema=Rating)) as agent,
    ):
        rated = await agent.chat(f"finish with {json.dumps({'item': 'tea', 'stars': 9})}")
        assert await rated.structured_output() == Rating("tea", 9)

        refused = await agent.chat(f"finish with {json.dumps({'item': 'mud', 'stars': 11})}")
        with pytest.raises(StructuredOutputError) as caught:
            await refused.structured_output()
        assert json.loads(caught.value.raw_json) == {"item": "mud", "stars": 11}

        plain = await agent.chat("nothing to rate")
        assert await plain.text() == "You said: nothing to rate"
        assert await plain.structured_output() is None


async def test_a_budget_stop_comes_back_as_itself(cluster: Cluster, tmp_path: Path) -> None:
    cluster.ensure_workers(1)
    backend = TemporalBackend(cluster.target, task_queue=cluster.task_queue)
    config = RuntimeConfig(inter_agent_delay=0, chat_timeout=90)
    agent_config = AgentConfig(
        name="budgeted", tools=(record_visit,), budget=agy_trio.Budget(max_model_calls=1)
    )
    visits = tmp_path / "visits.txt"
    arguments = json.dumps({"path": str(visits), "visitor": "ada"})
    async with (
        agy_trio.open_runtime(config, backend=backend) as rt,
        rt.open_agent(agent_config) as agent,
    ):
        # One model call (the tool call) is all the budget allows: no answer after it.
        response = await agent.chat(f"call tool record_visit with {arguments}")
        await response.text()
        assert response.stop_reason is StopReason.MAX_MODEL_CALLS_EXCEEDED
    assert visits.read_text() == "ada\n"
