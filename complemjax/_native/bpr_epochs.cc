// The epochs of BPR-MF minibatch training on the CPU, as one XLA FFI custom call.
//
// The same draws and update as the pure-JAX epochs of complemjax/models/mf.py (its test
// oracle). Epoch e draws n_batches * B triples from its seed (k0, k1) (two uint32 words,
// complemjax.models.bpr.bpr_seed): draw t uses (a, b) = Threefry2x32((k0, k1), (t, 0)):
// the training entry a mod E gives (u, i) and its weight w, and b mod n_items is the
// first negative candidate; candidate r >= 1 is Threefry2x32((k0, k1), (t, r))[0] mod
// n_items (complemjax.models.bpr.draw_bpr_candidates). With rejection (n_cand = R + 1 > 1)
// the negative is the first of candidates 0..R-1 that is not a training pair of u, else
// candidate R (complemjax.models.bpr.resolve_negatives), looked up in a bitmap of the
// training pairs (a binary search of the user's sorted keys when users x items exceeds
// kMaxBitmapBits). Draws are computed where they are used, never stored for an epoch.
//
// For each minibatch b of B triples (u, i, j) with weights w, W = max(sum w, 1),
//   x = p_u . (q_i - q_j),   loss_b = sum w (softplus(-x) + l2 (|p_u|^2 + |q_i|^2 + |q_j|^2)) / W
//   dloss/dx = -w sigmoid(-x) / W,  plus 2 l2 w / W times each row (the L2 term).
// Per-occurrence gradients are summed per row (a row may occur several times in a batch),
// then each touched row gets one update:
//   lazy Adam:  m = b1 m + (1-b1) sum g,  v = b2 v + (1-b2) sum g^2,
//               row -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),  t = steps done + 1
//   SGD:        row -= lr sum g.
// Only the rows of the minibatch are read or written, so a step costs O(B d).
//
// Threads: a vmapped call (several seeds / grid points) runs one problem per thread, each
// batch in one pass (RunSinglePass), as does a single problem on one thread (or with
// batches under 64 triples); with n >= 2 threads per problem (a single problem, or at
// most threads / 2 problems), a problem runs each batch on its n threads in
// three phases separated by barriers (RunPhased): (1) by triple range, each triple's
// scalars; (2) each thread sums, in batch order, the gradients of the rows it owns
// (row % threads); (3) it updates them. Every row's sum has the same terms in the same
// order for any thread count, so the result does not depend on it. With `hogwild`, a
// single problem's batches are instead dealt to all threads, which update shared rows
// without synchronisation (faster, not reproducible).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr float kB1 = 0.9f;
constexpr float kB2 = 0.999f;
constexpr float kEps = 1e-8f;

class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void Wait() {
    if (n_ == 1) return;
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
      return;
    }
    int spins = 0;
    while (gen_.load(std::memory_order_acquire) == gen) {
      if (++spins > 256) std::this_thread::yield();
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

// Rows prefetched this many iterations ahead of their use.
constexpr int64_t kAhead = 6;

inline void PrefetchRow(const float* row, int64_t d) {
  for (int64_t k = 0; k < d; k += 16) __builtin_prefetch(row + k);
}

// One BPR problem (one seed / grid point): tables updated in place.
struct Problem {
  float* user;     // [n_users, d]
  float* item;     // [n_items, d]
  float* mv_user;  // [n_users, 2d] first and second moments side by side (Adam only)
  float* mv_item;  // [n_items, 2d]
  int64_t n_users, n_items, d;
  const int32_t* pair_u;  // [E] the training entries' users
  const int32_t* pair_i;  // [E] and items
  const float* pair_w;    // [E] and weights
  int64_t n_pairs;        // E
  const uint32_t* seeds;  // [n_epochs, 2]
  int64_t n_epochs;
  int64_t n_cand;         // 1 + rejection rounds
  const int32_t* keys;    // sorted u * n_items + i of the training pairs (-1: padding)
  const int32_t* indptr;  // [n_users + 1]: user u's keys are keys[indptr[u]:indptr[u+1]]
  int64_t n_batches, batch;
  float lr, l2;
  int32_t steps;  // Adam steps done before this call
  float* losses;  // [n_epochs, n_batches]
  bool adam;
};

// The Threefry-2x32 block cipher, 20 rounds (Salmon et al. 2011; jax.random's default
// generator; complemjax.models.bpr.threefry2x32).
inline void Threefry2x32(uint32_t k0, uint32_t k1, uint32_t x0, uint32_t x1, uint32_t* y0,
                         uint32_t* y1) {
  static constexpr int kRot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
  const uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
  x0 += ks[0];
  x1 += ks[1];
  for (int g = 0; g < 5; ++g) {
    for (int r : kRot[g % 2]) {
      x0 += x1;
      x1 = (x1 << r) | (x1 >> (32 - r));
      x1 ^= x0;
    }
    x0 += ks[(g + 1) % 3];
    x1 += ks[(g + 2) % 3] + uint32_t(g + 1);
  }
  *y0 = x0;
  *y1 = x1;
}

// Triples of a batch: users, positives, negatives and weights (and the draws' words).
struct Triples {
  std::vector<int32_t> u, i, j;
  std::vector<float> w;
  std::vector<uint32_t> a, b;  // scratch: each draw's two Threefry words
  explicit Triples(int64_t n) : u(n), i(n), j(n), w(n), a(n), b(n) {}
};

// x mod n for a fixed n > 0 without a division (Lemire, Kaser & Kurz 2019, "Faster
// remainder by direct computation"): exact for every 32-bit x.
class FastMod {
 public:
  explicit FastMod(uint32_t n) : n_(n), m_(~uint64_t(0) / n + 1) {}
  uint32_t operator()(uint32_t x) const {
    const uint64_t low = m_ * x;
    return static_cast<uint32_t>((static_cast<__uint128_t>(low) * n_) >> 64);
  }

 private:
  uint64_t n_, m_;
};

// Sums of a . (b - c) and of |a|^2 + |b|^2 + |c|^2 in 8 lanes (vectorisable without
// -ffast-math); the lane order is fixed, so the result does not depend on threads.
inline void DotAndNorms(const float* a, const float* b, const float* c, int64_t d, float* dot,
                        float* norms) {
  float s[8] = {0}, r[8] = {0};
  int64_t k = 0;
  for (; k + 8 <= d; k += 8) {
    for (int l = 0; l < 8; ++l) {
      const float x = a[k + l], y = b[k + l], z = c[k + l];
      s[l] += x * (y - z);
      r[l] += x * x + y * y + z * z;
    }
  }
  float sd = 0, sn = 0;
  for (int l = 0; l < 8; ++l) {
    sd += s[l];
    sn += r[l];
  }
  for (; k < d; ++k) {
    sd += a[k] * (b[k] - c[k]);
    sn += a[k] * a[k] + b[k] * b[k] + c[k] * c[k];
  }
  *dot = sd;
  *norms = sn;
}

// What the threads of one problem share: the triples of the epoch and the scalars of
// each triple of the batch (its loss, dloss/dx and L2 coefficient).
struct Shared {
  Triples draws;                       // [n_batches * B]
  std::vector<float> loss, coef, reg;  // [B] per triple
  explicit Shared(const Problem& p)
      : draws(p.n_batches * p.batch), loss(p.batch), coef(p.batch), reg(p.batch) {}
};

// Per-thread sums of the gradients (and, for Adam, squared gradients) of its touched rows.
// A slot's squares are written only once its row occurs a second time in the batch: a row
// seen once (most item rows) keeps only its gradient g, and its update squares g then (the
// same product, so the same bits as summing squares eagerly).
struct Accumulator {
  std::vector<float> acc;     // [slots, 2d]: sum g, then sum g^2 (valid when repeated)
  std::vector<int64_t> rows;  // touched rows, in first-touch order
  std::vector<char> is_item;  // which table each touched row belongs to
  std::vector<char> repeated;  // whether the slot's row occurred more than once
  Accumulator(int64_t batch, int64_t d) : acc(3 * batch * 2 * d) {
    rows.reserve(3 * batch);
    is_item.reserve(3 * batch);
    repeated.reserve(3 * batch);
  }
  void Clear() {
    rows.clear();
    is_item.clear();
    repeated.clear();
  }
};

// Whether thread `tid` of `n` owns a row (row % n == tid; no division for n a power of 2).
struct Owner {
  int tid, n;
  bool operator()(int64_t row) const {
    if (n == 1) return true;
    if ((n & (n - 1)) == 0) return (row & (n - 1)) == tid;
    return row % n == tid;
  }
};

// Largest users x items grid whose positives are kept as a bitmap (8 MiB); above it the
// lookup binary-searches the user's sorted keys.
constexpr int64_t kMaxBitmapBits = int64_t(1) << 26;

// Membership of (user, item) among the training pairs.
class PositiveSet {
 public:
  explicit PositiveSet(const Problem& p) : p_(p) {
    if (p.n_cand < 2 || p.n_users * p.n_items > kMaxBitmapBits) return;
    bits_.assign((p.n_users * p.n_items + 63) / 64, 0);
    for (int32_t k = p.indptr[0]; k < p.indptr[p.n_users]; ++k)
      bits_[uint64_t(p.keys[k]) >> 6] |= uint64_t(1) << (p.keys[k] & 63);
  }
  bool Contains(int32_t user, int32_t item) const {
    const int32_t key = user * static_cast<int32_t>(p_.n_items) + item;
    if (!bits_.empty()) return (bits_[uint64_t(key) >> 6] >> (key & 63)) & 1;
    const int32_t* first = p_.keys + p_.indptr[user];
    const int32_t* last = p_.keys + p_.indptr[user + 1];
    const int32_t* it = std::lower_bound(first, last, key);
    return it != last && *it == key;
  }
  // Start loading the bitmap word of (user, item) (a random read of a large bitmap).
  void Prefetch(int32_t user, int32_t item) const {
    if (bits_.empty()) return;
    __builtin_prefetch(&bits_[uint64_t(user * static_cast<int32_t>(p_.n_items) + item) >> 6]);
  }

 private:
  const Problem& p_;
  std::vector<uint64_t> bits_;
};

// Draws [lo, hi) of epoch e into slots [off, off + hi - lo) of `out`: each draw's words
// (a vectorisable loop), its entry and first candidate, then (with rejection) its
// negative, redrawing candidate r >= 1 while the current one is a training pair of the
// user (r < n_cand). The bitmap words of the first candidates are prefetched.
void DrawTriples(const Problem& p, const PositiveSet& positives, int64_t e, int64_t lo,
                 int64_t hi, Triples& out, int64_t off) {
  const uint32_t k0 = p.seeds[2 * e], k1 = p.seeds[2 * e + 1];
  const FastMod mod_pairs(static_cast<uint32_t>(p.n_pairs));
  const FastMod mod_items(static_cast<uint32_t>(p.n_items));
  uint32_t* __restrict wa = out.a.data() + off;
  uint32_t* __restrict wb = out.b.data() + off;
  const int64_t n = hi - lo;
  for (int64_t s = 0; s < n; ++s) Threefry2x32(k0, k1, uint32_t(lo + s), 0, &wa[s], &wb[s]);
  for (int64_t s = 0; s < n; ++s) {
    const uint32_t entry = mod_pairs(wa[s]);
    out.u[off + s] = p.pair_u[entry];
    out.i[off + s] = p.pair_i[entry];
    out.w[off + s] = p.pair_w[entry];
    out.j[off + s] = static_cast<int32_t>(mod_items(wb[s]));
    if (p.n_cand > 1) positives.Prefetch(out.u[off + s], out.j[off + s]);
  }
  if (p.n_cand < 2) return;
  for (int64_t s = 0; s < n; ++s) {
    int32_t c = out.j[off + s];
    for (int64_t r = 1; r < p.n_cand && positives.Contains(out.u[off + s], c); ++r) {
      uint32_t a, b;
      Threefry2x32(k0, k1, uint32_t(lo + s), static_cast<uint32_t>(r), &a, &b);
      c = static_cast<int32_t>(mod_items(a));
    }
    out.j[off + s] = c;
  }
}

// g = a * x + b * y over d entries.
inline void Axpby(float* __restrict g, float a, const float* __restrict x, float b,
                  const float* __restrict y, int64_t d) {
  for (int64_t k = 0; k < d; ++k) g[k] = a * x[k] + b * y[k];
}

// Add g (and, for Adam, g^2 once the row repeats) to the accumulator slot of `row`,
// opening it if needed.
inline void Accumulate(Accumulator& a, std::vector<int32_t>& slot_of, int64_t row, bool item,
                       const float* __restrict g, int64_t d, bool squares) {
  int32_t slot = slot_of[row];
  if (slot < 0) {
    slot = static_cast<int32_t>(a.rows.size());
    slot_of[row] = slot;
    a.rows.push_back(row);
    a.is_item.push_back(item);
    a.repeated.push_back(0);
    std::memcpy(a.acc.data() + int64_t(slot) * 2 * d, g, d * sizeof(float));
    return;
  }
  float* __restrict s1 = a.acc.data() + int64_t(slot) * 2 * d;
  float* __restrict s2 = s1 + d;
  if (squares) {
    if (!a.repeated[slot]) {
      for (int64_t k = 0; k < d; ++k) s2[k] = s1[k] * s1[k];
      a.repeated[slot] = 1;
    }
    for (int64_t k = 0; k < d; ++k) s2[k] += g[k] * g[k];
  }
  for (int64_t k = 0; k < d; ++k) s1[k] += g[k];
}

// Adam on one row: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g2, row -= lr m^ / (sqrt(v^) + eps)
// with m^ = m / bc1, v^ = v / bc2, computed as (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps):
// one square root and one division per entry. g2 = null: the row occurred once, g2 = g^2.
inline void AdamRow(float* __restrict emb, float* __restrict m, float* __restrict v,
                    const float* __restrict g, const float* __restrict g2, int64_t d, float lr,
                    float bc1, float bc2) {
  const float lr_bc1 = lr / bc1, inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  for (int64_t k = 0; k < d; ++k) {
    const float sq = g2 ? g2[k] : g[k] * g[k];
    const float mk = kB1 * m[k] + (1.0f - kB1) * g[k];
    const float vk = kB2 * v[k] + (1.0f - kB2) * sq;
    m[k] = mk;
    v[k] = vk;
    emb[k] -= lr_bc1 * mk / (std::sqrt(vk) * inv_sqrt_bc2 + kEps);
  }
}

// One triple's loss w (softplus(-x) + l2 norms), coef = dloss/dx and r = 2 l2 w / W,
// with x = p_u . (q_i - q_j) (shared by both paths, so they round alike).
inline void Scalars(const Problem& p, const float* pu, const float* qi, const float* qj,
                    float wt, float inv_w, float* loss, float* coef, float* reg) {
  float x, norms;
  DotAndNorms(pu, qi, qj, p.d, &x, &norms);
  // softplus(-x) = max(-x, 0) + log(1 + e) and sigmoid(-x), from one e = exp(-|x|)
  const float e = std::exp(-std::fabs(x));
  *loss = wt * (std::max(-x, 0.0f) + std::log(1.0f + e) + p.l2 * norms);
  *coef = -wt * ((x >= 0 ? e : 1.0f) / (1.0f + e)) * inv_w;
  *reg = 2.0f * p.l2 * wt * inv_w;
}

// The gradients of one triple's rows (shared by both paths, so they round alike):
// g_u = coef (q_i - q_j) + r p_u, g_i = coef p_u + r q_i, g_j = -coef p_u + r q_j.
inline void UserGrad(float* __restrict g, float coef, const float* __restrict qi,
                     const float* __restrict qj, float r, const float* __restrict pu, int64_t d) {
  for (int64_t k = 0; k < d; ++k) g[k] = coef * (qi[k] - qj[k]) + r * pu[k];
}

// One thread's own row -> accumulator slot maps (-1: row not touched in this batch),
// the triples of its batch (single-pass path) and its gradient sums.
struct Lane {
  std::vector<int32_t> slot_user, slot_item;
  std::vector<int32_t> count_user, count_item;  // occurrences in the batch (single pass)
  std::vector<float> grads;                     // [3, d] one triple's row gradients
  Triples draws;
  Accumulator a;
  explicit Lane(const Problem& p)
      : slot_user(p.n_users, -1), slot_item(p.n_items, -1), count_user(p.n_users, 0),
        count_item(p.n_items, 0), grads(3 * p.d), draws(p.batch), a(p.batch, p.d) {}
};

// Phase 1, triples [lo, hi) of the batch starting at draws[off]: each triple's scalars
// (rows are only read).
void TripleScalars(const Problem& p, Shared& s, int64_t off, int64_t lo, int64_t hi,
                   float inv_w) {
  const int64_t d = p.d;
  const Triples& x = s.draws;
  for (int64_t t = lo; t < hi; ++t) {
    if (t + kAhead < hi) {  // the rows are scattered over tables larger than L2
      PrefetchRow(p.user + int64_t(x.u[off + t + kAhead]) * d, d);
      PrefetchRow(p.item + int64_t(x.i[off + t + kAhead]) * d, d);
      PrefetchRow(p.item + int64_t(x.j[off + t + kAhead]) * d, d);
    }
    const float* __restrict pu = p.user + int64_t(x.u[off + t]) * d;
    const float* __restrict qi = p.item + int64_t(x.i[off + t]) * d;
    const float* __restrict qj = p.item + int64_t(x.j[off + t]) * d;
    Scalars(p, pu, qi, qj, x.w[off + t], inv_w, &s.loss[t], &s.coef[t], &s.reg[t]);
  }
}

// Phase 2 of the batch starting at draws[off] for thread `own.tid`: the gradients of the
// rows it owns (computed from the triple's scalars and rows, as the single pass computes
// them), summed in batch order into `lane.a` (rows are only read).
void SumOwned(const Problem& p, const Shared& s, Lane& lane, int64_t off, const Owner& own) {
  Accumulator& a = lane.a;
  const int64_t d = p.d;
  const Triples& x = s.draws;
  a.Clear();
  float* __restrict g = lane.grads.data();
  for (int64_t t = 0; t < p.batch; ++t) {
    const int64_t ru = x.u[off + t], ri = x.i[off + t], rj = x.j[off + t];
    const bool ou = own(ru), oi = own(ri), oj = own(rj);
    if (!(ou || oi || oj)) continue;
    const float* __restrict pu = p.user + ru * d;
    const float* __restrict qi = p.item + ri * d;
    const float* __restrict qj = p.item + rj * d;
    const float coef = s.coef[t], r = s.reg[t];
    if (ou) {
      UserGrad(g, coef, qi, qj, r, pu, d);
      Accumulate(a, lane.slot_user, ru, false, g, d, p.adam);
    }
    if (oi) {
      Axpby(g, coef, pu, r, qi, d);
      Accumulate(a, lane.slot_item, ri, true, g, d, p.adam);
    }
    if (oj) {
      Axpby(g, -coef, pu, r, qj, d);
      Accumulate(a, lane.slot_item, rj, true, g, d, p.adam);
    }
  }
}

// One row's update from its summed gradient g (and summed squares g2; null: g^2).
inline void UpdateRow(const Problem& p, bool item, int64_t row, const float* __restrict g,
                      const float* __restrict g2, float bc1, float bc2) {
  const int64_t d = p.d;
  float* __restrict emb = (item ? p.item : p.user) + row * d;
  if (!p.adam) {
    for (int64_t k = 0; k < d; ++k) emb[k] -= p.lr * g[k];
    return;
  }
  float* __restrict m = (item ? p.mv_item : p.mv_user) + row * 2 * d;
  AdamRow(emb, m, m + d, g, g2, d, p.lr, bc1, bc2);
}

// Write phase: one update of each row this thread touched (and owns) in the batch.
void ApplyBatch(const Problem& p, std::vector<int32_t>& slot_user,
                std::vector<int32_t>& slot_item, Accumulator& a, float bc1, float bc2) {
  const int64_t d = p.d;
  for (size_t n = 0; n < a.rows.size(); ++n) {
    if (n + kAhead < a.rows.size()) {
      const int64_t ahead = a.rows[n + kAhead];
      const bool ahead_item = a.is_item[n + kAhead];
      PrefetchRow((ahead_item ? p.item : p.user) + ahead * d, d);
      if (p.adam) PrefetchRow((ahead_item ? p.mv_item : p.mv_user) + ahead * 2 * d, 2 * d);
    }
    const int64_t row = a.rows[n];
    const bool item = a.is_item[n];
    const float* acc = a.acc.data() + int64_t(n) * 2 * d;
    (item ? slot_item : slot_user)[row] = -1;
    UpdateRow(p, item, row, acc, a.repeated[n] ? acc + d : nullptr, bc1, bc2);
  }
}

// The constants of a batch with weights w[0, B) that is Adam step `step` (1-based):
// 1 / W with W = max(sum w, 1), and Adam's bias corrections.
struct BatchConstants {
  float inv_w, bc1, bc2;
  BatchConstants(const Problem& p, const float* w, int64_t step) {
    float sw = 0;
    for (int64_t t = 0; t < p.batch; ++t) sw += w[t];
    inv_w = 1.0f / std::max(sw, 1.0f);
    const float fstep = static_cast<float>(p.steps + step);
    bc1 = 1.0f - std::pow(kB1, fstep);
    bc2 = 1.0f - std::pow(kB2, fstep);
  }
};

// Batch b of epoch e in one pass: its draws, then per triple its scalars and the
// gradients of its three rows, then one update per row: at once for a row that occurs
// only in this triple (no other triple of the batch reads it), after the last triple for
// the others (their gradients summed per row in batch order). The same arithmetic, in the
// same order, as the phases on one thread.
void SinglePassBatch(const Problem& p, const PositiveSet& positives, Lane& lane, int64_t e,
                     int64_t b) {
  const int64_t d = p.d;
  Triples& x = lane.draws;
  DrawTriples(p, positives, e, b * p.batch, (b + 1) * p.batch, x, 0);
  const BatchConstants c(p, x.w.data(), e * p.n_batches + b + 1);
  for (int64_t t = 0; t < p.batch; ++t) {
    ++lane.count_user[x.u[t]];
    ++lane.count_item[x.i[t]];
    ++lane.count_item[x.j[t]];
  }
  Accumulator& a = lane.a;
  a.Clear();
  float* __restrict gu = lane.grads.data();
  float* __restrict gi = gu + d;
  float* __restrict gj = gi + d;
  float total_loss = 0;
  for (int64_t t = 0; t < p.batch; ++t) {
    if (t + kAhead < p.batch) {
      const int64_t au = x.u[t + kAhead], ai = x.i[t + kAhead], aj = x.j[t + kAhead];
      PrefetchRow(p.user + au * d, d);
      PrefetchRow(p.item + ai * d, d);
      PrefetchRow(p.item + aj * d, d);
      if (p.adam) {
        PrefetchRow(p.mv_user + au * 2 * d, 2 * d);
        PrefetchRow(p.mv_item + ai * 2 * d, 2 * d);
        PrefetchRow(p.mv_item + aj * 2 * d, 2 * d);
      }
    }
    const int64_t ru = x.u[t], ri = x.i[t], rj = x.j[t];
    const float* __restrict pu = p.user + ru * d;
    const float* __restrict qi = p.item + ri * d;
    const float* __restrict qj = p.item + rj * d;
    float loss, coef, r;
    Scalars(p, pu, qi, qj, x.w[t], c.inv_w, &loss, &coef, &r);
    total_loss += loss;
    UserGrad(gu, coef, qi, qj, r, pu, d);
    Axpby(gi, coef, pu, r, qi, d);
    Axpby(gj, -coef, pu, r, qj, d);
    // every read of this triple is done: rows no other triple touches are updated now
    if (lane.count_user[ru] == 1)
      UpdateRow(p, false, ru, gu, nullptr, c.bc1, c.bc2);
    else
      Accumulate(a, lane.slot_user, ru, false, gu, d, p.adam);
    if (lane.count_item[ri] == 1)
      UpdateRow(p, true, ri, gi, nullptr, c.bc1, c.bc2);
    else
      Accumulate(a, lane.slot_item, ri, true, gi, d, p.adam);
    if (lane.count_item[rj] == 1)
      UpdateRow(p, true, rj, gj, nullptr, c.bc1, c.bc2);
    else
      Accumulate(a, lane.slot_item, rj, true, gj, d, p.adam);
  }
  // every read of the batch is done: the updates of the repeated rows
  ApplyBatch(p, lane.slot_user, lane.slot_item, a, c.bc1, c.bc2);
  for (int64_t t = 0; t < p.batch; ++t) {
    lane.count_user[x.u[t]] = 0;
    lane.count_item[x.i[t]] = 0;
    lane.count_item[x.j[t]] = 0;
  }
  p.losses[e * p.n_batches + b] = total_loss * c.inv_w;
}

// Every batch of every epoch in one pass each. Hogwild (n_threads > 1): the threads claim
// the batches in sequence order (epoch 0's, then epoch 1's, ...) from a shared counter, so
// a batch's Adam step number is its claim order, and read and update the shared rows
// without synchronisation (Recht et al. 2011, as `implicit` does): a row may be read while
// another thread updates it and two threads' updates of a row may interleave, so results
// depend on thread timing. One thread runs the batches in order and gives exactly the
// deterministic result.
void RunSinglePass(const Problem& p, int n_threads) {
  const PositiveSet positives(p);
  const int64_t total = p.n_epochs * p.n_batches;
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    Lane lane(p);
    for (int64_t g = next.fetch_add(1); g < total; g = next.fetch_add(1))
      SinglePassBatch(p, positives, lane, g / p.n_batches, g % p.n_batches);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n_threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
}

// One problem on n_threads >= 2 threads, deterministically: each epoch's triples drawn by
// range, then every batch in three phases with barriers between them: (1) by triple
// range, each triple's scalars; (2) each thread sums, in batch order, the gradients of
// the rows it owns; (3) it updates them. Every row's sum has the same terms in the same
// order for any count, so the result is the same for any count (and equals
// RunSinglePass on one thread).
void RunPhased(const Problem& p, int n_threads) {
  Shared s(p);
  const PositiveSet positives(p);
  SpinBarrier barrier(n_threads);
  auto work = [&](int tid) {
    const Owner own{tid, n_threads};
    const int64_t total = p.n_batches * p.batch;
    const int64_t chunk = (total + n_threads - 1) / n_threads;
    const int64_t lo = std::min(total, tid * chunk), hi = std::min(total, (tid + 1) * chunk);
    const int64_t per = (p.batch + n_threads - 1) / n_threads;
    Lane lane(p);  // this thread's slot maps and sums (its rows only)
    for (int64_t e = 0; e < p.n_epochs; ++e) {
      DrawTriples(p, positives, e, lo, hi, s.draws, lo);
      barrier.Wait();  // every triple of the epoch is drawn
      for (int64_t b = 0; b < p.n_batches; ++b) {
        const int64_t off = b * p.batch;
        const BatchConstants c(p, s.draws.w.data() + off, e * p.n_batches + b + 1);
        TripleScalars(p, s, off, std::min(p.batch, tid * per),
                      std::min(p.batch, (tid + 1) * per), c.inv_w);
        barrier.Wait();  // every triple's scalars are known
        SumOwned(p, s, lane, off, own);
        if (tid == 0) {
          float total_loss = 0;
          for (int64_t t = 0; t < p.batch; ++t) total_loss += s.loss[t];
          p.losses[e * p.n_batches + b] = total_loss * c.inv_w;
        }
        barrier.Wait();  // every read of the batch is done
        ApplyBatch(p, lane.slot_user, lane.slot_item, lane.a, c.bc1, c.bc2);
        barrier.Wait();  // every row is updated before the next batch reads it
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n_threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
}

ffi::Error CheckIndices(const int32_t* idx, int64_t n, int64_t bound, const char* name) {
  for (int64_t t = 0; t < n; ++t) {
    if (idx[t] < 0 || idx[t] >= bound) {
      return ffi::Error::InvalidArgument(std::string("bpr_epochs: index out of range in ") +
                                         name);
    }
  }
  return ffi::Error::Success();
}

template <ffi::DataType T>
void CopyIfDistinct(const ffi::Buffer<T>& in, ffi::ResultBuffer<T>& out) {
  if (in.untyped_data() != out->untyped_data())
    std::memcpy(out->untyped_data(), in.untyped_data(), in.size_bytes());
}

ffi::Error BprEpochsImpl(ffi::Buffer<ffi::F32> user, ffi::Buffer<ffi::F32> item,
                         ffi::Buffer<ffi::F32> mv_user, ffi::Buffer<ffi::F32> mv_item,
                         ffi::Buffer<ffi::S32> steps, ffi::Buffer<ffi::S32> pair_u,
                         ffi::Buffer<ffi::S32> pair_i, ffi::Buffer<ffi::F32> pair_w,
                         ffi::Buffer<ffi::U32> seeds, ffi::Buffer<ffi::S32> keys,
                         ffi::Buffer<ffi::S32> indptr, ffi::Buffer<ffi::F32> lr,
                         ffi::Buffer<ffi::F32> l2, ffi::ResultBuffer<ffi::F32> user_out,
                         ffi::ResultBuffer<ffi::F32> item_out,
                         ffi::ResultBuffer<ffi::F32> mv_user_out,
                         ffi::ResultBuffer<ffi::F32> mv_item_out,
                         ffi::ResultBuffer<ffi::S32> steps_out,
                         ffi::ResultBuffer<ffi::F32> losses, int64_t adam, int64_t n_threads,
                         int64_t hogwild, int64_t batch, int64_t n_batches, int64_t n_cand) {
  const auto ud = user.dimensions(), id = item.dimensions(), pd = pair_u.dimensions();
  const auto sd = seeds.dimensions();
  if (ud.size() < 2 || id.size() < 2 || pd.size() < 1 || sd.size() < 2 || sd.back() != 2)
    return ffi::Error::InvalidArgument(
        "bpr_epochs: tables need [..., rows, d], pairs [..., E], seeds [..., n_epochs, 2]");
  const int64_t n_users = ud[ud.size() - 2], d = ud[ud.size() - 1];
  const int64_t n_items = id[id.size() - 2];
  const int64_t E = pd.back(), n_epochs = sd[sd.size() - 2];
  const int64_t S = lr.element_count();
  const int64_t n_keys = keys.dimensions().back();
  if (batch < 1 || n_batches < 1 || n_cand < 1 || E < 1 || batch * n_batches > (int64_t(1) << 32))
    return ffi::Error::InvalidArgument("bpr_epochs: bad batch, n_batches, n_cand or pairs");
  if (n_cand > 1 && (int64_t(indptr.element_count()) != S * (n_users + 1) ||
                     int64_t(keys.element_count()) != S * n_keys))
    return ffi::Error::InvalidArgument("bpr_epochs: rejection needs keys [..., K], indptr [..., U+1]");
  if (d != id[id.size() - 1] || S < 1 || int64_t(user.element_count()) != S * n_users * d ||
      int64_t(item.element_count()) != S * n_items * d ||
      int64_t(pair_u.element_count()) != S * E || pair_i.element_count() != pair_u.element_count() ||
      pair_w.element_count() != pair_u.element_count() ||
      int64_t(seeds.element_count()) != S * n_epochs * 2 ||
      int64_t(losses->element_count()) != S * n_epochs * n_batches ||
      int64_t(l2.element_count()) != S || int64_t(steps.element_count()) != S)
    return ffi::Error::InvalidArgument("bpr_epochs: inconsistent shapes");
  if (adam && (int64_t(mv_user.element_count()) != 2 * S * n_users * d ||
               int64_t(mv_item.element_count()) != 2 * S * n_items * d))
    return ffi::Error::InvalidArgument("bpr_epochs: Adam moments need [..., rows, 2d]");
  if (auto e = CheckIndices(pair_u.typed_data(), S * E, n_users, "users"); e.failure()) return e;
  if (auto e = CheckIndices(pair_i.typed_data(), S * E, n_items, "items"); e.failure()) return e;
  if (n_cand > 1) {  // the user's keys must lie in keys[...]
    if (auto e = CheckIndices(indptr.typed_data(), S * (n_users + 1), n_keys + 1, "indptr");
        e.failure())
      return e;
  }
  CopyIfDistinct(user, user_out);
  CopyIfDistinct(item, item_out);
  CopyIfDistinct(mv_user, mv_user_out);
  CopyIfDistinct(mv_item, mv_item_out);

  std::vector<Problem> problems(S);
  for (int64_t s = 0; s < S; ++s) {
    Problem& p = problems[s];
    p.user = user_out->typed_data() + s * n_users * d;
    p.item = item_out->typed_data() + s * n_items * d;
    p.mv_user = adam ? mv_user_out->typed_data() + s * n_users * 2 * d : nullptr;
    p.mv_item = adam ? mv_item_out->typed_data() + s * n_items * 2 * d : nullptr;
    p.n_users = n_users;
    p.n_items = n_items;
    p.d = d;
    p.pair_u = pair_u.typed_data() + s * E;
    p.pair_i = pair_i.typed_data() + s * E;
    p.pair_w = pair_w.typed_data() + s * E;
    p.n_pairs = E;
    p.seeds = seeds.typed_data() + s * n_epochs * 2;
    p.n_epochs = n_epochs;
    p.n_cand = n_cand;
    p.keys = n_cand > 1 ? keys.typed_data() + s * n_keys : nullptr;
    p.indptr = n_cand > 1 ? indptr.typed_data() + s * (n_users + 1) : nullptr;
    p.n_batches = n_batches;
    p.batch = batch;
    p.lr = lr.typed_data()[s];
    p.l2 = l2.typed_data()[s];
    p.steps = steps.typed_data()[s];
    p.losses = losses->typed_data() + s * n_epochs * n_batches;
    p.adam = adam != 0;
    steps_out->typed_data()[s] = p.steps + static_cast<int32_t>(n_epochs * n_batches);
  }
  const int threads = static_cast<int>(std::max<int64_t>(1, n_threads));
  if (S == 1) {
    // No XLA operation runs between the epochs, so the phases can use every thread (when
    // each epoch was a separate call, XLA's worker threads spinning between calls stalled
    // the barriers, and the phases kept one core free for them).
    if (hogwild && threads > 1)
      RunSinglePass(problems[0], threads);
    else if (threads > 1 && batch >= 64)
      RunPhased(problems[0], threads);
    else
      RunSinglePass(problems[0], 1);
    return ffi::Error::Success();
  }
  // several problems: one per thread, dealt round-robin; with at least twice as many
  // threads as problems, each problem runs in phases on its share of them
  const int workers = static_cast<int>(std::min<int64_t>(threads, S));
  const int per_problem = threads / workers;
  std::vector<std::thread> pool;
  auto work = [&](int tid) {
    for (int64_t s = tid; s < S; s += workers) {
      if (per_problem > 1 && batch >= 64)
        RunPhased(problems[s], per_problem);
      else
        RunSinglePass(problems[s], 1);
    }
  };
  for (int t = 1; t < workers; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ComplemjaxBprEpochs, BprEpochsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // user
                                  .Arg<ffi::Buffer<ffi::F32>>()  // item
                                  .Arg<ffi::Buffer<ffi::F32>>()  // mv_user
                                  .Arg<ffi::Buffer<ffi::F32>>()  // mv_item
                                  .Arg<ffi::Buffer<ffi::S32>>()  // steps
                                  .Arg<ffi::Buffer<ffi::S32>>()  // pair users
                                  .Arg<ffi::Buffer<ffi::S32>>()  // pair items
                                  .Arg<ffi::Buffer<ffi::F32>>()  // pair weights
                                  .Arg<ffi::Buffer<ffi::U32>>()  // seeds [n_epochs, 2]
                                  .Arg<ffi::Buffer<ffi::S32>>()  // keys
                                  .Arg<ffi::Buffer<ffi::S32>>()  // indptr
                                  .Arg<ffi::Buffer<ffi::F32>>()  // lr
                                  .Arg<ffi::Buffer<ffi::F32>>()  // l2
                                  .Ret<ffi::Buffer<ffi::F32>>()  // user
                                  .Ret<ffi::Buffer<ffi::F32>>()  // item
                                  .Ret<ffi::Buffer<ffi::F32>>()  // mv_user
                                  .Ret<ffi::Buffer<ffi::F32>>()  // mv_item
                                  .Ret<ffi::Buffer<ffi::S32>>()  // steps
                                  .Ret<ffi::Buffer<ffi::F32>>()  // losses [n_epochs, nb]
                                  .Attr<int64_t>("adam")
                                  .Attr<int64_t>("n_threads")
                                  .Attr<int64_t>("hogwild")
                                  .Attr<int64_t>("batch")
                                  .Attr<int64_t>("n_batches")
                                  .Attr<int64_t>("n_cand"));
