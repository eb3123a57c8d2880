"""A harness process's settings, and a running harness: what the launcher and the pool share.

:class:`HarnessSpec` is what a harness process is started with (read off the
SDK's own start-up settings by :func:`harness_spec`); its ``key`` is the rule
for which conversations may share one process. :class:`Harness` is a started
process with its WebSocket port and token. :class:`SdkFacts` is what the SDK
would look up in the installed files on every start, looked up once.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from agy_trio.adapters.antigravity.harness import HARNESS_OWNER_ENV

__all__ = ["Harness", "HarnessSpec", "SdkFacts", "harness_spec", "sdk_facts"]

log = logging.getLogger("agy_trio.antigravity.harness")


@attrs.frozen
class SdkFacts:
    """What the SDK looks up in ``importlib.metadata`` on every start, looked up once.

    Attributes:
        binary_path: The ``localharness`` binary the SDK would start (None if
            it cannot be found: the SDK then looks, and fails, by itself).
        version: The SDK's version, sent to the harness.
    """

    binary_path: str | None
    version: str


def sdk_facts() -> SdkFacts:
    """Look up the harness binary and the SDK version the way the SDK does (blocking).

    The SDK does this on the asyncio loop for every agent it starts
    (local_connection.py:968 and :1499): a scan of the package's installed
    files that takes milliseconds. A backend calls this once, in a worker
    thread, when it starts. The binary's path honours ``ANTIGRAVITY_HARNESS_PATH``
    in the environment at that moment.
    """
    from google.antigravity.connections.local import local_connection

    try:
        path: str | None = local_connection._get_default_binary_path({})
    except Exception as exc:  # e.g. FileNotFoundError: let the SDK report it per agent
        log.debug("the harness binary was not found ahead of time: %s", exc)
        path = None
    return SdkFacts(binary_path=path, version=local_connection._get_sdk_version())


@attrs.frozen
class HarnessSpec:
    """What a harness process is started with: the settings of the process, not of a conversation.

    Attributes:
        argv: The command: the parent-death prefix, then the binary.
        env: The process's whole environment (None: Python's own).
        settings_env: The variables the SDK config set (also sent in the handshake).
        storage_directory: Where the harness keeps every conversation's database.
        payload: The serialised ``InputConfig`` written to the harness's stdin.
        use_interactions_api: The handshake's ``use_interactions_api`` flag.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] | None = attrs.field(eq=False)
    settings_env: Mapping[str, str] = attrs.field(eq=False)
    storage_directory: str
    payload: bytes = attrs.field(eq=False)
    use_interactions_api: bool = False

    @property
    def key(self) -> tuple[object, ...]:
        """What two conversations must agree on to be served by one harness process.

        The binary, the storage directory, the environment the config set
        (without :data:`~agy_trio.adapters.antigravity.harness.HARNESS_OWNER_ENV`,
        a tag of whoever started the process, not a setting) and the
        handshake's flags.
        """
        env = tuple(sorted((k, v) for k, v in self.settings_env.items() if k != HARNESS_OWNER_ENV))
        return (self.argv[-1], self.storage_directory, env, self.use_interactions_api)

    def owned_by(self, owner: str) -> HarnessSpec:
        """This spec, for the process named ``owner``.

        :data:`~agy_trio.adapters.antigravity.harness.HARNESS_OWNER_ENV` is
        set to ``owner``: a shared process is tagged with its own name, in its
        environment and in the handshake (which carries the environment too),
        rather than with its first conversation's.
        """
        from google.antigravity.proto import localharness_pb2

        input_config = localharness_pb2.InputConfig()
        input_config.ParseFromString(self.payload)
        input_config.env[HARNESS_OWNER_ENV] = owner
        base = self.env if self.env is not None else os.environ
        return attrs.evolve(
            self,
            env={**base, HARNESS_OWNER_ENV: owner},
            settings_env={**self.settings_env, HARNESS_OWNER_ENV: owner},
            payload=input_config.SerializeToString(),
        )


def harness_spec(
    strategy: Any,
    prefix: Sequence[str],
    facts: SdkFacts | None,
    *,
    use_interactions_api: bool = False,
) -> HarnessSpec:
    """Read a harness's process settings off an SDK ``LocalConnectionStrategy``.

    What the SDK's start-up computes before it spawns (local_connection.py:1476-1500).
    """
    from google.antigravity.connections.local import local_connection
    from google.antigravity.proto import localharness_pb2

    client_info = localharness_pb2.ClientInfo(
        language="python",
        version=facts.version if facts is not None else local_connection._get_sdk_version(),
        language_version=platform.python_version(),
        os=platform.system().lower(),
        os_version=platform.release(),
    )
    env_map = {str(k): str(v) for k, v in strategy._env.items()} if strategy._env else {}
    input_config = localharness_pb2.InputConfig(
        storage_directory=strategy._save_dir or "",
        client_info=client_info,
        env=env_map,
    )
    if use_interactions_api:
        input_config.use_interactions_api = True
    return HarnessSpec(
        argv=(*prefix, strategy._binary_path),
        env={**os.environ, **env_map} if strategy._env is not None else None,
        settings_env=env_map,
        storage_directory=strategy._save_dir or "",
        payload=input_config.SerializeToString(),
        use_interactions_api=use_interactions_api,
    )


@attrs.frozen
class Harness:
    """A running harness process and what a conversation needs to connect to it.

    Attributes:
        process: The process.
        port: The port of its WebSocket server.
        api_key: The token its WebSocket server expects.
    """

    process: subprocess.Popen[bytes] = attrs.field(eq=False)
    port: int
    api_key: str = attrs.field(repr=False)
