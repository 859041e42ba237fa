"""Reading an experiment report as its reader does: its tables' text, its images and
its links (standard library only), and its rendering in headless Chromium.

    python tests/report_page.py REPORT.html SCREENSHOT.png

writes a screenshot of a report, as the README's was made.
"""

from __future__ import annotations

import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

# Flags that keep Chromium from reaching for the network on its own (updates, sync,
# metrics), which this offline machine would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
]


class ReportPage(HTMLParser):
    """The tables (by id: rows of cell texts, header first), images and links."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    @classmethod
    def read(cls, path: Path) -> ReportPage:
        page = cls()
        page.feed(path.read_text(encoding="utf-8"))
        page.close()
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "table":
            self._table = attributes.get("id", f"table-{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "a" and "href" in attributes:
            self.links.append(attributes["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)

    def table(self, table_id: str) -> list[dict[str, str]]:
        """A table's rows as mappings from its header to each cell's text."""
        header, *rows = self.tables[table_id]
        return [dict(zip(header, row, strict=True)) for row in rows]

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def open_in_chromium(report: Path, screenshot: Path) -> dict[str, Any]:
    """Open the report in headless Chromium with the network cut off, screenshot the
    whole page, and say what rendered and what the page asked the network for."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError("chromium is not installed")
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(
                offline=True, viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                """() => [...document.images].map(image => ({
                    id: image.id,
                    complete: image.complete,
                    width: image.naturalWidth,
                    height: image.naturalHeight,
                    shown: image.getBoundingClientRect().width,
                }))"""
            )
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"images": images, "requests": requests, "title": title}


if __name__ == "__main__":
    found = open_in_chromium(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{len(found['images'])} plots, screenshot in {sys.argv[2]}")
