"""Commands of the cross-stack correlation: ``design`` (the variants of a design space) and
``correlate`` (measure them, relate their features to their bottlenecks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console, make_console
from recstack.cli.options import (DEFAULT_STORE, AddressOption, ExecutorOption, JsonOption,
                                  PlatformsOption, PrecisionOption, ResumeOption, RetriesOption,
                                  RunIdOption, StoreOption, executor_option, int_list,
                                  levels_list, precision_list)
from recstack.cli.progress import finish, measure_with_progress, report_outcome
from recstack.errors import RecstackError
from recstack.precision import FP32
from recstack.text import MISSING

DesignFileOption = Annotated[str | None, typer.Option(
    "--design-file", help="YAML design space (default: the shipped design_space.yaml).")]
VariantsOption = Annotated[int | None, typer.Option(
    "--variants", help="Variants per base model (Latin hypercube); overrides the file.")]
BasesOption = Annotated[str | None, typer.Option(
    "--models", help="Comma-separated base models (zoo names); overrides the file.")]
SamplerOption = Annotated[str | None, typer.Option(
    "--sampler", help="lhs (Latin hypercube) or grid; overrides the file.")]
DesignSeedOption = Annotated[int, typer.Option("--seed", help="Seed of the design.")]
QuickOption = Annotated[bool, typer.Option(
    "--quick", help="A small design (3 DLRM bases x 4 variants, 8 MiB tables) for a first "
                    "look or a test.")]


def _space(design_file: str | None, variants: int | None, models: str | None,
           sampler: str | None, quick: bool) -> Any:
    from recstack.designspace import (default_design_space, load_design_space,
                                      quick_design_space)

    if quick and design_file:
        raise RecstackError("--quick: not allowed with --design-file; --quick is a shipped "
                            "small design")
    space = (quick_design_space() if quick else
             load_design_space(design_file) if design_file else default_design_space())
    changes: dict[str, Any] = {}
    if variants is not None:
        if variants < 1:
            raise RecstackError(f"--variants: {variants!r} is not allowed; expected an "
                                "integer >= 1")
        changes["variants_per_model"] = variants
    if models:
        changes["models"] = tuple(part.strip() for part in models.split(",") if part.strip())
    if sampler is not None:
        changes["sampler"] = sampler
    if changes:
        space = _option_errors(space.replace, **changes)
    return space


def _option_errors(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Runs ``function``; a spec error about a design setting names the command option."""
    from recstack.errors import SpecError

    options = {"variants_per_model": "--variants", "models": "--models",
               "sampler": "--sampler", "seed": "--seed"}
    try:
        return function(*args, **kwargs)
    except SpecError as error:
        if error.field in options:
            raise RecstackError(f"{options[error.field]}: {error.value!r} is not allowed; "
                                f"{error.allowed}") from None
        raise


@app.command()
def design(
    design_file: DesignFileOption = None,
    variants: VariantsOption = None,
    models: BasesOption = None,
    sampler: SamplerOption = None,
    seed: DesignSeedOption = 0,
    quick: QuickOption = False,
    write: Annotated[str | None, typer.Option(
        "--write", help="Write every variant as a spec file (JSON) into this directory: "
                        "each runs like any model (recstack run --model DIR/NAME.json).")]
    = None,
    as_json: JsonOption = False,
) -> None:
    """List the model variants of a design space (the same seed always gives the same
    specs), with their main features."""
    from recstack.designspace import generate_variants
    from recstack.features import feature_table

    space = _space(design_file, variants, models, sampler, quick)
    generated = _option_errors(generate_variants, space, seed)
    features = feature_table(v.spec for v in generated)
    written = []
    if write:
        from recstack.paths import check_folder_destination, file_part, write_atomically

        directory = check_folder_destination(Path(write), "--write")
        for variant in generated:
            written.append(write_atomically(
                directory / f"{file_part(variant.name)}.json",
                json.dumps(variant.spec.to_config(), indent=2) + "\n"))
    if as_json:
        fmt.print_json([{"variant": v.name, "base": v.base, "factors": dict(v.factors),
                         "spec": v.spec.to_config(), "features": row}
                        for v, row in zip(generated, features.to_dict("records"))])
        return
    table = Table(title=f"{len(generated)} variants ({space.sampler}, seed {seed}, "
                        f"from {space.source})")
    for column in ("variant", "tables", "lookups/sample", "dim", "MLP FLOPs", "attention",
                   "recurrent", "gathered B", "embeddings"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in features.itertuples():
        table.add_row(row.model, str(row.num_tables), f"{row.lookups:g}",
                      str(row.embedding_dim), fmt.count(row.flops_mlp),
                      fmt.count(row.flops_attention), fmt.count(row.flops_recurrent),
                      fmt.nbytes(row.gathered_bytes), fmt.nbytes(row.embedding_bytes))
    console.print(table)
    if written:
        console.print(f"wrote {len(written)} spec files to {write}", highlight=False)


@app.command()
def correlate(
    design_file: DesignFileOption = None,
    variants: VariantsOption = None,
    models: BasesOption = None,
    sampler: SamplerOption = None,
    seed: DesignSeedOption = 0,
    quick: QuickOption = False,
    batch_sizes: Annotated[str | None, typer.Option(
        "--batch-sizes", help="Comma-separated batch sizes; each is analysed on its own. "
                              "Default: 1,64 (--quick: 16).")] = None,
    levels: Annotated[str, typer.Option(
        "--levels", help="Levels whose bottlenecks are related to the features: timing, "
                         "operators, hardware (simulated without counters: slow).")]
    = "timing,operators",
    threads: Annotated[str, typer.Option(
        "--threads", help="Comma-separated intra-op thread counts. Default 1: variants are "
                          "compared with each other, and one thread is far less disturbed "
                          "by other work on the machine than all cores.")] = "1",
    store: StoreOption = DEFAULT_STORE,
    resume: ResumeOption = False,
    run_id: RunIdOption = None,
    min_time: Annotated[float, typer.Option(
        "--min-time", help="Seconds of timed iterations per point.")] = 0.5,
    precision: PrecisionOption = None,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    platforms: PlatformsOption = None,
    retries: RetriesOption = 1,
    as_json: JsonOption = False,
) -> None:
    """Cross-stack correlation: measure a design space of model variants around the
    canonical models and relate their features to their bottlenecks (correlations,
    regressions, tree importance, and whether one feature dominates each bottleneck)."""
    from recstack import api

    space = _space(design_file, variants, models, sampler, quick)
    sizes = int_list("--batch-sizes", batch_sizes) if batch_sizes is not None else \
        ([16] if quick else [1, 64])
    display = make_console(stderr=True) if as_json else console
    measured = measure_with_progress(
        lambda **options: _option_errors(api.correlate, space, **options), display=display,
        seed=seed, batch_sizes=sizes, levels=levels_list(levels),
        threads=int_list("--threads", threads), store=store, min_time=min_time,
        resume=resume, run_id=run_id, precisions=precision_list(precision) or [FP32],
        executor=executor_option(executor, address, platforms, retries))
    result, analysis = measured.run, measured.analysis
    if as_json:
        fmt.print_json({"run_id": result.run_id, "store": str(result.store.path),
                        "failed": result.failed, "notes": analysis.notes,
                        "dominance": analysis.dominance.to_dict("records"),
                        "fits": analysis.fits.to_dict("records"),
                        "correlations": analysis.correlations.to_dict("records"),
                        "importance": analysis.importance.to_dict("records"),
                        "figures": [str(p) for p in result.figures]})
        report_outcome(result.outcome, display)
        if result.failed:
            raise typer.Exit(1)
        return
    _print_result(analysis)
    finish(result)


def _print_result(result: Any) -> None:
    from recstack.analysis.correlation import DOMINANCE_THRESHOLD

    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    fits = result.fits.set_index(["batch_size", "device", "threads", "backend", "bottleneck"])
    spearman = result.correlations[result.correlations.method == "spearman"]
    for key, rows in result.dominance.groupby(["batch_size", "device", "threads", "backend"]):
        batch, device, count, backend = key
        table = Table(title=f"Bottlenecks vs features: batch {batch}, {device}, {count} "
                            f"threads, {backend} ({rows.n.max()} variants)")
        for column in ("bottleneck", "strongest feature", "its share", "dominates?",
                       "R² (all)", "R² (CV)", "strongest Spearman r"):
            table.add_column(column, justify="left" if column in ("bottleneck",
                                                                   "strongest feature")
                             else "right")
        for row in rows.itertuples():
            fit = fits.loc[(*key, row.bottleneck)]
            correlations = spearman[(spearman.bottleneck == row.bottleneck)
                                    & (spearman.batch_size == batch)
                                    & (spearman.device == device)
                                    & (spearman.threads == count)
                                    & (spearman.backend == backend)].dropna(subset=["r"])
            best = correlations.loc[correlations.r.abs().idxmax()] if len(correlations) \
                else None
            strongest_r = MISSING if best is None else f"{best.r:+.2f} ({best.feature})"
            share = MISSING if row.strongest_share != row.strongest_share \
                else f"{row.strongest_share:.0%}"
            table.add_row(row.bottleneck, row.strongest_feature, share,
                          "yes" if row.dominated else "no", f"{fit.r2:.2f}",
                          MISSING if fit.cv_r2 != fit.cv_r2 else f"{fit.cv_r2:.2f}", strongest_r)
        console.print(table)
        dominated = int(rows.dominated.sum())
        console.print(f"{dominated} of {len(rows)} bottlenecks have one feature carrying at "
                      f"least {DOMINANCE_THRESHOLD:.0%} of the explained variance.",
                      highlight=False)
