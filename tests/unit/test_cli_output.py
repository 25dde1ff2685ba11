"""CLI output: names from data print as their own characters, never as Rich markup or terminal control."""

from __future__ import annotations

import io
from decimal import Decimal

from rich.table import Table

from aifinops.console import SafeConsole, visible
from aifinops.report import Report, render_report

ESCAPE = "\x1b"


def rendered(report: Report) -> str:
    buffer = io.StringIO()
    render_report(report, SafeConsole(file=buffer, width=200, force_terminal=True, color_system="truecolor"))
    return buffer.getvalue()


def hostile_report() -> Report:
    report = Report(tenant="acme")
    report.cost_events = 3
    report.spend = {"USD": Decimal(3)}
    report.by_team["[red]x[/red]"] = {"USD": Decimal(1)}
    report.by_team["[/]"] = {"USD": Decimal(1)}
    report.by_team[f"clear{ESCAPE}[2Jscreen"] = {"USD": Decimal(1)}
    report.by_model[("openai", ":thumbs_up: [bold]gpt[/bold]")] = {"USD": Decimal(3)}
    return report


def test_markup_in_names_is_literal() -> None:
    output = rendered(hostile_report())
    assert "[red]x[/red]" in output
    assert "[/]" in output
    assert ":thumbs_up: [bold]gpt[/bold]" in output


def test_control_characters_are_escaped() -> None:
    output = rendered(hostile_report())
    assert f"{ESCAPE}[2J" not in output
    assert "clear\\x1b[2Jscreen" in output


def test_visible_escapes() -> None:
    assert visible("a\x07b\tc\nd") == "a\\x07b\tc\nd"
    assert visible("x\u202eevil") == "x\\u202eevil"
    assert visible("\x9b") == "\\x9b"


def test_table_cells_are_escaped() -> None:
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=120, force_terminal=True)
    table = Table()
    table.add_column("model")
    table.add_row(f"[green]m[/green]{ESCAPE}]0;title{ESCAPE}\\")
    console.print(table)
    assert "[green]m[/green]\\x1b]0;title\\x1b\\" in buffer.getvalue()
    assert f"{ESCAPE}]0;" not in buffer.getvalue()


def test_report_without_data() -> None:
    assert not Report(tenant="nobody").has_data
    assert hostile_report().has_data
    captured_only = Report(tenant="acme", capture={"events_by_format": {"focus-csv": {"usage.recorded": 2}}})
    assert captured_only.has_data
