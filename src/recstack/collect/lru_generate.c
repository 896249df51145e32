/* The LRU stack of recstack's synthetic id generator (recstack.reuse_profile.generate_ids).
 *
 * Each access draws a stack distance from a profile and takes the row at that depth of an
 * LRU stack: inherently sequential, too slow in Python at 1e7 accesses. recstack compiles
 * this file into a small shared library at run time (cc -shared -fPIC -O2, and
 * -ffp-contract=off so no machine fuses the probability arithmetic) and calls it
 * through ctypes. Every random number comes from numpy (u, v, the fresh rows), so a seed
 * gives the same ids on every machine; this file only keeps the stack.
 *
 * The stack is a Fenwick tree over access times: slot t holds 1 while the row accessed at
 * time t has not been accessed since, so the row at depth d (0 = most recent) is the
 * (live - d)-th marked slot, found by one descent, and each access costs O(log n).
 */
#include <stdint.h>

static int64_t kth_marked(const int32_t *tree, int64_t size, int64_t top, int64_t rank) {
    int64_t pos = 0;
    for (int64_t step = top; step > 0; step >>= 1) {
        int64_t next = pos + step;
        if (next <= size && tree[next] < rank) {
            pos = next;
            rank -= tree[next];
        }
    }
    return pos; /* 0-based slot */
}

static void mark(int32_t *tree, int64_t size, int64_t slot, int32_t delta) {
    for (int64_t i = slot + 1; i <= size; i += i & -i) tree[i] += delta;
}

/* Reuse mass of the bins feasible at `limit` distinct rows (distances < limit); *last gets
 * the last bin with feasible distances (-1 when none). A bin straddling the limit counts
 * for its feasible share, as a uniform distance within it would. */
static double feasible_mass(int64_t bins, const int64_t *edges, const double *cum,
                            int64_t limit, int64_t *last) {
    int64_t low = 0, high = bins; /* first bin whose upper edge exceeds limit */
    while (low < high) {
        int64_t mid = (low + high) / 2;
        if (edges[mid + 1] <= limit) low = mid + 1; else high = mid;
    }
    double mass = low > 0 ? cum[low - 1] : 0.0;
    *last = low - 1;
    if (low < bins && edges[low] < limit) {
        double p = cum[low] - mass;
        mass += p * (double)(limit - edges[low]) / (double)(edges[low + 1] - edges[low]);
        *last = low;
    }
    return mass;
}

/* Generates accesses [start, stop) of a stream of `size` into out[], continuing the stack in
 * tree[] (size + 1 counters) and state[] = {distinct rows on the stack, fresh rows used}.
 * u[], v[]: two uniforms per access, indexed from start. The reuse distribution has `bins`
 * bins [edges[k], edges[k+1]) with cumulative probabilities cum[k] (cum[bins-1] = 1 - cold).
 * A distance at or past the distinct rows so far is redrawn among the feasible ones when
 * `renormalise` (DeepRecSys), else it is a first touch: what a trace cut out of a longer
 * stream shows of a reuse whose earlier access precedes the cut. A cold access takes the
 * next of fresh[0..fresh_count) while rows remain untouched, else the least recently used
 * row. Returns stop, or the access that needs more fresh rows. */
int64_t recstack_lru_generate(int64_t start, int64_t stop, int64_t size, int64_t rows,
                              const double *u, const double *v, double cold, int64_t bins,
                              const int64_t *edges, const double *cum, const int64_t *fresh,
                              int64_t fresh_count, int renormalise, int64_t *state,
                              int32_t *tree, int64_t *out) {
    int64_t top = 1;
    while (top * 2 <= size) top *= 2;
    int64_t live = state[0], used = state[1];
    int64_t cached_limit = -1, last = -1;
    double mass = 0.0;
    for (int64_t i = start; i < stop; i++) {
        double uu = u[i - start], vv = v[i - start];
        if (live != cached_limit) { /* the support only widens when a fresh row arrives */
            mass = bins > 0 ? feasible_mass(bins, edges, cum, live, &last) : 0.0;
            cached_limit = live;
        }
        int64_t depth = -1;
        double total = renormalise ? cold + mass : cold + (bins > 0 ? cum[bins - 1] : 0.0);
        double target = uu * total;
        double r = target - cold;
        if (total > 0.0 && target >= cold && last >= 0 && r < mass) {
            int64_t low = 0, high = last; /* first bin with cum > r, at most last */
            while (low < high) {
                int64_t mid = (low + high) / 2;
                if (cum[mid] > r) high = mid; else low = mid + 1;
            }
            int64_t width = edges[low + 1] - edges[low];
            if (edges[low + 1] > live) width = live - edges[low];
            depth = edges[low] + (int64_t)(vv * (double)width);
            if (depth >= edges[low] + width) depth = edges[low] + width - 1;
        }
        if (depth < 0) { /* cold */
            if (live < rows) {
                if (used >= fresh_count) {
                    state[0] = live;
                    state[1] = used;
                    return i;
                }
                out[i] = fresh[used++];
                mark(tree, size, i, 1);
                live++;
                continue;
            }
            depth = live - 1; /* every row touched: the least recently used one */
        }
        int64_t slot = kth_marked(tree, size, top, live - depth);
        out[i] = out[slot];
        mark(tree, size, slot, -1);
        mark(tree, size, i, 1);
    }
    state[0] = live;
    state[1] = used;
    return stop;
}
