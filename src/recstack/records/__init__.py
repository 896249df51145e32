"""Records: what each level of measurement stores, declared once.

Every stored table is declared here by row classes (:mod:`recstack.records.declare`); the
store builds its DDL, inserts and upgrades from :data:`SCHEMA`, and the analysis loaders
select by it. A collector returns a record (:class:`TimingRecord`, :class:`ProfileRecord`,
:class:`HardwareRecord`, :class:`ServingRecord`) whose ``rows()`` are instances (or frames) of these row classes.
"""

from __future__ import annotations

from recstack.records.declare import Column, Schema, Table, column
from recstack.records.hardware import HARDWARE, Hardware, HardwareRecord
from recstack.records.points import POINTS, Build, PointRow
from recstack.records.profile import (
                                   OPERATORS,
                                   PROFILES,
                                   OperatorTime,
                                   Profile,
                                   ProfileRecord,
)
from recstack.records.runs import (
                                   BACKEND_CHOICES,
                                   CEILINGS,
                                   DESIGN_SPACE,
                                   PLATFORMS,
                                   RUNS,
                                   BackendChoice,
                                   Ceiling,
                                   DesignVariant,
                                   Platform,
                                   Run,
)
from recstack.records.serving import (
                                   SERVED_REQUESTS,
                                   SERVING,
                                   SERVING_TESTS,
                                   ServedRequest,
                                   ServingRecord,
                                   ServingSummary,
                                   ServingTest,
)
from recstack.records.timing import SAMPLES, TIMING, Sample, TimingRecord, TimingStats

Record = TimingRecord | ProfileRecord | HardwareRecord | ServingRecord

# What a declaration cannot say: renames and data rewrites, by the version they upgrade from.
REWRITES: dict[int, tuple[str, ...]] = {
    # Ceilings keep every set measured (set_id in the key); a stored set becomes one set.
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
    # What a point measures is its level (one name for one concept).
    10: ("ALTER TABLE points RENAME COLUMN collector TO level",),
}

SCHEMA = Schema(
    tables=(PLATFORMS, RUNS, POINTS, SAMPLES, TIMING, OPERATORS, PROFILES, HARDWARE,
            DESIGN_SPACE, CEILINGS, BACKEND_CHOICES, SERVING, SERVING_TESTS,
            SERVED_REQUESTS),
    rewrites=REWRITES,
    oldest=4,
)

__all__ = ["SCHEMA", "BackendChoice", "Build", "Ceiling", "Column", "DesignVariant", "Hardware",
           "HardwareRecord", "OperatorTime", "Platform", "PointRow", "Profile", "ProfileRecord",
           "Record", "Run", "Sample", "Schema", "ServedRequest", "ServingRecord",
           "ServingSummary", "ServingTest", "Table", "TimingRecord", "TimingStats",
           "column"]
