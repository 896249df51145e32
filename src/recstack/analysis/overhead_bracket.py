"""The framework overhead's bracket: how much of a point's unprofiled latency lies outside
operators, bounded from below and above because the measuring tool's own cost cannot be split
between inside and outside operators.

Framework overhead (time outside any operator), from a run's timing point and its operator
profile: the profiler inflates small-batch iterations (by half to twice the iteration at
batch 1), so the unprofiled median latency ``T`` is the reference, and the operators' time
``O`` comes from the profiled run. The profiler's added time per iteration ``D`` (profiled
minus unprofiled median, measured in the profile point itself) lands partly inside
operators (their inclusive time covers the recording of nested operators) and partly
between them. At least ``S`` of it lands between them: the scopes the profiler records that
are not operators (the iteration's and each model part's), each at the added cost of an
empty scope measured in the same worker (``profiles.profiler_outside_us``; 0 where not
stored). So the true operator time lies in ``[O - D + S, O]`` and the overhead share in
``[(T - O) / T, (T - max(O - D + S, 0)) / T]`` (clipped to [0, 1]): ``overhead_share_low`` and
``overhead_share_high``. When ``O - D`` exceeds ``T`` by more than 10%, the profile and the
timing did not run alike and both shares are NaN (not zero).

That bracket is wide at small batch: the profiler's added time is as large as the iteration.
Where the profile point also carries an operator clock reading (CPU, not compiled:
:mod:`recstack.collect.opclock`), the shares come from it instead (``overhead_basis`` says
which): the plain iteration ``P``, and in alternated clocked rounds the time inside top-level
operators ``I`` and outside them ``X = C - I``, all measured in the same worker on the same
batches. The clock's callbacks (``C - P`` in all, 0.1 to 0.35 us per operator) land partly
inside and partly outside the top-level operators, so the plain iteration's time outside
operators lies in ``[P - I, X - n k]``, where ``n`` top-level operators each cost the clock at
least ``k`` outside themselves (``profiles.clock_callback_outside_us``, measured in the
worker by :meth:`recstack.collect.opclock.OperatorClock.calibrate`; 0 where not stored): the
shares are ``(P - I) / P`` and ``(X - n k) / P`` (clipped).
"""

from __future__ import annotations

import math

import numpy as np

# How far the operators' time net of the profiler's cost may exceed the unprofiled latency
# (run-to-run noise) before the profile and the timing are taken as inconsistent.
INCONSISTENT_MARGIN = 0.1


def overhead_shares(measured_ms: float, operator_ms: float, profiler_added_ms: float,
                    profiler_outside_ms: float = 0.0) -> tuple[float, float]:
    """(low, high) framework-overhead share of the latency (see the module docstring).
    ``profiler_outside_ms``: a lower bound on the profiler's added time that lands outside
    operators (0 when unknown); it narrows the high end."""
    if not measured_ms > 0 or operator_ms != operator_ms:
        return math.nan, math.nan
    added = max(0.0, profiler_added_ms) if profiler_added_ms == profiler_added_ms else 0.0
    if operator_ms - added > measured_ms * (1.0 + INCONSISTENT_MARGIN):
        # Operators alone, net of all the profiler's added time, take longer than the whole
        # unprofiled iteration: the two points did not run alike (e.g. the profiled
        # iterations met colder caches). No share can be read from them.
        return math.nan, math.nan
    outside = (max(0.0, profiler_outside_ms)
               if profiler_outside_ms == profiler_outside_ms else 0.0)
    low = (measured_ms - operator_ms) / measured_ms
    # Operators took at least O - (D - outside): of the profiler's added time D, at least
    # `outside` was spent between operators, so at most D - outside inflated them.
    operators_at_least = min(max(operator_ms - added + min(outside, added), 0.0), operator_ms)
    high = (measured_ms - operators_at_least) / measured_ms
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def clocked_overhead_shares(plain_us: float, inside_us: float, outside_us: float,
                            operators: float = 0.0, callback_outside_us: float = 0.0
                            ) -> tuple[float, float]:
    """(low, high) framework-overhead share from an operator clock reading: the plain
    iteration ``plain_us``, and in clocked iterations the time inside top-level operators
    ``inside_us`` and outside them ``outside_us``, less what the clock is known to cost
    outside each of the ``operators`` top-level operators at least (``callback_outside_us``;
    NaN or missing counts as 0: the wider bound). See the module docstring. NaN when the
    reading is missing or the plain iteration is not positive."""
    values = (plain_us, inside_us, outside_us)
    if any(value != value for value in values) or not plain_us > 0:
        return math.nan, math.nan
    known_cost = operators * callback_outside_us
    if known_cost != known_cost:
        known_cost = 0.0
    low = (plain_us - inside_us) / plain_us
    high = (outside_us - known_cost) / plain_us
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(max(high, low), 0.0, 1.0))
