"""The model server's default replies for the finish tool and for MCP tools."""

from __future__ import annotations

from typing import Any

from agy_trio.testing import ChatRequest, default_reply


def _request(prompt: str, tools: dict[str, dict[str, Any]]) -> ChatRequest:
    body = {
        "messages": [
            {"role": "system", "content": "be helpful"},
            {"role": "user", "content": f"<USER_REQUEST>\n{prompt}\n</USER_REQUEST>"},
        ],
        "tools": [
            {"type": "function", "function": {"name": name, "parameters": schema}}
            for name, schema in tools.items()
        ],
    }
    return ChatRequest(seq=1, received_at=0.0, path="/v1/chat/completions", body=body)


FINISH = {"finish": {"type": "object", "properties": {"a": {"type": "integer"}}}}
LAZY = {"call_mcp_tool": {"type": "object"}, "list_resources": {"type": "object"}}


def test_finish_with_an_object_calls_the_finish_tool() -> None:
    reply = default_reply(_request('finish with {"a": 1, "b": [2]}', FINISH))
    (call,) = reply.tool_calls
    assert (call.name, call.arguments) == ("finish", {"a": 1, "b": [2]})


def test_finish_without_the_tool_or_without_json_is_plain_text() -> None:
    assert default_reply(_request('finish with {"a": 1}', {})).text.startswith("You said:")
    assert default_reply(_request("finish with nothing", FINISH)).tool_calls == ()
    assert default_reply(_request("finish with [1, 2]", FINISH)).tool_calls == ()


def test_a_lazy_mcp_tool_goes_through_call_mcp_tool() -> None:
    reply = default_reply(_request('call mcp tool files/read with {"path": "a"}', LAZY))
    (call,) = reply.tool_calls
    assert call.name == "call_mcp_tool"
    assert call.arguments == {"ServerName": "files", "ToolName": "read", "Arguments": {"path": "a"}}


def test_an_eager_mcp_tool_is_called_by_its_own_name() -> None:
    tools = {**LAZY, "mcp_files_read": {"type": "object"}}
    prompt = 'call mcp tool files/read with {"path": "a"} and call mcp tool files/list'
    reply = default_reply(_request(prompt, tools))
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("mcp_files_read", {"path": "a"}),
        ("call_mcp_tool", {"ServerName": "files", "ToolName": "list", "Arguments": {}}),
    ]


def test_an_mcp_call_without_any_mcp_tool_declared_is_plain_text() -> None:
    reply = default_reply(_request("call mcp tool files/read", {}))
    assert reply.tool_calls == () and reply.text.startswith("You said:")
