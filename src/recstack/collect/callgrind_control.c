/* Callgrind client requests for recstack's simulated counters (recstack.collect.cachesim).
 *
 * callgrind.h's requests are macros (magic instruction sequences that valgrind recognises and
 * that do nothing on a real CPU), so Python cannot issue them itself: recstack compiles this
 * file into a small shared library at run time (cc -shared -fPIC) and calls it through ctypes.
 *
 * Needs valgrind's headers (Debian/Ubuntu: apt-get install valgrind; Fedora/RHEL:
 * valgrind-devel) and a C compiler.
 */
#include <valgrind/callgrind.h>
#include <valgrind/valgrind.h>

/* Non-zero when running under valgrind (any tool). */
int recstack_running_on_valgrind(void) { return (int)RUNNING_ON_VALGRIND; }

/* Turn instrumentation on: the cache and branch simulations run from here on (the simulated
 * caches start empty). */
void recstack_start_instrumentation(void) { CALLGRIND_START_INSTRUMENTATION; }

/* Turn instrumentation off: the program runs unsimulated (fast) from here on. */
void recstack_stop_instrumentation(void) { CALLGRIND_STOP_INSTRUMENTATION; }

/* Flip event collection: simulated events count towards the profile only while it is on. */
void recstack_toggle_collect(void) { CALLGRIND_TOGGLE_COLLECT; }

/* Zero the collected events. */
void recstack_zero_stats(void) { CALLGRIND_ZERO_STATS; }

/* Write the collected events to the output file now, as a part named ``reason``. */
void recstack_dump_stats_at(const char *reason) { CALLGRIND_DUMP_STATS_AT(reason); }
