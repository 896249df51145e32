"""Measures every execution backend on every canonical model and writes the shipped choice
that ``--backend auto`` falls back to (src/recstack/backend_choice.yaml) on a machine where no
race of its own is stored (``recstack backends``: :mod:`recstack.backend_race`).

Not a test: it times things. Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/backend_choice.py [--row-scale 0.01]
        [--batch-sizes 1,16,256,2048] [--threads N] [--models rmc1,...]
        [--no-compile dien] [--out src/recstack/backend_choice.yaml]

For each model and backend: build it, prepare it (``compile``: compiled once per batch size;
``static``: its Static Runtime graphs; both outside the timed loop), check its outputs
against eager's on the same batches (a backend that differs or fails is not eligible), then
time it as the race on a user's machine does (:func:`recstack.backend_race.race_batch`:
warm-up, every call timed, ``--min-time`` seconds per backend per round), the backends
taking turns so that a shared machine's load falls on all alike; the median over all turns
is the backend's latency. The choice per model is the eligible backend with the lowest
geometric mean over batch sizes of its median latency relative to eager's; a backend must
beat the one chosen before it (in BACKENDS' order: eager, fused, compile, static) by more
than ``--margin`` to be chosen, so noise does not pick a backend. ``compile`` is measured and
recorded (``fastest``) but auto does not pick it: see AUTO_CANDIDATES. Models share the
table sizes' effect on caches only at the measured scale: the choice is about framework
overhead and operator count, which do not depend on the rows.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from pathlib import Path

import torch
import yaml

from recstack.backend_race import CANDIDATES, RaceSettings, pick, race_batch
from recstack.backends import BACKENDS, CHOICE_FILE, build_for_backend
from recstack.host import usable_cores
from recstack.inputs import QuerySpec, generate_batches
from recstack.platform_info import collect_platform, describe_platform
from recstack.specs import ZOO_NAMES, zoo_spec

AUTO_CANDIDATES = CANDIDATES
"""What auto may pick (the race's candidates, :data:`recstack.backend_race.CANDIDATES`).
compile is measured (``fastest`` records where it would win) but not a candidate: a
compiled model's operator profile has no aten operators in model parts to classify, so the
software level of an auto sweep would lose its meaning, and every point
pays its compilation (cold: about 20 s for DIN, 100 s for DIEN, per batch size) before
measuring. ``--backend compile`` selects it explicitly. static keeps its operators and parts
(its profiled graphs carry the part scopes) and prepares in well under a second."""
RULE = ("among eager, fused and static (outputs checked equal to eager's): 'choices', the "
        "lowest geometric-mean latency ratio to eager over batch sizes; 'by_batch_size', the "
        "lowest median at each batch size (auto takes the measured batch size nearest the "
        "point's on a log scale); either way each must beat the one chosen before it (eager, "
        "then fused) by the margin. 'fastest' also considers compile, which auto does not "
        "pick (see AUTO_CANDIDATES in benchmarks/backend_choice.py)")


def measure_model(name: str, scale: float, batch_sizes: list[int], backends: list[str],
                  settings: RaceSettings, no_compile: set[str]) -> dict:
    """``{backend: {"median_us": {batch: us}, "compile_s": {batch: s}, "error": str}}``.

    At each batch size the backends are checked against eager and timed in turns by
    :func:`recstack.backend_race.race_batch` (the race ``auto`` runs on a user's machine),
    ``settings.rounds`` times each: a load that comes and goes on a shared machine then
    falls on every backend alike."""
    spec = zoo_spec(name).scaled(scale)
    results: dict = {backend: {"median_us": {}} for backend in backends}
    models: dict = {}
    for backend in backends:
        if backend == "compile" and name in no_compile:
            results[backend]["error"] = "not measured (--no-compile)"
            continue
        models[backend] = build_for_backend(spec, backend)
    for batch_size in batch_sizes:
        batches = generate_batches(spec, QuerySpec(), batch_size, settings.num_batches)
        raced = race_batch(models, batches, settings)
        for backend, outcome in raced.items():
            if "error" in outcome:
                results[backend]["error"] = outcome["error"][:200]
                print(f"{name} {backend}: {results[backend]['error']}", file=sys.stderr)
                del models[backend]
                continue
            results[backend]["median_us"][batch_size] = round(outcome["median_us"], 1)
            if outcome.get("prepare_s") is not None:
                results[backend].setdefault("compile_s", {})[batch_size] = round(
                    outcome["prepare_s"], 2)
        print(f"{name} b{batch_size}: " + ", ".join(
            f"{b} {results[b]['median_us'][batch_size]} us" for b in models),
            file=sys.stderr, flush=True)
    torch._dynamo.reset()  # compiled graphs of one model are no use to the next
    return results


def choose(results: dict, backends: list[str], margin: float,
           candidates: tuple[str, ...] = AUTO_CANDIDATES) -> tuple[str, dict[str, float]]:
    """The chosen backend among ``candidates`` and each eligible backend's geometric-mean
    ratio to eager (chosen by :func:`recstack.backend_race.pick` on the ratios)."""
    reference = results["eager"]["median_us"]
    ratios = {}
    for backend in backends:
        entry = results.get(backend, {})
        if entry.get("error") or set(entry["median_us"]) != set(reference):
            continue
        logs = [math.log(entry["median_us"][b] / reference[b]) for b in reference]
        ratios[backend] = round(math.exp(sum(logs) / len(logs)), 3)
    order = [backend for backend in backends if backend in candidates]
    return pick(ratios, order, margin), ratios


def choose_per_batch_size(results: dict, backends: list[str], margin: float,
                          candidates: tuple[str, ...] = AUTO_CANDIDATES) -> dict[int, str]:
    """At each measured batch size, the chosen backend among ``candidates`` by the same rule
    on that batch size's medians alone (:func:`recstack.backend_race.pick`, as the race on a
    user's machine chooses): one backend is seldom the fastest at every size (static ran
    DIN@0.01 in 0.73x eager's time at batch 1 and 1.37x at batch 256 here)."""
    order = [backend for backend in backends if backend in candidates]
    chosen_at = {}
    for batch_size in results["eager"]["median_us"]:
        medians = {backend: results[backend]["median_us"][batch_size] for backend in order
                   if not results.get(backend, {}).get("error")
                   and batch_size in results[backend]["median_us"]}
        chosen_at[int(batch_size)] = pick(medians, order, margin)
    return chosen_at


def add_type_choices(choices: dict, models: list[str], backends: list[str]) -> None:
    """A model type's choice (for spec files that are not zoo models): its zoo models' most
    frequent choice, ties to the simpler backend; per batch size where ``choices`` holds
    per-batch-size choices."""
    def most_frequent(picked: list[str]) -> str:
        return min(set(picked), key=lambda b: (-picked.count(b), backends.index(b)))

    for kind in sorted({zoo_spec(n).model_type for n in models}):
        members = [choices[n] for n in models if zoo_spec(n).model_type == kind]
        if isinstance(members[0], dict):
            choices[kind] = {size: most_frequent([m[size] for m in members])
                             for size in members[0]}
        else:
            choices[kind] = most_frequent(members)


def derive_choices(measurements: dict, backends: list[str], margin: float) -> dict:
    """What the choice file holds besides its measurements: ``choices`` (per model, over all
    batch sizes), ``by_batch_size``, ``fastest`` (compile included) and ``ratio_to_eager``."""
    choices, per_size, ratios, fastest = {}, {}, {}, {}
    for name, results in measurements.items():
        choices[name], ratios[name] = choose(results, backends, margin)
        per_size[name] = choose_per_batch_size(results, backends, margin)
        fastest[name] = choose(results, backends, margin, tuple(backends))[0]
    add_type_choices(choices, list(measurements), backends)
    add_type_choices(per_size, list(measurements), backends)
    return {"choices": {"cpu": choices}, "by_batch_size": {"cpu": per_size},
            "fastest": fastest, "ratio_to_eager": ratios}


def rechoose(path: Path, margin: float) -> None:
    document = yaml.safe_load(path.read_text())
    measurements = document["measurements"]
    backends = [b for b in BACKENDS if any(b in m for m in measurements.values())]
    document["settings"].pop("compile_margin", None)
    document["settings"].update(margin=margin, rule=RULE)
    derived = derive_choices(measurements, backends, margin)
    rest = {k: v for k, v in document.items() if k not in (*derived, "measurements")}
    document = {**rest, **derived, "measurements": measurements}
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True))
    print(f"rewrote the choices in {path}: {derived['choices']['cpu']}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ZOO_NAMES))
    parser.add_argument("--row-scale", type=float, default=0.01)
    parser.add_argument("--batch-sizes", default="1,16,256,2048")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--no-compile", default="", help="models not to compile")
    parser.add_argument("--min-time", type=float, default=0.25,
                        help="seconds per backend per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--margin", type=float, default=0.03)
    parser.add_argument("--out", default=str(CHOICE_FILE))
    parser.add_argument("--rechoose", action="store_true",
                        help="measure nothing: apply the rule (margins) again to the "
                             "measurements already in --out")
    args = parser.parse_args()
    if args.rechoose:
        rechoose(Path(args.out), args.margin)
        return
    torch.set_num_threads(args.threads)
    models = args.models.split(",")
    backends = args.backends.split(",")
    if backends[0] != "eager":
        parser.error("--backends must start with eager (the reference)")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    settings = RaceSettings(rounds=args.rounds, round_seconds=args.min_time,
                            warmup_seconds=0.05, margin=args.margin)
    no_compile = set(filter(None, args.no_compile.split(",")))

    measurements = {}
    for name in models:
        measurements[name] = measure_model(name, args.row_scale, batch_sizes, backends, settings,
                                           no_compile)
        chosen, ratios = choose(measurements[name], backends, args.margin)
        print(f"{name}: {chosen} {ratios}", file=sys.stderr, flush=True)
    document = {
        "about": "Execution backend that --backend auto picks per model and batch size, "
                 "from the "
                 "measurements below (written by benchmarks/backend_choice.py; re-run it on "
                 "another machine to choose for that machine).",
        "measured_on": describe_platform(collect_platform()),
        "torch": str(torch.__version__),
        "date": datetime.date.today().isoformat(),
        "settings": {"row_scale": args.row_scale, "batch_sizes": batch_sizes,
                     "threads": args.threads, "seconds_per_round": args.min_time, "rounds": args.rounds,
                     "margin": args.margin,
                     "rule": RULE},
        **derive_choices(measurements, backends, args.margin),
        "measurements": measurements,
    }
    Path(args.out).write_text(yaml.safe_dump(document, sort_keys=False, width=100,
                                             allow_unicode=True))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
