"""Sweeps: planning the points (:mod:`recstack.sweep.plan`) and running them into the store
(:mod:`recstack.sweep.run`)."""

from recstack.sweep.plan import (DEFAULT_BATCH_SIZES, SweepPlan, available_devices,
                                 busy_machine_note, check_devices, check_options,
                                 check_precisions, fit_spec, plan_specs, plan_sweep)
from recstack.sweep.run import (SweepEvent, SweepOutcome, open_run, point_row, run_sweep)

__all__ = ["DEFAULT_BATCH_SIZES", "SweepEvent", "SweepOutcome", "SweepPlan",
           "available_devices", "busy_machine_note", "check_devices", "check_options",
           "check_precisions", "fit_spec", "open_run", "plan_specs", "plan_sweep", "point_row", "run_sweep"]
