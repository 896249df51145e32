// recstack's operator clock: how long a thread spends inside top-level PyTorch operators.
//
// A thread-local RecordFunction callback on operator scopes only (aten operators through the
// dispatcher; no user scopes, no inputs, no ids). Each callback counts the operator; the
// outermost one (depth 0) also reads the steady clock on entry and exit and adds the
// difference. The accumulators are thread-local: read them from the thread that started the
// clock. This is the bookkeeping the PyTorch profiler does, minus event storage: about a tenth
// of a microsecond per operator instead of about one.
#include <ATen/record_function.h>

#include <chrono>
#include <cstdint>
#include <memory>

namespace {

thread_local int depth = 0;
thread_local int64_t entered_ns = 0;
thread_local int64_t inside_ns = 0;
thread_local int64_t top_level_calls = 0;
thread_local int64_t observed_calls = 0;
thread_local at::CallbackHandle handle = 0;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction&) {
  ++observed_calls;
  if (depth++ == 0) entered_ns = now_ns();
  return nullptr;
}

void on_exit(const at::RecordFunction&, at::ObserverContext*) {
  if (depth > 0 && --depth == 0) {
    inside_ns += now_ns() - entered_ns;
    ++top_level_calls;
  }
}

}  // namespace

extern "C" {

// Starts the clock on the calling thread (accumulators zeroed); 0 when it already runs.
int recstack_opclock_start() {
  if (handle != 0) return 0;
  depth = 0;
  inside_ns = top_level_calls = observed_calls = 0;
  handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_enter, on_exit)
                                          .scopes({at::RecordScope::FUNCTION})
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
