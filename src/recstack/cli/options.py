"""Options shared by several commands, and their parsing into library values."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from recstack.errors import RecstackError
from recstack.store import DEFAULT_STORE  # noqa: F401 - the one default, for every command
from recstack.text import shown

RowScaleOption = Annotated[
    float | None,
    typer.Option("--row-scale", help="Table rows relative to full size (e.g. 0.1). "
                                     "Default: full size wherever it fits in memory."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StoreOption = Annotated[str, typer.Option("--store", help="The results database file.")]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Continue the latest run in the store (or --run-id): points it already "
                     "measured are skipped, failed ones are measured again.")]
RunIdOption = Annotated[str | None, typer.Option(
    "--run-id", help="Name of the run to create, or with --resume the run to continue.")]
OversubscribeOption = Annotated[bool, typer.Option(
    "--oversubscribe", help="Allow more intra-op threads than the cores this process may use "
                            "(each operator then also measures waiting for a core).")]
QueriesOption = Annotated[str | None, typer.Option(
    "--queries", help="Where the embedding ids come from: uniform, zipf, locality, "
                      "trace:FILE (a real trace: Meta's .pt/.pt.gz, Criteo .tsv/.txt, or "
                      "(sample, id[, table]) .csv/.parquet) or profile:FILE (generated from "
                      "`recstack fit-trace`'s profile).")]
TraceTablesOption = Annotated[str | None, typer.Option(
    "--trace-tables", help="The file's table for each of the model's tables, in the spec's "
                           "order, e.g. 0,1,2,0; or cycle: table t reads the file's table t "
                           "modulo its tables, for any model (default: the file's table t, "
                           "refused where the file has fewer).")]
TraceSamplesOption = Annotated[int, typer.Option(
    "--trace-samples", help="Read only the trace's first N samples (default 0: all); how to "
                            "take the start of a Criteo day larger than a trace may be.")]
TraceOrderOption = Annotated[str, typer.Option(
    "--trace-order", help="sequential (the trace's samples in order) or shuffled (a seeded "
                          "permutation).")]


def levels_list(text: str) -> list[str]:
    """``"timing,operators"`` -> ``["timing", "operators"]`` (checked by planning)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def int_list(option: str, text: str) -> list[int]:
    """``"1,4,16"`` -> ``[1, 4, 16]``; anything else is a one-line error naming the option."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    values = [int(part) for part in parts if part.isascii() and part.isdigit()]
    if len(values) != len(parts):
        values = []
    if not values or any(v < 1 for v in values):
        raise RecstackError(f"{option}: {shown(text)} is not allowed; expected positive integers "
                            "separated by commas (e.g. 1,64,4096)")
    return values


def scaled(spec: Any, row_scale: float | None) -> Any:
    """``spec`` at ``--row-scale`` (checked: finite, > 0, tables within the spec's limits)."""
    from recstack.errors import SpecError
    from recstack.limits import check_scale

    if row_scale is None:
        return spec
    check_scale(row_scale, "--row-scale")
    try:
        return spec.scaled(row_scale)
    except SpecError as error:
        raise error.for_option("--row-scale") from None


def thread_count(text: str, cores: int) -> int:
    """``"2"`` -> 2: one intra-op thread count from 1 to ``cores`` (the cores this process
    may use), or a one-line error naming --threads."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= cores:
        raise RecstackError(f"--threads: {shown(text)} is not allowed; expected one integer "
                            f"from 1 to {cores} (the cores this process may use)")
    return count


ExecutorOption = Annotated[str, typer.Option(
    "--executor", help="Where points run: local (each in a fresh process on this machine) or "
                       "ray (on the measuring nodes of a Ray cluster; README \"A fleet\").")]
AddressOption = Annotated[str | None, typer.Option(
    "--address", help="With --executor ray: the cluster's HOST:PORT. Default: RAY_ADDRESS, "
                      "else the cluster started on this machine; local starts a private "
                      "one-node cluster of this machine.")]
PlatformsOption = Annotated[str | None, typer.Option(
    "--platforms", help="With --executor ray: measure every point on each of these platforms "
                        "(comma-separated ids as `recstack fleet` lists them, or all). "
                        "Default: each point once, on whichever node is free.")]
RetriesOption = Annotated[int, typer.Option(
    "--retries", help="With --executor ray: how often a point whose node or worker was lost "
                      "is measured again (each loss is stored).")]


def executor_option(executor: str, address: str | None, platforms: str | None,
                    retries: int) -> Any:
    """The executor the options name: None for local (the API's default), else a
    connected :class:`recstack.fleet.RayExecutor`."""
    from recstack.fleet import executor_for

    listed = [] if platforms is None else [p.strip() for p in platforms.split(",")]
    if platforms is not None and not any(listed):
        raise RecstackError(f"--platforms: {shown(platforms)} is not allowed; expected all or "
                            "platform ids separated by commas")
    return executor_for(executor, address, listed, retries)


PrecisionOption = Annotated[list[str] | None, typer.Option(
    "--precision", help="Numeric precision: emb=E,dense=D with E one of fp32, fp16, bf16, "
                        "int8, int4 (row-wise quantized tables) and D one of fp32, bf16, int8 "
                        "(dynamic quantization); a part left out stays fp32. Repeatable: "
                        "several precisions are compared in one sweep. Default: fp32.")]


def precision_list(values: list[str] | None) -> list[Any] | None:
    """``["fp32", "emb=int8"]`` -> their Precisions (None when none given); a value that is
    not one is a one-line error naming --precision."""
    from recstack.errors import SpecError
    from recstack.precision import Precision

    if not values:
        return None
    try:
        return list(dict.fromkeys(Precision.parse(value) for value in values))
    except SpecError as error:
        raise error.for_option("--precision") from None


def queries_option(queries: str | None, seed: int = 0, tables: str | None = None,
                   order: str = "sequential", samples: int = 0) -> Any:
    """``--queries`` with ``--trace-tables``, ``--trace-order`` and ``--trace-samples`` as
    a QuerySpec (a file is read and checked now), or None when ``--queries`` is not
    given."""
    if queries is None:
        if tables is not None or samples:
            option = "--trace-tables" if tables is not None else "--trace-samples"
            raise RecstackError(f"{option}: only with --queries trace:FILE or profile:FILE")
        return None
    from recstack.errors import SpecError
    from recstack.trace_queries import parse_queries

    table_map = _table_numbers(tables) if tables is not None else ()
    try:
        return parse_queries(queries, seed, table_map, order, samples)
    except SpecError as error:
        named = {"order": "--trace-order", "table_map": "--trace-tables",
                 "samples": "--trace-samples"}.get(error.field)
        raise error.for_option(named or "--queries") from None


def _table_numbers(text: str) -> tuple[int, ...] | str:
    if text.strip() == "cycle":
        return "cycle"
    parts = [part.strip() for part in text.split(",")]
    if not parts or not all(part.isascii() and part.isdigit() for part in parts):
        raise RecstackError(f"--trace-tables: {shown(text)} is not allowed; expected table "
                            "numbers >= 0 separated by commas (e.g. 0,1,2,0), or cycle")
    return tuple(int(part) for part in parts)
