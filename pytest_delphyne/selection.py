"""What a config does in a session, from its status and the session's options.

The table of SPEC §5, as one pure function (no pytest, no files):

| status | plain run | `--lf`   | `--ff`            | `--pdb` / `--delphyne-replay` |
|--------|-----------|----------|-------------------|-------------------------------|
| todo   | run       | run      | run, after failed | run (live: no cache yet)      |
| done   | skip      | deselect | skip              | replay                        |
| failed | report    | run      | run, first        | replay                        |

and, with the action, the cache mode its program runs in. Everything else (the
collector, the recorder, the plan that `--co` prints) asks `decide` rather than
reading the table again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pytest_delphyne.cache import CacheMode

Action = Literal["run", "skip", "report", "replay", "deselect"]
"""What a config's item does: run its program, skip it (done), report its stored
failure, replay it from its cache, or leave the session (`--lf` on a done config)."""

ACTIONS_THAT_RUN_PROGRAMS: tuple[Action, ...] = ("run", "replay")


@dataclass(frozen=True)
class SelectionOptions:
    """The options of a session that decide what each config does.

    Attributes:
        last_failed: pytest's `--lf` (the CLI's `--retry-errors`).
        failed_first: pytest's `--ff`.
        replay: `--pdb` or `--delphyne-replay`: replay what ran, from its cache.
        reuse_cache: a retried config replays the calls its failed attempt paid for.
        max_price: the session's spend cap, if any.
    """

    last_failed: bool = False
    failed_first: bool = False
    replay: bool = False
    reuse_cache: bool = False
    max_price: float | None = None


@dataclass(frozen=True)
class Decision:
    """What one config does, and in which cache mode its program runs ("off" for
    the actions that run no program)."""

    action: Action
    cache_mode: CacheMode


def decide_action(status: str, options: SelectionOptions) -> Action:
    """What a config with `status` does under `options` (the table above)."""
    if status == "todo":
        return "run"
    if status == "done":
        if options.replay:
            return "replay"
        return "deselect" if options.last_failed else "skip"
    # failed
    if options.replay:
        return "replay"
    if options.last_failed or options.failed_first:
        return "run"
    return "report"


def run_cache_mode(
    *, caches_requests: bool, reuse_cache: bool, resumes: bool
) -> CacheMode:
    """The cache mode of a config that runs: a fresh cache; or the old one read and
    extended, for a config whose last attempt was interrupted (what it paid for is
    replayed, never paid twice) and for a retry that may reuse what its failed
    attempt paid for (`--delphyne-reuse-cache`)."""
    if not caches_requests:
        return "off"
    return "read_write" if reuse_cache or resumes else "create"


def replay_cache_mode(*, raised: bool) -> CacheMode:
    """The cache mode of a replay: every call from the cache, except that a config
    that raised may make again the one call that raised (it has no answer)."""
    return "replay_first_miss_live" if raised else "replay"


def decide(
    status: str,
    options: SelectionOptions,
    *,
    caches_requests: bool,
    interrupted: bool = False,
) -> Decision:
    """What a config with `status` does under `options`, with its cache mode.

    `interrupted`: the config's last attempt started and never ended (Ctrl-C, a kill,
    a stalled controller): a `todo` config that runs resumes from its cache.

    A replay of a config without a cache (caching off, or a config that raised
    before its first call) runs live and writes nothing: its item checks that.
    """
    action = decide_action(status, options)
    if action == "run":
        mode = run_cache_mode(
            caches_requests=caches_requests,
            reuse_cache=options.reuse_cache,
            resumes=interrupted and status == "todo",
        )
    elif action == "replay" and caches_requests:
        mode = replay_cache_mode(raised=status == "failed")
    else:
        mode = "off"
    return Decision(action, mode)
