"""GET /metrics: Prometheus text built from the runtime's own statistics."""

from __future__ import annotations

import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from agy_trio import CommandStatistics, RuntimeStatistics
from agy_trio.serve.metrics import RuntimeCollector, registry_for, render_metrics
from tests.serve._helpers import chat_events, create_agent, open_chat, served


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_every_statistic_becomes_a_metric() -> None:
    stats = RuntimeStatistics(
        backend="scripted",
        agents=3,
        in_flight=2,
        active_turns=1,
        queued=4,
        completed=10,
        failed=2,
        closed=False,
        commands={
            "chat": CommandStatistics(completed=5, failed=1, total_seconds=1.5, max_seconds=0.75),
            "history": CommandStatistics(
                completed=5, failed=1, total_seconds=0.25, max_seconds=0.5
            ),
        },
        turns=6,
        quota_hits=2,
        stream_events=40,
    )
    collector = RuntimeCollector(lambda: stats, lambda: 7, lambda: 9)
    samples = _samples(render_metrics(registry_for(collector)).decode())
    assert samples[("agy_trio_runtime_info", (("backend", "scripted"),))] == 1
    assert samples[("agy_trio_agents", ())] == 3
    assert samples[("agy_trio_active_turns", ())] == 1
    assert samples[("agy_trio_commands_in_flight", ())] == 2
    assert samples[("agy_trio_commands_queued", ())] == 4
    assert samples[("agy_trio_runtime_closed", ())] == 0
    assert samples[("agy_trio_turns_total", ())] == 6
    assert samples[("agy_trio_quota_hits_total", ())] == 2
    assert samples[("agy_trio_stream_events_total", ())] == 40
    assert (
        samples[("agy_trio_commands_total", (("command", "chat"), ("outcome", "completed")))] == 5
    )
    assert samples[("agy_trio_commands_total", (("command", "chat"), ("outcome", "failed")))] == 1
    assert samples[("agy_trio_command_seconds_total", (("command", "history"),))] == 0.25
    assert samples[("agy_trio_command_max_seconds", (("command", "chat"),))] == 0.75
    assert samples[("agy_trio_serve_live_streams", ())] == 7
    assert samples[("agy_trio_serve_disconnects_total", ())] == 9


async def test_metrics_endpoint_reports_the_runtime_as_it_is() -> None:
    async with served() as s:
        first = await create_agent(s.client)
        await create_agent(s.client)
        await chat_events(s.client, first, "one")
        async with open_chat(s.client, first, "hang on") as chat:
            await chat.wait_for("delta")
            live = _samples((await s.client.get("/metrics")).text)
            assert live[("agy_trio_serve_live_streams", ())] == 1
            assert live[("agy_trio_active_turns", ())] == 1
            await chat.hang_up()
        await s.runtime.agent(first).wait_for_idle()
        # The turn is cancelled before the server's stream task has unwound.
        await trio.testing.wait_all_tasks_blocked()

        answer = await s.client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        samples = _samples(answer.text)
        stats = s.runtime.statistics()
        assert samples[("agy_trio_agents", ())] == stats.agents == 2
        assert samples[("agy_trio_turns_total", ())] == stats.turns
        assert samples[("agy_trio_quota_hits_total", ())] == stats.quota_hits
        assert samples[("agy_trio_stream_events_total", ())] == stats.stream_events
        chat_stats = stats.commands["chat"]
        chat_ok = ("agy_trio_commands_total", (("command", "chat"), ("outcome", "completed")))
        chat_failed = ("agy_trio_commands_total", (("command", "chat"), ("outcome", "failed")))
        assert samples[chat_ok] == chat_stats.completed
        assert samples[chat_failed] == chat_stats.failed
        create_ok = (
            "agy_trio_commands_total",
            (("command", "create_agent"), ("outcome", "completed")),
        )
        assert samples[create_ok] == 2
        assert samples[("agy_trio_serve_live_streams", ())] == 0
        assert samples[("agy_trio_serve_disconnects_total", ())] == 1


async def test_two_apps_in_one_process_keep_their_own_metrics() -> None:
    async with served() as a, served() as b:
        await create_agent(a.client)
        text_a = (await a.client.get("/metrics")).text
        text_b = (await b.client.get("/metrics")).text
        assert _samples(text_a)[("agy_trio_agents", ())] == 1
        assert _samples(text_b)[("agy_trio_agents", ())] == 0
