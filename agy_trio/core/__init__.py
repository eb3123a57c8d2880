"""Pure-Trio core of agy_trio: configuration, commands, the runtime and its policies.

Nothing in this package imports :mod:`agy_trio.adapters`; adapters implement the
:class:`~agy_trio.core.backend.Backend` protocol declared here.
"""
