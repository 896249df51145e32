"""Commands about models: ``models`` (the zoo) and ``check`` (a user's spec file)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console
from recstack.cli.options import JsonOption, RowScaleOption, scaled


def _summaries_table(summaries: list[dict[str, Any]]) -> Table:
    table = Table(title="recstack model zoo", header_style="bold")
    for column in ("model", "type", "row scale", "tables", "rows", "dim", "lookups/table", "MLP",
                   "params", "FLOPs/sample", "gathered/sample", "embeddings", "memory",
                   "fits here"):
        justify = "left" if column in ("model", "type", "rows", "MLP", "lookups/table") \
            else "right"
        table.add_column(column, justify=justify)
    for s in summaries:
        table.add_row(
            s["name"], s["model_type"], f"{s['row_scale']:g}", str(s["tables"]),
            fmt.rows(s["rows"]), str(s["embedding_dim"]), fmt.lookups(s), fmt.mlp(s),
            fmt.count(s["parameters"]), fmt.count(s["flops_total"]),
            fmt.nbytes(s["gathered_bytes_per_sample"]), fmt.nbytes(s["embedding_bytes"]),
            fmt.nbytes(s["model_bytes"]), "yes" if s.get("fits") else "no",
        )
    return table


def _footprint_table(s: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(justify="left", style="bold")
    table.add_column(justify="left")
    entries = [
        ("row scale", f"{s['row_scale']:g}"),
        ("tables", f"{s['tables']} ({fmt.rows(s['rows'])} rows, dim {s['embedding_dim']})"),
        ("lookups per table", fmt.lookups(s)),
        ("MLP", fmt.mlp(s)),
        ("interaction", s["interaction"]),
        ("parameters", f"{fmt.count(s['parameters'])} ({fmt.count(s['embedding_parameters'])} "
                       "in embeddings)"),
        ("FLOPs per sample", f"{fmt.count(s['flops_total'])} (mlp {fmt.count(s['flops_mlp'])}, "
                             f"interaction {fmt.count(s['flops_interaction'])}, attention "
                             f"{fmt.count(s['flops_attention'])}, recurrent "
                             f"{fmt.count(s['flops_recurrent'])}, embedding pooling "
                             f"{fmt.count(s['flops_embedding'])})"),
        ("gathered per sample", f"{fmt.nbytes(s['gathered_bytes_per_sample'])} "
                                f"({s['lookups_per_sample']:g} lookups)"),
        ("embeddings", fmt.nbytes(s["embedding_bytes"])),
        ("memory", f"{fmt.nbytes(s['model_bytes'])} of parameters; building needs at most "
                   f"{fmt.nbytes(s['build_memory_bytes'])}"),
    ]
    for key, value in entries:
        table.add_row(key, value)
    return table


# ---- commands ------------------------------------------------------------------------------


@app.command()
def models(
    names: Annotated[list[str] | None, typer.Argument(
        help="Zoo names (or DeepRecSys aliases) or spec files; default: the eight models.")
    ] = None,
    row_scale: RowScaleOption = None,
    as_json: JsonOption = False,
) -> None:
    """The model zoo: structure, parameters, FLOPs and memory of each model."""
    from recstack.admission import available_memory_bytes
    from recstack.catalog import model_summary
    from recstack.specs import ZOO_NAMES, resolve_spec

    specs = [scaled(resolve_spec(name), row_scale) for name in (names or ZOO_NAMES)]
    available = available_memory_bytes()
    summaries = [model_summary(spec, available) for spec in specs]
    if as_json:
        fmt.print_json(summaries)
        return
    console.print(_summaries_table(summaries))
    console.print(f"memory = parameters at fp32; fits here = building needs at most "
                  f"1.2x that, against {fmt.nbytes(available)} available now")


@app.command()
def check(
    file: Annotated[str, typer.Argument(help="A spec file (.json, .yaml) or a zoo name.")],
    row_scale: RowScaleOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a spec file and print its footprint (or the error, exit status 2)."""
    from recstack.admission import available_memory_bytes, scale_that_fits
    from recstack.catalog import model_summary
    from recstack.specs import resolve_spec

    spec = scaled(resolve_spec(file), row_scale)
    available = available_memory_bytes()
    summary = model_summary(spec, available)
    summary["unused_keys"] = list(spec.unused_keys())
    if not summary["fits"]:
        summary["row_scale_that_fits"] = scale_that_fits(spec, available)
    if as_json:
        fmt.print_json(summary)
        return
    console.print(f"valid: {file} is a {spec.model_type} model named {spec.name!r}",
                  markup=False, highlight=False)
    console.print(_footprint_table(summary))
    for key in summary["unused_keys"]:
        console.print(f"note: {key} is accepted but not used by model_type {spec.model_type}")
    if not summary["fits"]:
        fits = summary["row_scale_that_fits"]
        advice = (f"--row-scale {fits:g} would fit" if fits
                  else "its dense layers alone do not fit")
        console.print(f"does not fit here: building needs about "
                      f"{fmt.nbytes(summary['build_memory_bytes'])}, {fmt.nbytes(available)} "
                      f"available; {advice}")

