"""Conversations with the echoing model (the local model server's and the scripted default).

Each prompt it gets is answered ``You said: <prompt>``; these spell out the
history such a conversation leaves, for the tests that compare one, and read
back the prompts an agent's history kept.
"""

from __future__ import annotations

from agy_trio import AgentHandle


def echoed(*prompts: str) -> list[str]:
    """The texts of the messages, prompt then answer, for each prompt in order."""
    return [text for prompt in prompts for text in (prompt, f"You said: {prompt}")]


def echoed_turns(*prompts: str) -> list[tuple[str, str]]:
    """The same conversation as ``(role, text)`` pairs."""
    roles = ("user", "assistant") * len(prompts)
    return list(zip(roles, echoed(*prompts), strict=True))


async def user_prompts(agent: AgentHandle) -> list[str]:
    """The prompts ``agent``'s history keeps, in order (whatever the model answered)."""
    return [m.text for m in await agent.history() if m.role == "user"]
