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


@app.command()
def locality(
    model: Annotated[str, typer.Argument(help="Zoo name or spec file.")],
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per batch.")] = 256,
    batches: Annotated[int, typer.Option("--batches", help="Batches in the stream.")] = 4,
    distribution: Annotated[str, typer.Option(
        "--distribution", help="uniform, zipf or locality.")] = "uniform",
    reuse_probability: Annotated[float, typer.Option(
        "--reuse-probability", help="For --distribution locality.")] = 0.5,
    zipf_exponent: Annotated[float, typer.Option("--zipf-exponent")] = 1.05,
    cache_sizes: Annotated[str, typer.Option(
        "--cache-sizes", help="LRU row-cache sizes, comma-separated.")] = "1MiB,32MiB,1GiB",
    row_scale: RowScaleOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the queries.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Embedding locality of the generated queries, per table: unique rows, LRU stack
    distances, and the hit rate of an idealized LRU row cache of each size. From the access
    streams alone: nothing is simulated or measured."""
    from recstack.analysis.locality import locality_profile
    from recstack.admission import require_stream_memory
    from recstack.errors import RecstackError, SpecError
    from recstack.inputs import QuerySpec, generate_batches
    from recstack.limits import INT32_MAX
    from recstack.specs import resolve_spec
    from recstack.units import SIZE_EXAMPLES, parse_size

    spec = scaled(resolve_spec(model), row_scale)
    try:
        sizes = [parse_size(part, "cache_sizes", SIZE_EXAMPLES + ", separated by commas")
                 for part in cache_sizes.split(",") if part.strip()]
    except SpecError as error:
        raise error.for_option() from None
    for option, value in (("--batch-size", batch_size), ("--batches", batches)):
        if not 1 <= value <= INT32_MAX:
            raise RecstackError(f"{option}: {value} is not allowed; expected an integer from 1 "
                                f"to {INT32_MAX}")
    require_stream_memory(spec, batch_size, batches, "--batches")
    try:
        query = QuerySpec(distribution=distribution, reuse_probability=reuse_probability,
                          zipf_exponent=zipf_exponent, seed=seed)
        generated = generate_batches(spec, query, batch_size, batches)
    except SpecError as error:
        raise error.for_option() from None
    profile = locality_profile(spec, generated, sizes)
    if as_json:
        fmt.print_json(profile.to_dict("records"))
        return
    table = Table(title=f"embedding locality: {spec.name} (rows x{spec.row_scale:g}), "
                        f"{batches} batches of {batch_size}, {distribution}",
                  header_style="bold")
    for column in profile.columns:
        table.add_column(column.replace("_", " "), justify="right")
    for row in profile.itertuples(index=False):
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    console.print("hit rates: a fully associative LRU cache of whole embedding rows per table, "
                  "starting empty (an idealization of a real cache)", highlight=False)
