"""The store's tables (DDL), their version, and the migrations that bring an older store to it.

``store.py`` documents what each table holds; this module is only their shape.
"""

from __future__ import annotations

# Whether a run finished (store schema 10): how many points it planned, its state
# (running, complete, interrupted, failed), why it ended that way, when, the label of the
# point in flight, and which process runs it (host:pid: a run still "running" whose process
# is gone was killed).
RUN_STATE_COLUMNS: tuple[str, ...] = (
    "planned_points INTEGER", "state VARCHAR", "state_reason VARCHAR",
    "ended_at TIMESTAMPTZ", "in_flight VARCHAR", "runner VARCHAR")

SCHEMA_VERSION = 10
# What brings a store of each older version to the next one (applied in order when the store
# is opened). A version missing here is too old to upgrade: it is refused.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 5: seconds the compile backend spent compiling before the point was measured.
    4: ("ALTER TABLE points ADD COLUMN IF NOT EXISTS compile_seconds DOUBLE",),
    # 6: a lower bound on the profiler's added time outside operators, per iteration.
    5: ("ALTER TABLE profiles ADD COLUMN IF NOT EXISTS profiler_outside_us DOUBLE",),
    # 7: the operator clock's reading (medians, raw rounds) or why there is none.
    6: tuple(f"ALTER TABLE profiles ADD COLUMN IF NOT EXISTS {column}"
             for column in ("clock_plain_us DOUBLE", "clock_clocked_us DOUBLE",
                            "clock_inside_us DOUBLE", "clock_outside_us DOUBLE",
                            "clock_operators DOUBLE", "clock_observed DOUBLE", "clock JSON",
                            "clock_note VARCHAR")),
    # 8: ceilings keep every set measured (set_id in the key); a stored set becomes one set.
    7: ("CREATE TABLE IF NOT EXISTS ceilings (platform_id VARCHAR, threads INTEGER, kind "
        "VARCHAR, shape VARCHAR, value DOUBLE, unit VARCHAR, p5 DOUBLE, p95 DOUBLE, repeats "
        "INTEGER, samples JSON, measured_at TIMESTAMPTZ, recstack_version VARCHAR, "
        "torch_version VARCHAR)",
        "DROP TABLE IF EXISTS ceilings_v8",
        "CREATE TABLE ceilings_v8 (platform_id VARCHAR, threads INTEGER, kind VARCHAR, shape "
        "VARCHAR, value DOUBLE, unit VARCHAR, p5 DOUBLE, p95 DOUBLE, repeats INTEGER, samples "
        "JSON, measured_at TIMESTAMPTZ, recstack_version VARCHAR, torch_version VARCHAR, "
        "set_id VARCHAR, PRIMARY KEY (platform_id, threads, set_id, kind, shape))",
        "INSERT INTO ceilings_v8 SELECT *, 'stored-' || strftime(min(measured_at) OVER "
        "(PARTITION BY platform_id, threads), '%Y%m%dT%H%M%SZ') FROM ceilings",
        "DROP TABLE ceilings",
        "ALTER TABLE ceilings_v8 RENAME TO ceilings"),
    # 9: the operator clock's own cost outside each top-level operator (a lower bound).
    8: ("ALTER TABLE profiles ADD COLUMN IF NOT EXISTS clock_callback_outside_us DOUBLE",),
    # 10: whether a run finished: its planned points, its state, the point in flight.
    9: tuple(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {column}" for column in RUN_STATE_COLUMNS),
}
TABLES: tuple[str, ...] = ("platforms", "runs", "points", "samples", "timing", "operators",
                           "profiles", "hardware", "design_space")

# Every set of ceilings measured is kept (up to KEEP_CEILING_SETS per platform and thread
# count), so that a run is judged against the set measured nearest to it, not the newest.
CEILINGS_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    platform_id VARCHAR,
    threads INTEGER,
    kind VARCHAR,
    shape VARCHAR,
    value DOUBLE,
    unit VARCHAR,
    p5 DOUBLE,
    p95 DOUBLE,
    repeats INTEGER,
    samples JSON,
    measured_at TIMESTAMPTZ,
    recstack_version VARCHAR,
    torch_version VARCHAR,
    set_id VARCHAR,
    PRIMARY KEY (platform_id, threads, set_id, kind, shape)
);"""
KEEP_CEILING_SETS = 10

SCHEMA_DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS platforms (
    platform_id VARCHAR PRIMARY KEY,
    description VARCHAR,
    info JSON
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMPTZ,
    command VARCHAR,
    recstack_version VARCHAR,
    git_revision VARCHAR,
    platform_id VARCHAR,
    settings JSON,
    {", ".join(RUN_STATE_COLUMNS)}
);
CREATE TABLE IF NOT EXISTS points (
    run_id VARCHAR,
    point_key VARCHAR,
    config_key VARCHAR,
    collector VARCHAR,
    label VARCHAR,
    model VARCHAR,
    model_type VARCHAR,
    spec_digest VARCHAR,
    spec JSON,
    row_scale DOUBLE,
    batch_size INTEGER,
    device VARCHAR,
    threads INTEGER,
    backend VARCHAR,
    query JSON,
    seed BIGINT,
    status VARCHAR,
    error VARCHAR,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    build_seconds DOUBLE,
    peak_memory_growth_bytes BIGINT,
    input_bytes_per_batch BIGINT,
    distinct_batches INTEGER,
    threads_used INTEGER,
    device_name VARCHAR,
    warmup_iterations INTEGER,
    compile_seconds DOUBLE,
    PRIMARY KEY (run_id, point_key)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id VARCHAR,
    point_key VARCHAR,
    iteration INTEGER,
    latency_ns BIGINT,
    copy_ns BIGINT
);
CREATE TABLE IF NOT EXISTS timing (
    run_id VARCHAR,
    point_key VARCHAR,
    iterations INTEGER,
    median_ms DOUBLE,
    p5_ms DOUBLE,
    p95_ms DOUBLE,
    p99_ms DOUBLE,
    mean_ms DOUBLE,
    std_ms DOUBLE,
    cv DOUBLE,
    relative_spread DOUBLE,
    throughput_per_s DOUBLE,
    copy_median_ms DOUBLE,
    unstable BOOLEAN,
    warning VARCHAR,
    PRIMARY KEY (run_id, point_key)
);
CREATE TABLE IF NOT EXISTS operators (
    run_id VARCHAR,
    point_key VARCHAR,
    part VARCHAR,
    op VARCHAR,
    calls DOUBLE,
    time_us DOUBLE
);
CREATE TABLE IF NOT EXISTS profiles (
    run_id VARCHAR,
    point_key VARCHAR,
    iterations INTEGER,
    time_basis VARCHAR,
    wall_us DOUBLE,
    operator_us DOUBLE,
    uncovered_us DOUBLE,
    profiled_median_us DOUBLE,
    unprofiled_median_us DOUBLE,
    profiler_overhead DOUBLE,
    trace_path VARCHAR,
    profiler_outside_us DOUBLE,
    clock_plain_us DOUBLE,
    clock_clocked_us DOUBLE,
    clock_inside_us DOUBLE,
    clock_outside_us DOUBLE,
    clock_operators DOUBLE,
    clock_observed DOUBLE,
    clock JSON,
    clock_note VARCHAR,
    clock_callback_outside_us DOUBLE,
    PRIMARY KEY (run_id, point_key)
);
CREATE TABLE IF NOT EXISTS hardware (
    run_id VARCHAR,
    point_key VARCHAR,
    source VARCHAR,
    hierarchy VARCHAR,
    instructions DOUBLE,
    ipc DOUBLE,
    l1i_mpki DOUBLE,
    l1d_mpki DOUBLE,
    llc_mpki DOUBLE,
    branch_mpki DOUBLE,
    dtlb_mpki DOUBLE,
    itlb_mpki DOUBLE,
    retiring DOUBLE,
    bad_speculation DOUBLE,
    frontend_bound DOUBLE,
    backend_bound DOUBLE,
    topdown JSON,
    multiplexing DOUBLE,
    caveats JSON,
    raw JSON,
    PRIMARY KEY (run_id, point_key)
);
CREATE TABLE IF NOT EXISTS design_space (
    run_id VARCHAR,
    variant VARCHAR,
    base_model VARCHAR,
    variant_index INTEGER,
    design_seed BIGINT,
    sampler VARCHAR,
    spec_digest VARCHAR,
    factors JSON,
    PRIMARY KEY (run_id, variant)
);
{CEILINGS_TABLE.format(name="ceilings")}
"""
