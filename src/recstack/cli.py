"""The command line: parses arguments, calls the library, renders what it returns.

Nothing here measures or computes; errors from the library (RecstackError) become one line on
stderr and exit status 2.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from recstack.errors import RecstackError

app = typer.Typer(
    name="recstack",
    help="Cross-stack characterization of deep recommendation inference.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Piped output (logs, CI) keeps full tables instead of folding them to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=200)

ScaleOption = Annotated[
    float | None,
    typer.Option("--scale", help="Table rows relative to full size (e.g. 0.1). "
                                 "Default: full size wherever it fits in memory."),
]


# ---- formatting (presentation only) -------------------------------------------------------


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def _rows(rows: list[int]) -> str:
    groups: list[list[int]] = []
    for r in rows:
        if groups and groups[-1][1] == r:
            groups[-1][0] += 1
        else:
            groups.append([1, r])
    return " + ".join(f"{count}x{_count(r)}" for count, r in groups)


def _widths(widths: list[int]) -> str:
    return "-".join(str(w) for w in widths)


def _mlp(summary: dict[str, Any]) -> str:
    kind = summary["model_type"]
    if kind in ("din", "dien"):
        return f"att {_widths(summary['bottom_mlp'])}, top {_widths(summary['top_mlp'])}"
    parts = []
    if kind == "dlrm":
        parts.append(f"bot {_widths(summary['bottom_mlp'])}")
    elif kind in ("wnd", "mtwnd"):
        parts.append(f"dense {summary['dense_features']}")
    parts.append(f"top {_widths(summary['top_mlp'])}")
    if kind == "mtwnd":
        parts.append(f"{summary['num_tasks']}x tasks {_widths(summary['task_mlp'])}")
    return ", ".join(parts)


def _lookups(summary: dict[str, Any]) -> str:
    distinct = sorted(set(summary["lookups_per_table"]), reverse=True)
    text = "/".join(str(n) for n in distinct)
    if not summary["pooling_fixed"]:
        text = f"1..{text}"
    if summary["sequence_length"]:
        text += f" + seq {summary['sequence_length']}"
    return text


def _summaries_table(summaries: list[dict[str, Any]]) -> Table:
    table = Table(title="recstack model zoo" if summaries else None, header_style="bold")
    for column in ("model", "type", "scale", "tables", "rows", "dim", "lookups/table", "MLP",
                   "params", "FLOPs/sample", "gathered/sample", "embeddings", "memory",
                   "fits here"):
        justify = "left" if column in ("model", "type", "rows", "MLP", "lookups/table") \
            else "right"
        table.add_column(column, justify=justify)
    for s in summaries:
        table.add_row(
            s["name"], s["model_type"], f"{s['row_scale']:g}", str(s["tables"]), _rows(s["rows"]),
            str(s["embedding_dim"]), _lookups(s), _mlp(s), _count(s["parameters"]),
            _count(s["flops_total"]), _bytes(s["gathered_bytes_per_sample"]),
            _bytes(s["embedding_bytes"]), _bytes(s["model_bytes"]),
            "yes" if s.get("fits") else "no",
        )
    return table


def _footprint_table(s: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(justify="left", style="bold")
    table.add_column(justify="left")
    rows = [
        ("row scale", f"{s['row_scale']:g}"),
        ("tables", f"{s['tables']} ({_rows(s['rows'])} rows, dim {s['embedding_dim']})"),
        ("lookups per table", _lookups(s)),
        ("MLP", _mlp(s)),
        ("interaction", s["interaction"]),
        ("parameters", f"{_count(s['parameters'])} ({_count(s['embedding_parameters'])} in "
                       "embeddings)"),
        ("FLOPs per sample", f"{_count(s['flops_total'])} (mlp {_count(s['flops_mlp'])}, "
                             f"interaction {_count(s['flops_interaction'])}, attention "
                             f"{_count(s['flops_attention'])}, recurrent "
                             f"{_count(s['flops_recurrent'])}, embedding pooling "
                             f"{_count(s['flops_embedding'])})"),
        ("gathered per sample", f"{_bytes(s['gathered_bytes_per_sample'])} "
                                f"({s['lookups_per_sample']:g} lookups)"),
        ("embeddings", _bytes(s["embedding_bytes"])),
        ("memory", f"{_bytes(s['model_bytes'])} of parameters; building needs at most "
                   f"{_bytes(s['build_memory_bytes'])}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(size < 1 for size in sizes):
        raise RecstackError(f"--batch-sizes: {text!r} is not allowed; expected positive "
                            "integers separated by commas (e.g. 1,64,4096)")
    return sizes


def _check_scale(scale: float | None) -> None:
    if scale is not None and not scale > 0:
        raise RecstackError(f"--scale: {scale!r} is not allowed; expected a number greater "
                            "than 0 (1 is full size)")


# ---- commands ------------------------------------------------------------------------------


@app.command()
def models(
    names: Annotated[list[str] | None, typer.Argument(
        help="Zoo names (or DeepRecSys aliases) or spec files; default: the eight models.")
    ] = None,
    scale: ScaleOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """The model zoo: structure, parameters, FLOPs and memory of each model."""
    from recstack.catalog import model_summary
    from recstack.footprint import available_memory_bytes
    from recstack.specs import ZOO_NAMES, resolve_spec

    _check_scale(scale)
    specs = [resolve_spec(name) for name in (names or ZOO_NAMES)]
    if scale is not None:
        specs = [spec.scaled(scale) for spec in specs]
    available = available_memory_bytes()
    summaries = [model_summary(spec, available) for spec in specs]
    if as_json:
        _print_json(summaries)
        return
    console.print(_summaries_table(summaries))
    console.print(f"memory = parameters at fp32; fits here = building needs at most "
                  f"1.2x that, against {_bytes(available)} available now")


@app.command()
def check(
    file: Annotated[str, typer.Argument(help="A spec file (.json, .yaml) or a zoo name.")],
    scale: ScaleOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Validate a spec file and print its footprint (or the error, exit status 2)."""
    from recstack.catalog import model_summary
    from recstack.footprint import available_memory_bytes, scale_that_fits
    from recstack.specs import resolve_spec

    _check_scale(scale)
    spec = resolve_spec(file)
    if scale is not None:
        spec = spec.scaled(scale)
    available = available_memory_bytes()
    summary = model_summary(spec, available)
    summary["unused_keys"] = list(spec.unused_keys())
    if not summary["fits"]:
        summary["scale_that_fits"] = scale_that_fits(spec, available)
    if as_json:
        _print_json(summary)
        return
    console.print(f"valid: {file} is a {spec.model_type} model named {spec.name!r}",
                  markup=False, highlight=False)
    console.print(_footprint_table(summary))
    for key in summary["unused_keys"]:
        console.print(f"note: {key} is accepted but not used by model_type {spec.model_type}")
    if not summary["fits"]:
        fits = summary["scale_that_fits"]
        advice = f"--scale {fits:g} would fit" if fits else "its dense layers alone do not fit"
        console.print(f"does not fit here: building needs about "
                      f"{_bytes(summary['build_memory_bytes'])}, {_bytes(available)} "
                      f"available; {advice}")


@app.command()
def run(
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Zoo name or spec file (repeatable); default: the eight models.")
    ] = None,
    scale: ScaleOption = None,
    batch_sizes: Annotated[str, typer.Option(
        help="Batch sizes of the forward check, comma-separated.")] = "1,64,4096",
    seed: Annotated[int, typer.Option(help="Seed of weights and queries.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The main job. For now: build every model (full size where it fits, one at a time, each
    in a fresh process), measure build time and peak memory, and check its forward pass on
    synthetic queries. The systems, software and hardware levels plug in here as they land."""
    from recstack.collect.build import BuildCheckFailed, check_build_isolated
    from recstack.footprint import available_memory_bytes, scale_that_fits
    from recstack.specs import ZOO_NAMES, resolve_spec

    _check_scale(scale)
    sizes = _parse_batch_sizes(batch_sizes)
    specs = [resolve_spec(name) for name in (model or ZOO_NAMES)]
    results: list[dict[str, Any]] = []
    table = Table(title="recstack run: model builds and forward checks", header_style="bold")
    for column in ("model", "scale", "parameters", "build s", "s/GB", "peak/model",
                   "forward", "note"):
        table.add_column(column, justify="left" if column in ("model", "forward", "note")
                         else "right")
    for spec in specs:
        note = ""
        if scale is not None:
            spec = spec.scaled(scale)
        else:
            fits = scale_that_fits(spec, available_memory_bytes())
            if fits is None:
                results.append({"name": spec.name, "error": "does not fit in memory"})
                table.add_row(spec.name, "-", "-", "-", "-", "-", "-", "does not fit")
                continue
            if fits < 1.0:
                spec = spec.scaled(fits)
                note = "scaled to fit this machine's memory"
        with console.status(f"building {spec.name} (row_scale {spec.row_scale:g})",
                            spinner="dots"):
            try:
                check_result = check_build_isolated(spec, sizes, seed)
            except BuildCheckFailed as failure:
                results.append({"name": spec.name, "row_scale": spec.row_scale,
                                "error": str(failure)})
                table.add_row(spec.name, f"{spec.row_scale:g}", "-", "-", "-", "-", "failed",
                              str(failure))
                continue
        record = check_result.to_dict()
        record["note"] = note
        results.append(record)
        forward = ", ".join(f"b{b}:{'ok' if ok else 'BAD'}"
                            for b, ok in zip(check_result.batch_sizes, check_result.forward_ok))
        table.add_row(spec.name, f"{spec.row_scale:g}", _count(check_result.parameters),
                      f"{check_result.build_seconds:.2f}",
                      f"{check_result.build_seconds_per_gb:.2f}",
                      f"{check_result.peak_memory_ratio:.2f}x", forward, note)
    if as_json:
        _print_json(results)
    else:
        console.print(table)
        console.print("build s: wall time to build all weights; peak/model: growth of the "
                      "worker's peak resident memory during the build, over the model's bytes")
    if any("error" in r or not all(r.get("forward_ok", [])) for r in results):
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: user errors are one line and exit status 2, never a traceback."""
    try:
        app()
    except RecstackError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
