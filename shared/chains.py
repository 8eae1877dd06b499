"""Fallback chains: the order in which queues are tried, and the rule that none loops.

A queue's chain is the queue itself, then each queue of its `fallback` list followed by that
queue's own chain, depth first, each queue once. Pure: both routing (which walks chains) and
the admin API (which refuses a save that would make one loop) use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def chain(start: str, fallbacks: Mapping[str, Sequence[str]]) -> list[str]:
    """Every queue `start` may hand a chat to, in order; unknown names are skipped."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        order.append(name)
        for nxt in fallbacks.get(name, ()):
            if nxt in fallbacks:
                visit(nxt)

    if start in fallbacks:
        visit(start)
    return order


def find_cycle(start: str, fallbacks: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A loop reachable from `start`, as the path that closes it (`a -> b -> a`), or None."""
    path: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        path.append(name)
        for nxt in fallbacks.get(name, ()):
            found = visit(nxt)
            if found:
                return found
        path.pop()
        done.add(name)
        return None

    return visit(start)
