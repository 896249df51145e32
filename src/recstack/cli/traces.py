"""Commands about embedding-access streams: ``locality`` (of generated queries or of a real
trace) and ``fit-trace`` (a reuse profile learned from a trace, with its fit error)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console
from recstack.cli.options import JsonOption, RowScaleOption, TraceTablesOption, scaled

SamplesOption = Annotated[int | None, typer.Option(
    "--samples", help="Read only the trace's first N samples (default: all).")]
RowBytesOption = Annotated[int, typer.Option(
    "--row-bytes", help="Bytes of one embedding row, to turn cache sizes into rows (a "
                        "trace alone does not say; 128 is 32 float32 values).")]


def _cache_sizes(text: str) -> list[int]:
    from recstack.errors import SpecError
    from recstack.units import SIZE_EXAMPLES, parse_size

    try:
        return [parse_size(part, "cache_sizes", SIZE_EXAMPLES + ", separated by commas")
                for part in text.split(",") if part.strip()]
    except SpecError as error:
        raise error.for_option() from None


def _check_positive(option: str, value: int | None) -> None:
    from recstack.errors import RecstackError
    from recstack.limits import INT32_MAX

    if value is not None and not 1 <= value <= INT32_MAX:
        raise RecstackError(f"{option}: {value} is not allowed; expected an integer from 1 "
                            f"to {INT32_MAX}")


def _print_frame(frame: Any, title: str) -> None:
    table = Table(title=title, header_style="bold")
    for column in frame.columns:
        table.add_column(column.replace("_", " "), justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


@app.command()
def locality(
    model: Annotated[str | None, typer.Argument(
        help="Zoo name or spec file (optional with --trace: then the trace's own tables)."
    )] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per batch.")] = 256,
    batches: Annotated[int, typer.Option("--batches", help="Batches in the stream.")] = 4,
    distribution: Annotated[str, typer.Option(
        "--distribution", help="uniform, zipf or locality.")] = "uniform",
    reuse_probability: Annotated[float, typer.Option(
        "--reuse-probability", help="For --distribution locality.")] = 0.5,
    zipf_exponent: Annotated[float, typer.Option("--zipf-exponent")] = 1.05,
    cache_sizes: Annotated[str, typer.Option(
        "--cache-sizes", help="LRU row-cache sizes, comma-separated.")] = "1MiB,32MiB,1GiB",
    trace: Annotated[str | None, typer.Option(
        "--trace", help="A real trace (Meta .pt/.pt.gz, Criteo .tsv/.txt, (sample, id[, "
                        "table]) .csv/.parquet): its whole id streams, mapped onto MODEL's "
                        "tables and folded when a model is named.")] = None,
    trace_tables: TraceTablesOption = None,
    samples: SamplesOption = None,
    row_bytes: RowBytesOption = 128,
    row_scale: RowScaleOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the queries.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Embedding locality per table: unique rows, LRU stack distances, and the hit rate of
    an idealized LRU row cache of each size, of the generated queries or of a real trace.
    From the access streams alone: nothing is simulated or measured."""
    from recstack.analysis.locality import (distance_distribution, stream_distances,
                                            stream_locality)
    from recstack.errors import RecstackError, SpecError

    sizes = _cache_sizes(cache_sizes)
    for option, value in (("--batch-size", batch_size), ("--batches", batches),
                          ("--samples", samples), ("--row-bytes", row_bytes)):
        _check_positive(option, value)
    if trace is not None:
        streams, rows, width, title = _trace_streams(trace, model, trace_tables, samples,
                                                     row_bytes, row_scale)
    else:
        if model is None:
            raise RecstackError("model: nothing given; name a model, or a trace with --trace")
        from recstack.admission import require_stream_memory
        from recstack.analysis.locality import BYTES_PER_VALUE, table_streams
        from recstack.inputs import QuerySpec, generate_batches
        from recstack.specs import resolve_spec

        spec = scaled(resolve_spec(model), row_scale)
        require_stream_memory(spec, batch_size, batches, "--batches")
        try:
            query = QuerySpec(distribution=distribution, reuse_probability=reuse_probability,
                              zipf_exponent=zipf_exponent, seed=seed)
            generated = generate_batches(spec, query, batch_size, batches)
        except SpecError as error:
            raise error.for_option() from None
        streams = table_streams(spec, generated)
        rows = {table: int(spec.rows[table]) for table in streams}
        width = spec.embedding_dim * BYTES_PER_VALUE
        title = (f"{spec.name} (rows x{spec.row_scale:g}), {batches} batches of "
                 f"{batch_size}, {distribution}")
    computed = stream_distances(streams)  # once, for both tables below
    profile = stream_locality(streams, rows, width, sizes, computed)
    distances = distance_distribution(computed)
    if as_json:  # one record per table, its stack-distance shares beside its summary
        records = profile.to_dict("records")
        for record in records:
            rows = distances[distances.table == record["table"]]
            record["stack_distances"] = dict(zip(rows.label, rows.fraction.astype(float)))
        fmt.print_json(records)
        return
    _print_frame(profile, f"embedding locality: {title}")
    spread = distances.pivot(index="table", columns="label", values="fraction")
    _print_frame(spread[list(dict.fromkeys(distances.label))].reset_index(),
                 "LRU stack distances (share of accesses; cold = first touches)")
    console.print("hit rates: a fully associative LRU cache of whole embedding rows per table, "
                  "starting empty (an idealization of a real cache)", highlight=False)


def _trace_streams(path: str, model: str | None, tables: str | None, samples: int | None,
                   row_bytes: int, row_scale: float | None
                   ) -> tuple[dict[int, Any], dict[int, int], int, str]:
    """The trace's per-table id streams, their tables' rows, the row bytes, a title."""
    from recstack.cli.options import queries_option
    from recstack.trace_files import read_trace

    if model is None:
        if tables is not None:
            from recstack.errors import RecstackError

            raise RecstackError("--trace-tables: maps a trace onto a model's tables; name "
                                "the model too")
        trace = read_trace(path, "--trace", max_samples=samples)
        streams = trace.streams()
        rows = {t: int(ids.max()) + 1 if ids.size else 0 for t, ids in streams.items()}
        return streams, rows, row_bytes, (f"trace {trace.name} ({trace.samples} samples, "
                                          f"{row_bytes} B rows)")
    from recstack.analysis.locality import BYTES_PER_VALUE
    from recstack.specs import resolve_spec
    from recstack.trace_queries import folded_fraction, mapped_tables

    if samples is not None:
        from recstack.errors import RecstackError

        raise RecstackError("--samples: reads part of a trace alone; with a model the "
                            "whole trace is mapped, as `recstack run --queries` does")
    spec = scaled(resolve_spec(model), row_scale)
    query = queries_option(f"trace:{path}", 0, tables, "sequential")
    mapped = mapped_tables(spec, query)
    streams = {t.table: t.ids for t in mapped}
    rows = {t.table: t.rows for t in mapped}
    folded = folded_fraction(spec, query)
    return streams, rows, spec.embedding_dim * BYTES_PER_VALUE, (
        f"trace {Path(query.source).name} on {spec.name} (rows "
        f"x{spec.row_scale:g}; {100 * folded:.1f}% of ids folded)")


@app.command("fit-trace")
def fit_trace(
    trace: Annotated[str, typer.Argument(help="The trace to learn from.")],
    out: Annotated[str, typer.Option("--out", help="Where to write the profile (JSON).")],
    samples: SamplesOption = None,
    row_bytes: RowBytesOption = 128,
    train_fraction: Annotated[float, typer.Option(
        "--train-fraction", help="The share of each table's stream the fit-error check "
                                 "learns from; the rest is held out.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic streams.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Learn a per-table reuse profile from a trace (the LRU stack distances of its reuses
    and where its first touches fall) for `--queries profile:FILE`, and report the fit
    error: each table's held-out LRU hit-rate curve (1 MiB to 1 GiB) against a synthetic
    stream from a profile of the rest, beside DeepRecSys's method on the same data."""
    from recstack.analysis.trace_fit import TARGET, evaluate_fit, fit_summary
    from recstack.errors import RecstackError
    from recstack.reuse_profile import TraceProfile, fit_table, write_profile
    from recstack.trace_files import read_trace

    _check_positive("--samples", samples)
    _check_positive("--row-bytes", row_bytes)
    if not 0.05 <= train_fraction <= 0.95:
        raise RecstackError(f"--train-fraction: {train_fraction} is not allowed; expected a "
                            "number from 0.05 to 0.95")
    from recstack.paths import check_file_destination

    check_file_destination(Path(out), "--out")  # before minutes of fitting, not after
    loaded = read_trace(trace, "trace", max_samples=samples)
    streams = loaded.streams()
    profile = TraceProfile(source=loaded.name, source_digest=loaded.digest,
                           tables=tuple(fit_table(streams[t]) for t in sorted(streams)))
    write_profile(out, profile)
    import pandas as pd

    summaries = [fit_summary(evaluate_fit(stream, row_bytes, train_fraction, seed))
                 .assign(table=table) for table, stream in streams.items() if stream.size >= 2]
    summary = (pd.concat(summaries, ignore_index=True) if summaries
               else pd.DataFrame(columns=["table", "method"]))
    summary = summary[["table", *[c for c in summary.columns if c != "table"]]]
    if as_json:
        fmt.print_json({"profile": out, "tables": loaded.tables, "samples": loaded.samples,
                        "fit": summary.to_dict("records")})
        return
    console.print(f"profile of {loaded.name} ({loaded.tables} tables, {loaded.samples} "
                  f"samples) written to {out}", highlight=False)
    if not summary.empty:
        _print_frame(summary, f"fit error on held-out data: LRU hit rate, 1 MiB to 1 GiB "
                              f"caches of {row_bytes} B rows (target {TARGET}); recstack's "
                              "method beside DeepRecSys's")
