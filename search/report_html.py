"""The HTML of `nextsweep report`: the page as a list of sections (the first Plotly figure carries
Plotly's JavaScript, the others reuse it), the document around it, tables, escaping and the
small formatting of numbers and durations. What goes on the page is in search.report."""

from __future__ import annotations

import html
from datetime import timedelta

HEIGHT = 430
CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:14px}
th{background:#f2f2f2}h2{margin-top:1.6em;border-bottom:1px solid #ddd}.note{color:#666;font-style:italic}
.warn{color:#8a4b00}code{background:#f5f5f5;padding:0 3px}"""


class Page:
    """Sections of HTML; the first figure carries Plotly's JavaScript, the others reuse it."""

    def __init__(self):
        self.parts: list[str] = []
        self.has_js = False

    def add(self, text: str) -> None:
        self.parts.append(text)

    def section(self, title: str) -> None:
        self.add(f"<h2>{esc(title)}</h2>")

    def note(self, text: str) -> None:
        self.add(f'<p class="note">{esc(text)}</p>')

    def figure(self, fig) -> None:
        fig.update_layout(height=HEIGHT, margin={"t": 40, "b": 40})
        self.add(fig.to_html(full_html=False, include_plotlyjs=not self.has_js, config={"displaylogo": False}))
        self.has_js = True

    def document(self, title: str) -> str:
        """The whole page: one HTML file that opens offline."""
        body = "\n".join(self.parts)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
                f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def esc(text) -> str:
    return html.escape(str(text))


def table(head: list, rows: list[tuple]) -> str:
    cells = lambda row, tag: "".join(f"<{tag}>{esc(c)}</{tag}>" for c in row)
    return ("<table><tr>" + cells(head, "th") + "</tr>" + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
            + "</table>")


def num(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("-" if v is None else str(v))


def duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def shown(v, missing: str = "-"):
    """A recorded value, or `missing` where the study has none."""
    return missing if v is None else v
