// recstack's operator clock: how long a thread spends inside top-level PyTorch operators.
//
// A thread-local RecordFunction callback on operator scopes only (no user scopes, no inputs,
// no ids). Each callback counts the operator; the outermost one (depth 0) also reads the
// steady clock on entry and exit and adds the difference. The accumulators are thread-local:
// read them from the thread that started the clock. This is the bookkeeping the PyTorch
// profiler does, minus event storage: about a tenth of a microsecond per operator instead of
// about one.
//
// Two kinds of operator, chosen when the clock starts:
// - dispatcher operators (scope FUNCTION): aten calls from Python, as eager models make them;
// - Static Runtime nodes (scope STATIC_RUNTIME_OP): the operators of a graph that PyTorch's
//   Static Runtime runs from C++. Its nodes call kernels directly or through the dispatcher;
//   only the nodes are watched, so the nested calls cost no callback. The runtime's
//   data-structure nodes (prim::ListUnpack, prim::TupleConstruct, ...: what Python's own
//   tuples and lists do in an eager forward) are glue, not operators, and are not counted;
//   prim::Var* nodes (VarConcat, VarStack) are concatenations and are.
#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>
#include <cstring>
#include <memory>

namespace {

thread_local int depth = 0;
thread_local int64_t entered_ns = 0;
thread_local int64_t exited_ns = 0;
thread_local int64_t inside_ns = 0;
thread_local int64_t top_level_calls = 0;
thread_local int64_t observed_calls = 0;
thread_local at::CallbackHandle handle = 0;
thread_local at::RecordScope watched = at::RecordScope::FUNCTION;

// A Static Runtime node that only builds or unpacks lists and tuples (see above).
inline bool is_glue(const at::RecordFunction& fn) {
  if (fn.scope() != at::RecordScope::STATIC_RUNTIME_OP) return false;
  const char* name = fn.name();
  if (name == nullptr) return false;
  if (std::strncmp(name, "prim::", 6) == 0) return std::strncmp(name + 6, "Var", 3) != 0;
  return std::strncmp(name, "static_runtime::VarTupleUnpack", 30) == 0 ||
         std::strncmp(name, "static_runtime::dict_unpack", 27) == 0;
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  if (is_glue(fn)) return nullptr;
  ++observed_calls;
  if (depth++ == 0) entered_ns = now_ns();
  return nullptr;
}

void on_exit(const at::RecordFunction& fn, at::ObserverContext*) {
  if (is_glue(fn)) return;
  if (depth > 0 && --depth == 0) {
    exited_ns = now_ns();
    inside_ns += exited_ns - entered_ns;
    ++top_level_calls;
  }
}

}  // namespace

extern "C" {

// Starts the clock on the calling thread (accumulators zeroed), watching dispatcher operators
// or, with static_runtime != 0, Static Runtime nodes; 0 when it already runs.
int recstack_opclock_start(int static_runtime) {
  if (handle != 0) return 0;
  depth = 0;
  inside_ns = top_level_calls = observed_calls = 0;
  watched = static_runtime ? at::RecordScope::STATIC_RUNTIME_OP : at::RecordScope::FUNCTION;
  handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_enter, on_exit)
                                          .scopes({watched})
                                          .needsInputs(false)
                                          .needsOutputs(false)
                                          .needsIds(false));
  return 1;
}

void recstack_opclock_stop() {
  if (handle != 0) {
    at::removeCallback(handle);
    handle = 0;
  }
}

// The clock's own cost outside an operator, per top-level operator, as a lower bound: with
// the clock running on this thread, `samples` empty RecordFunction scopes of the watched
// kind, made the way Static Runtime and the dispatcher make theirs (guard from the step
// callbacks, before(name), end), each timed from just before the guard to the callback's
// clock read on entry, and from the callback's clock read on exit to just after the guard.
// The fastest sample, less the median cost of one clock read (the extra read each timing
// adds), is what every top-level operator costs the clock outside itself at least: an
// unclocked operator makes no guard, the dispatcher's guard does more than before(name), and
// the callbacks run hot in the caches here, as they seldom do inside a forward.
// out = {that ns, median clock read ns}.
// Returns 0 when the clock is not running here (nothing to measure). The accumulators keep
// these scopes: take() before reading an iteration.
int recstack_opclock_calibrate(int samples, int64_t* out) {
  if (handle == 0 || samples <= 0) return 0;
  const at::RecordScope scope = watched;
  std::vector<int64_t> reads;
  reads.reserve(samples);
  int64_t fastest = INT64_MAX;
  for (int i = 0; i < samples; ++i) {
    const int64_t a = now_ns();
    const int64_t b = now_ns();
    reads.push_back(b - a);
    // Looking the callbacks up is left out: an unclocked run looks them up too.
    auto callbacks = at::getStepCallbacksUnlessEmpty(scope);
    if (!callbacks.has_value()) return 0;
    const int64_t start = now_ns();
    {
      at::RecordFunction guard(std::move(*callbacks));
      guard.before("recstack::opclock_calibration");
    }
    const int64_t end = now_ns();
    fastest = std::min(fastest, (entered_ns - start) + (end - exited_ns));
  }
  std::nth_element(reads.begin(), reads.begin() + reads.size() / 2, reads.end());
  const int64_t read = reads[reads.size() / 2];
  out[0] = std::max<int64_t>(0, fastest - read);
  out[1] = read;
  return 1;
}

// out = {ns inside top-level operators, top-level operators, operators observed, open depth}
// since the last take; then zeroes the first three.
void recstack_opclock_take(int64_t* out) {
  out[0] = inside_ns;
  out[1] = top_level_calls;
  out[2] = observed_calls;
  out[3] = depth;
  inside_ns = top_level_calls = observed_calls = 0;
}

}  // extern "C"
