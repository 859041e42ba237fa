"""A config's oracle calls in order: `trace.yaml` for programs, `trace.html` for people.

Each call is a mapping: `key`, `occurrence`, `args`, `cached` (answered from the
cache), `seconds`, `answer`, and `spent` (what the program spent after the call and
before the next one, typically the call's own tokens and price).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Final

from pytest_delphyne import layout
from pytest_delphyne.files import atomic_write
from pytest_delphyne.plain_data import dump_yaml
from pytest_delphyne.redaction import redact

_PAGE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
details {{ border: 1px solid #ccc; margin: .3em 0; padding: .3em .6em; }}
summary {{ cursor: pointer; }}
pre {{ background: #f6f6f6; padding: .5em; overflow-x: auto; white-space: pre-wrap; }}
.cached {{ color: #2a7; }} .paid {{ color: #c60; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
{calls}
</body></html>
"""

_CALL: Final = """<details><summary>#{index} <code>{key}</code>
(occurrence {occurrence}) <span class="{css}">{how}</span>,
{seconds:.3f}s{spent}</summary>
<h4>Arguments</h4><pre>{args}</pre>
<h4>Answer</h4><pre>{answer}</pre>
</details>"""


def render_html(config_name: str, calls: list[dict[str, Any]]) -> str:
    """A self-contained HTML page listing the calls, each expandable."""
    items = []
    for index, call in enumerate(calls):
        spent = ", ".join(f"{k} {v}" for k, v in call["spent"].items())
        items.append(
            _CALL.format(
                index=index,
                key=html.escape(call["key"]),
                occurrence=call["occurrence"],
                css="cached" if call["cached"] else "paid",
                how="from the cache" if call["cached"] else "made",
                seconds=call["seconds"],
                spent=html.escape(f"; spent {spent}") if spent else "",
                args=html.escape(_pretty(call["args"])),
                answer=html.escape(_pretty(call["answer"])),
            )
        )
    cached = sum(1 for call in calls if call["cached"])
    return _PAGE.format(
        title=html.escape(f"Oracle calls of config {config_name}"),
        summary=f"{len(calls)} calls, {cached} answered from the cache.",
        calls="\n".join(items),
    )


def _pretty(data: Any) -> str:
    if isinstance(data, str):
        return data
    return json.dumps(data, indent=2, ensure_ascii=False)


def write_traces(
    directory: Path,
    config_name: str,
    calls: list[dict[str, Any]],
    raw: bool,
    browsable: bool,
) -> None:
    """Write `trace.yaml` (when `raw`) and `trace.html` (when `browsable`)."""
    if raw:
        text = dump_yaml(calls) if calls else "[]\n"
        atomic_write(directory / layout.RAW_TRACE_FILE, redact(text), durable=False)
    if browsable:
        page = render_html(config_name, calls)
        atomic_write(
            directory / layout.BROWSABLE_TRACE_FILE, redact(page), durable=False
        )
