"""``recstack doctor``: what this machine offers for each level, and how to get what is missing."""

from __future__ import annotations

from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console
from recstack.cli.options import JsonOption


@app.command()
def doctor(as_json: JsonOption = False) -> None:
    """What this machine offers: hardware counters, perf, pmu-tools, valgrind, CUDA."""
    from recstack.doctor import diagnose

    report = diagnose()
    if as_json:
        fmt.print_json(report)
        return
    console.print(f"platform: {report['platform']}", highlight=False)
    table = Table(header_style="bold")
    for column in ("capability", "here", "found", "what it means", "how to get it"):
        table.add_column(column)
    for item in report["capabilities"]:
        table.add_row(item["name"], "yes" if item["available"] else "no", item["detail"],
                      item["meaning"], item["remedy"] or "")
    console.print(table)
    console.print(f"hardware level: {report['hardware_level']}: "
                  f"{report['hardware_level_reason']}", highlight=False, markup=False)
