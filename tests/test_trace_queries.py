"""The ``trace`` query distribution: a trace's ids reach the model as they are, or folded as
reported; tables mapped by default or as asked; samples cut in order or shuffled; the
working set counted from the ids themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recstack.batch import Batch
from recstack.batch_set import generate_batch_set
from recstack.errors import RecstackError
from recstack.inputs import QuerySpec, generate_batches
from recstack.layout import table_layout
from recstack.models import build_model
from recstack import trace_queries
from recstack.trace_files import write_trace
from recstack.trace_batches import distinct_bytes
from recstack.trace_queries import (file_query, folded_fraction, folding, parse_queries,
                                    query_note)
from recstack.working_set import distinct_embedding_bytes
from tests.conftest import small_spec

SAMPLES = 24


def _bags(tables: int, high: int, seed: int = 0, empty: bool = True) -> list[list[list[int]]]:
    """``bags[table][sample]``: 0..3 ids (1..3 without ``empty``) below ``high``."""
    rng = np.random.default_rng(seed)
    low = 0 if empty else 1
    return [[rng.integers(0, high, size=int(rng.integers(low, 4))).tolist()
             for _ in range(SAMPLES)] for _ in range(tables)]


@pytest.fixture
def rmc1_trace(tmp_path):
    spec = small_spec("rmc1")
    rows = min(spec.rows)
    bags = _bags(len(spec.rows), 3 * rows)  # about two thirds of the ids fold
    return spec, bags, file_query("trace", write_trace(tmp_path / "t.pt.gz", bags,
                                                       compress=True))


def _expected(bags: list[list[int]], samples: range, rows: int) -> tuple[list[int], list[int]]:
    ids, offsets = [], []
    for sample in samples:
        offsets.append(len(ids))
        ids.extend(i % rows for i in bags[sample % SAMPLES])
    return ids, offsets


def test_the_trace_ids_reach_the_model_folded_as_reported(rmc1_trace) -> None:
    spec, bags, query = rmc1_trace
    layout = table_layout(spec)
    batches = generate_batch_set(spec, query, 10, 4)  # 40 slots: wraps past the 24 samples
    for b in range(4):
        batch = batches[b]
        for k, table in enumerate(layout.pooled):
            ids, offsets = _expected(bags[table], range(10 * b, 10 * b + 10), spec.rows[table])
            assert batch.bag_indices[k].tolist() == ids
            assert batch.bag_offsets[k].tolist() == offsets
    # The model reads them: its output equals the output on a batch made by hand.
    model = build_model(spec, seed=3)
    batch = batches[1]
    by_hand = Batch(size=10, dense=batch.dense.clone(), bag_indices=tuple(
        torch.tensor(_expected(bags[t], range(10, 20), spec.rows[t])[0], dtype=torch.int64)
        for t in layout.pooled), bag_offsets=tuple(
        torch.tensor(_expected(bags[t], range(10, 20), spec.rows[t])[1], dtype=torch.int64)
        for t in layout.pooled))
    with torch.inference_mode():
        assert torch.equal(model(batch), model(by_hand))
    # What was folded is counted, per table and overall.
    frame = folding(spec, query)
    every = [i for table in bags for bag in table for i in bag]
    beyond = sum(i >= spec.rows[t] for t, table in enumerate(bags) for bag in table for i in bag)
    assert frame.folded_ids.sum() == beyond and frame.ids.sum() == len(every)
    assert folded_fraction(spec, query) == pytest.approx(beyond / len(every))
    assert 0.5 < folded_fraction(spec, query) < 0.8
    assert f"{100 * beyond / len(every):.1f}% of ids folded" in query_note(spec, query)


def test_ids_within_the_rows_are_not_folded(tmp_path) -> None:
    spec = small_spec("ncf")
    bags = _bags(len(spec.rows), min(spec.rows))
    query = file_query("trace", write_trace(tmp_path / "t.pt", bags))
    assert folded_fraction(spec, query) == 0.0
    (batch,) = generate_batches(spec, query, SAMPLES, 1)
    layout = table_layout(spec)
    for k, table in enumerate(layout.pooled):
        assert batch.bag_indices[k].tolist() == [i for bag in bags[table] for i in bag]


def test_behaviour_sequences_read_each_samples_bag_repeated_to_fill_the_steps(tmp_path) -> None:
    spec = small_spec("din")
    bags = _bags(len(spec.rows), min(spec.rows), empty=True)
    query = file_query("trace", write_trace(tmp_path / "t.pt", bags))
    layout = table_layout(spec)
    (batch,) = generate_batches(spec, query, SAMPLES, 1)
    sequence = batch.sequence.numpy()
    for step in range(layout.sequence_length):
        table = layout.behaviour_table_of_step(step)
        steps = [s for s in range(layout.sequence_length)
                 if layout.behaviour_table_of_step(s) == table]
        within = steps.index(step)
        for sample in range(SAMPLES):
            bag = bags[table][sample]
            assert sequence[sample, step] == (bag[within % len(bag)] if bag else 0)
    with torch.inference_mode():
        assert torch.isfinite(build_model(spec)(batch)).all()


def test_an_explicit_map_names_the_trace_table_of_each_model_table(tmp_path) -> None:
    spec = small_spec("rmc1")
    bags = _bags(2, min(spec.rows))
    path = write_trace(tmp_path / "two.pt", bags)
    with pytest.raises(RecstackError, match="2 tables for rmc1's 8; map them"):
        query_note(spec, file_query("trace", path))
    mapping = (1, 0, 0, 0, 1, 1, 0, 1)
    query = file_query("trace", path, table_map=mapping)
    (batch,) = generate_batches(spec, query, SAMPLES, 1)
    for k, table in enumerate(table_layout(spec).pooled):
        assert batch.bag_indices[k].tolist() == [i for bag in bags[mapping[table]]
                                                 for i in bag]
    with pytest.raises(RecstackError, match="names table 2; the file has 2"):
        query_note(spec, file_query("trace", path, table_map=(0, 1, 2, 0, 0, 0, 0, 0)))
    with pytest.raises(RecstackError, match="names 3 tables; rmc1 has 8"):
        query_note(spec, file_query("trace", path, table_map=(0, 1, 0)))


def test_shuffled_order_is_a_seeded_permutation_of_the_samples(tmp_path) -> None:
    spec = small_spec("ncf")
    bags = _bags(len(spec.rows), min(spec.rows), empty=False)
    path = write_trace(tmp_path / "t.pt", bags)
    table = table_layout(spec).pooled[0]

    def first_ids(seed: int) -> list[int]:
        (batch,) = generate_batches(spec, file_query("trace", path, seed=seed,
                                                     order="shuffled"), SAMPLES, 1)
        offsets = batch.bag_offsets[0].tolist() + [batch.bag_indices[0].numel()]
        return [tuple(batch.bag_indices[0][a:b].tolist())
                for a, b in zip(offsets, offsets[1:])]

    shuffled = first_ids(1)
    assert sorted(shuffled) == sorted(tuple(bag) for bag in bags[table])
    assert shuffled != [tuple(bag) for bag in bags[table]]
    assert first_ids(1) == shuffled and first_ids(2) != shuffled


def test_the_working_set_counts_the_distinct_ids_read(rmc1_trace) -> None:
    spec, bags, query = rmc1_trace
    from recstack.batch_work import table_gathers

    row_bytes = {g.table: g.row_bytes for g in table_gathers(spec, 4)}
    for batches in (1, 3, 100):
        samples = [s % SAMPLES for s in range(4 * batches)]
        expected = sum(len({i % spec.rows[t] for s in set(samples) for i in bags[t][s]})
                       * row_bytes[t] for t in range(len(spec.rows)))
        assert distinct_embedding_bytes(spec, query, 4, batches) == expected
        assert distinct_bytes(spec, query, 4, batches, table_gathers(spec, 4)) == expected


def test_synthetic_queries_keep_their_keys() -> None:
    """The file fields appear only in file queries' dictionaries: stored points of the
    synthetic distributions keep their keys."""
    assert set(QuerySpec().to_dict()) == {"distribution", "zipf_exponent", "reuse_probability",
                                          "reuse_distance_max", "pooling", "seed"}


def test_a_file_query_is_keyed_to_the_content_and_refuses_a_changed_file(tmp_path) -> None:
    spec = small_spec("ncf")
    path = write_trace(tmp_path / "t.pt", _bags(len(spec.rows), 100))
    query = file_query("trace", path)
    assert len(query.source_digest) == 16 and query.to_dict()["source"] == str(path)
    write_trace(path, _bags(len(spec.rows), 100, seed=5))
    trace_queries._load.cache_clear()  # as in a worker process, which reads it anew
    with pytest.raises(RecstackError, match="changed since the points were planned"):
        generate_batches(spec, query, 4, 1)
    assert file_query("trace", path).source_digest != query.source_digest


@pytest.mark.parametrize("text, message", [
    ("trace:", "names no file"),
    ("poisson", "'poisson' is not allowed; expected uniform, zipf, locality, trace:FILE"),
    ("trace:/nonexistent/t.pt", "does not exist"),
])
def test_bad_query_options_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(RecstackError, match=message) as error:
        parse_queries(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_a_table_file_feeds_the_model_the_same_ids_as_the_torch_format(tmp_path,
                                                                        name: str) -> None:
    from recstack.trace_tables import write_table_file

    spec = small_spec("ncf")
    bags = _bags(len(spec.rows), 2 * min(spec.rows), empty=False)
    table = file_query("trace", write_table_file(tmp_path / name, bags))
    torch_format = file_query("trace", write_trace(tmp_path / "t.pt", bags))
    assert folded_fraction(spec, table) == folded_fraction(spec, torch_format) > 0
    (a,), (b,) = (generate_batches(spec, q, SAMPLES, 1) for q in (table, torch_format))
    assert all(torch.equal(x, y) for x, y in zip(a.bag_indices, b.bag_indices))
    for k, t in enumerate(table_layout(spec).pooled):
        assert a.bag_indices[k].tolist() == [i % spec.rows[t] for bag in bags[t] for i in bag]
    model = build_model(spec)
    with torch.inference_mode():
        assert torch.equal(model(a), model(b))


def test_a_criteo_log_gives_dense_features_and_hashed_categoricals(tmp_path) -> None:
    """A DLRM of Criteo's shape (13 dense features, 26 tables) reads the log's dense
    features as log(x + 1) and each categorical folded into its table's rows."""
    from recstack.specs import spec_from_config
    from recstack.trace_criteo import write_criteo

    spec = spec_from_config({
        "model_name": "criteo_dlrm", "model_type": "dlrm", "arch_mlp_bot": "13-16",
        "arch_mlp_top": "32-1", "arch_sparse_feature_size": 16,
        "arch_embedding_size": "-".join(["1000"] * 20 + ["70000"] * 6),
        "num_indices_per_lookup": 1, "num_indices_per_lookup_fixed": True})
    rng = np.random.default_rng(4)
    dense = rng.integers(0, 500, size=(SAMPLES, 13))
    categorical = rng.integers(0, 2**32, size=(SAMPLES, 26))
    path = write_criteo(tmp_path / "day.tsv.gz", rng.integers(0, 2, SAMPLES), dense,
                        categorical)
    query = file_query("trace", path)
    (batch,) = generate_batches(spec, query, SAMPLES, 1)
    assert torch.allclose(batch.dense, torch.log1p(torch.tensor(dense, dtype=torch.float32)))
    for k, t in enumerate(table_layout(spec).pooled):
        assert batch.bag_indices[k].tolist() == (categorical[:, t] % spec.rows[t]).tolist()
    assert "dense features trace" in query_note(spec, query)
    assert folded_fraction(spec, query) > 0.99  # 32-bit hashes into small tables
    with torch.inference_mode():
        assert torch.isfinite(build_model(spec)(batch)).all()


def test_profile_queries_reproduce_the_fitted_streams_hit_rates(tmp_path) -> None:
    """Ids generated for a model from a fitted profile: in the table's rows, one LRU stream
    across the batches whose hit-rate curve follows the trace's."""
    from recstack.analysis.locality import table_streams
    from recstack.analysis.stack_distance import hit_rate_curve, stack_distances
    from recstack.reuse_profile import TraceProfile, fit_table, write_profile
    from tests.test_reuse_profile import reference_trace

    from recstack.specs import zoo_spec

    spec = zoo_spec("ncf")  # full size (no model is built): tables of 28,000 to 140,000 rows
    rng = np.random.default_rng(2)
    depths = np.exp(rng.uniform(0, np.log(3_000), 40_000)).astype(np.int64)
    stream = reference_trace(rng.random(40_000) < 0.1, depths)
    assert stream.max() < min(spec.rows)
    path = tmp_path / "p.json"
    write_profile(path, TraceProfile("t", "d", (fit_table(stream),)))
    query = file_query("profile", path, table_map=(0,) * len(spec.rows))
    batches = generate_batch_set(spec, query, 100, 400)  # as many ids as the trace
    ids = table_streams(spec, batches)
    capacities = [64, 512, 4096]
    real = hit_rate_curve(stack_distances(stream), capacities).hit_rate
    for table, generated in ids.items():
        assert 0 <= generated.min() and generated.max() < spec.rows[table]
        curve = hit_rate_curve(stack_distances(generated[:stream.size]), capacities).hit_rate
        assert np.abs(curve.to_numpy() - real.to_numpy()).max() < 0.05
    assert "generated from profile p.json" in query_note(spec, query)


def test_admission_counts_the_trace_a_worker_holds(rmc1_trace) -> None:
    from recstack.admission import point_memory
    from recstack.trace_queries import held_bytes

    spec, bags, query = rmc1_trace
    ids = sum(len(bag) for table in bags for bag in table)
    offsets = len(bags) * SAMPLES + 1
    assert held_bytes(query) == 2 * (ids + offsets) * 8  # the trace and its mapped copy
    assert held_bytes(QuerySpec()) == 0
    need = point_memory(spec, 4, source_bytes=held_bytes(query))
    assert need.total == point_memory(spec, 4).total + held_bytes(query)
    assert "trace 0.00" in need.describe()


def test_a_batchs_bytes_follow_the_traces_bag_lengths_not_the_specs_pooling(rmc1_trace
                                                                              ) -> None:
    from recstack.admission import input_bytes_per_batch
    from recstack.working_set import cycled_set

    spec, _, query = rmc1_trace  # bags of 0 to 3 ids, against the spec's pooling of 4+
    whole = generate_batch_set(spec, query, SAMPLES, 1)[0]  # one batch: the whole trace
    assert input_bytes_per_batch(spec, SAMPLES, query) == whole.nbytes
    assert input_bytes_per_batch(spec, SAMPLES, query) < input_bytes_per_batch(spec, SAMPLES)
    # The cold set's input budget counts what the trace's batches hold (10 batches of 1
    # sample; its 24 samples would make 24 distinct ones).
    budget = 10 * input_bytes_per_batch(spec, 1, query)
    capped = cycled_set(spec, query, 1, "cold", 1 << 40, max_input_bytes=budget)
    assert capped.batches == 10


def test_trace_samples_keep_the_traces_start(tmp_path) -> None:
    from recstack.inputs import describe

    spec = small_spec("ncf")
    bags = _bags(len(spec.rows), min(spec.rows), empty=False)
    path = write_trace(tmp_path / "t.pt", bags)
    query = file_query("trace", path, samples=5)
    assert query.to_dict()["samples"] == 5 and "first 5 sequential samples" in describe(query)
    (batch,) = generate_batches(spec, query, 12, 1)  # wraps after the 5 samples kept
    table = table_layout(spec).pooled[0]
    assert batch.bag_indices[0].tolist() == [i for s in range(12) for i in bags[table][s % 5]]
    assert file_query("trace", path).source_digest == query.source_digest  # the same file
    with pytest.raises(RecstackError, match="--trace-samples: only trace:FILE"):
        parse_queries("uniform", samples=3)


def test_cycled_tables_map_any_model_onto_a_short_trace(tmp_path) -> None:
    from recstack.inputs import describe

    spec = small_spec("rmc1")  # 8 tables
    bags = _bags(3, min(spec.rows))
    query = file_query("trace", write_trace(tmp_path / "t.pt", bags), table_map="cycle")
    assert query.cycle_tables and query.to_dict()["cycle_tables"] is True
    assert "tables cycled" in describe(query)
    (batch,) = generate_batches(spec, query, SAMPLES, 1)
    for k, table in enumerate(table_layout(spec).pooled):
        assert batch.bag_indices[k].tolist() == [i for bag in bags[table % 3] for i in bag]
    assert "tables 0-2,0-2,0-1" in query_note(spec, query)
    with pytest.raises(Exception, match="cycle_tables"):
        QuerySpec(distribution="trace", source="/x", table_map=(0,), cycle_tables=True)
