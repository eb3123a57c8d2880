"""How the model server picks a reply: a script's callable form, and the default behaviour.

The default behaviour (:func:`default_reply`) answers whatever the script
leaves open. It is deterministic, so tests can drive the real SDK through
tool calls with nothing but prompts:

1. If the conversation ends with ``role: "tool"`` messages, the reply quotes
   each tool result: ``Tool NAME returned: RESULT``.
2. Else, if the user's request (the text inside ``<USER_REQUEST>`` ...
   ``</USER_REQUEST>``) contains ``call tool NAME with {JSON object}`` (or just
   ``call tool NAME`` for no arguments) and ``NAME`` is one of the request's
   ``tools``, the reply is a call of that tool with those arguments. Several
   such phrases give parallel tool calls. The harness adds two required string
   parameters, ``toolAction`` and ``toolSummary``, to every tool it declares;
   when the schema lists them and the arguments lack them, they are filled in
   (``"Calling NAME"`` and ``"NAME call"``).
3. Else, if the request says ``call mcp tool SERVER/TOOL with {JSON object}``
   (or without ``with``), the reply calls that MCP tool the way the harness
   offers it: as ``mcp_SERVER_TOOL`` when that tool is declared (an eager
   tool), else through the generic ``call_mcp_tool`` (a lazy one). Several
   such phrases give parallel calls.
4. Else, if the request says ``finish with {JSON object}`` and the request
   declares the harness's ``finish`` tool (the agent has a response schema),
   the reply calls ``finish`` with that object: the structured answer.
5. Else the reply is ``You said: REQUEST``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from agy_trio.testing.script import Reply, ToolCallSpec
from agy_trio.testing.wire import ChatRequest, content_text

__all__ = ["Responder", "default_reply"]

#: A callable script: picks the reply for a request, or None for the default behaviour.
Responder: TypeAlias = Callable[[ChatRequest], Reply | None]

_CALL_TOOL_RE: Final = re.compile(r"call tool\s+([A-Za-z_][\w.-]*)", re.IGNORECASE)
_CALL_MCP_RE: Final = re.compile(r"call mcp tool\s+([\w-]+)/([\w.-]+)", re.IGNORECASE)
_FINISH_RE: Final = re.compile(r"finish with\s+(?=\{)", re.IGNORECASE)
_FINISH_TOOL: Final = "finish"
_LAZY_MCP_TOOL: Final = "call_mcp_tool"
_WITH_RE: Final = re.compile(r"\s+with\s+(?=\{)", re.IGNORECASE)
_JSON_FENCE_RE: Final = re.compile(r"```(?:json)?\s*\n(.*?)\n?```", re.DOTALL)


def default_reply(request: ChatRequest) -> Reply:
    """The reply the server gives when its script has none.

    1. After tool results (the last messages have ``role: "tool"``): a text
       quoting each result, ``Tool NAME returned: RESULT``.
    2. When the user request says ``call tool NAME with {JSON object}`` (or
       ``call tool NAME``) and NAME is a declared tool: that tool call.
    3. When it says ``call mcp tool SERVER/TOOL with {JSON object}``: that MCP
       tool's call, eager (``mcp_SERVER_TOOL``) if declared, else lazy
       (through ``call_mcp_tool``).
    4. When it says ``finish with {JSON object}`` and ``finish`` is declared:
       a call of ``finish`` with that object.
    5. Otherwise: ``You said: REQUEST``.

    Args:
        request: The request to answer.

    Returns:
        The reply, streamed in chunks of eight characters.
    """
    results = _quoted_tool_results(request)
    if results:
        return Reply("\n".join(results))
    calls = _requested_tool_calls(request) or _requested_mcp_calls(request)
    if calls:
        return Reply(tool_calls=calls)
    finish = _requested_finish(request)
    if finish is not None:
        return Reply(tool_calls=[finish])
    return Reply(f"You said: {request.user_request}")


def _quoted_tool_results(request: ChatRequest) -> list[str]:
    # The tool messages that end the conversation, oldest first.
    messages = request.messages
    names_by_call_id = {
        call.get("id"): call["function"].get("name")
        for message in messages
        if message.get("role") == "assistant" and isinstance(message.get("tool_calls"), list)
        for call in message["tool_calls"]
        if isinstance(call, dict) and isinstance(call.get("function"), dict)
    }
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        name = message.get("name") or names_by_call_id.get(message.get("tool_call_id")) or "tool"
        result = _tool_result_text(content_text(message.get("content")))
        results.append(f"Tool {name} returned: {result}")
    return results[::-1]


def _tool_result_text(content: str) -> str:
    # The harness wraps results as "Tool response for NAME:\n```json\n{...}\n```";
    # the JSON inside the fence is the part worth quoting.
    fenced = _JSON_FENCE_RE.search(content)
    return (fenced.group(1) if fenced else content).strip()


def _json_object_after(text: str, start: int) -> dict[str, Any] | None:
    """The JSON object that starts at ``text[start]``, or None when there is none."""
    try:
        parsed, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _requested_mcp_calls(request: ChatRequest) -> list[ToolCallSpec]:
    text = request.user_request
    tools = request.tools
    calls: list[ToolCallSpec] = []
    for found in _CALL_MCP_RE.finditer(text):
        server, name = found.group(1), found.group(2).rstrip(".-")
        arguments: dict[str, Any] = {}
        with_clause = _WITH_RE.match(text, found.end())
        if with_clause is not None:
            parsed = _json_object_after(text, with_clause.end())
            if parsed is None:
                continue
            arguments = parsed
        eager = f"mcp_{server}_{name}"
        if eager in tools:
            calls.append(ToolCallSpec(eager, arguments))
        elif _LAZY_MCP_TOOL in tools:
            lazy = {"ServerName": server, "ToolName": name, "Arguments": arguments}
            calls.append(ToolCallSpec(_LAZY_MCP_TOOL, lazy))
    return calls


def _requested_finish(request: ChatRequest) -> ToolCallSpec | None:
    if _FINISH_TOOL not in request.tools:
        return None
    text = request.user_request
    found = _FINISH_RE.search(text)
    if found is None:
        return None
    answer = _json_object_after(text, found.end())
    return None if answer is None else ToolCallSpec(_FINISH_TOOL, answer)


def _requested_tool_calls(request: ChatRequest) -> list[ToolCallSpec]:
    text = request.user_request
    tools = request.tools
    decoder = json.JSONDecoder()
    calls: list[ToolCallSpec] = []
    for found in _CALL_TOOL_RE.finditer(text):
        name = found.group(1).rstrip(".-")  # "call tool x." ends a sentence, not the name
        arguments: dict[str, Any] = {}
        with_clause = _WITH_RE.match(text, found.end())
        if with_clause is not None:
            try:
                parsed, _ = decoder.raw_decode(text, with_clause.end())
            except json.JSONDecodeError:
                continue
            if not isinstance(parsed, dict):
                continue
            arguments = parsed
        if name in tools:
            calls.append(ToolCallSpec(name, arguments))
    return calls
