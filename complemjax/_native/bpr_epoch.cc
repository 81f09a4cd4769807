// One epoch of BPR-MF minibatch steps on the CPU, as an XLA FFI custom call.
//
// The same update as the pure-JAX step of complemjax/models/mf.py (its test oracle):
// for each minibatch b of B triples (u, i, j) with weights w, W = max(sum w, 1),
//   x = p_u . (q_i - q_j),   loss_b = sum w (softplus(-x) + l2 (|p_u|^2 + |q_i|^2 + |q_j|^2)) / W
//   dloss/dx = -w sigmoid(-x) / W,  plus 2 l2 w / W times each row (the L2 term).
// Per-occurrence gradients are summed per row (a row may occur several times in a batch),
// then each touched row gets one update:
//   lazy Adam:  m = b1 m + (1-b1) sum g,  v = b2 v + (1-b2) sum g^2,
//               row -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),  t = steps done + 1
//   SGD:        row -= lr sum g.
// Only the rows of the minibatch are read or written, so a step costs O(B d).
//
// Negatives: each draw brings candidates; its negative is the first candidate that is not
// a training pair of its user, else the last (complemjax.models.bpr.resolve_negatives),
// looked up in a bitmap of the training pairs (a binary search of the user's sorted keys
// when users x items exceeds kMaxBitmapBits).
//
// Threads: a vmapped call (several seeds / grid points) runs one problem per thread, and a
// single problem on 1 or 2 threads runs on one; both run each batch in one pass
// (RunSinglePass). A single problem on n >= 3 threads runs each batch
// on n - 1 of them in two phases separated by barriers (RunPhased): (1) by triple range,
// each triple's loss and the gradients of its three rows; (2) each thread sums, in batch
// order, the gradients of the rows it owns (row % threads) and updates them. Every row's
// sum has the same order for any thread count, so the result does not depend on it. With
// `hogwild`, a single problem's batches are instead dealt to all threads, which update
// shared rows without synchronisation (faster, not reproducible).

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
  const int32_t* u;  // [n_batches * B]
  const int32_t* i;
  const int32_t* j;       // [n_batches * B, n_cand] negative candidates
  int64_t n_cand;         // 1 + rejection rounds
  const int32_t* keys;    // sorted u * n_items + i of the training pairs (-1: padding)
  const int32_t* indptr;  // [n_users + 1]: user u's keys are keys[indptr[u]:indptr[u+1]]
  const float* w;
  int64_t n_batches, batch;
  float lr, l2;
  int32_t steps;  // Adam steps done before this call
  float* losses;  // [n_batches]
  bool adam;
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

// What the threads of one problem share: the resolved negatives of the epoch and the
// scalars of each triple of the batch (its loss, dloss/dx and L2 coefficient).
struct Shared {
  std::vector<int32_t> neg;  // [n_batches * B]
  std::vector<float> loss, coef, reg;  // [B] per triple
  explicit Shared(const Problem& p)
      : neg(p.n_batches * p.batch), loss(p.batch), coef(p.batch), reg(p.batch) {}
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
  std::vector<float> g;       // [d] one occurrence's gradient
  Accumulator(int64_t batch, int64_t d) : acc(3 * batch * 2 * d), g(d) {
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

// The negative of draw t: the first candidate that is not a training pair of the user,
// else the last candidate (the rejection of complemjax.models.bpr.resolve_negatives).
inline int32_t ResolveNegative(const Problem& p, const PositiveSet& positives, int64_t t) {
  const int32_t* cand = p.j + t * p.n_cand;
  for (int64_t r = 0; r + 1 < p.n_cand; ++r) {
    if (!positives.Contains(p.u[t], cand[r])) return cand[r];
  }
  return cand[p.n_cand - 1];
}

// Bitmap words prefetched this many draws ahead of their lookup.
constexpr int64_t kAheadDraws = 16;

// The negatives of draws [lo, hi) into neg[0, hi - lo).
void ResolveNegatives(const Problem& p, const PositiveSet& positives, int64_t lo, int64_t hi,
                      int32_t* neg) {
  for (int64_t t = lo; t < hi; ++t) {
    if (p.n_cand > 1 && t + kAheadDraws < hi)
      positives.Prefetch(p.u[t + kAheadDraws], p.j[(t + kAheadDraws) * p.n_cand]);
    neg[t - lo] = ResolveNegative(p, positives, t);
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
// the negatives of its batch (single-pass path) and its gradient sums.
struct Lane {
  std::vector<int32_t> slot_user, slot_item, neg;
  Accumulator a;
  explicit Lane(const Problem& p)
      : slot_user(p.n_users, -1), slot_item(p.n_items, -1), neg(p.batch), a(p.batch, p.d) {}
};

// Phase 1 of batch b, triples [lo, hi): each triple's scalars (rows are only read).
void TripleScalars(const Problem& p, Shared& s, int64_t b, int64_t lo, int64_t hi,
                   float inv_w) {
  const int64_t d = p.d, off = b * p.batch;
  for (int64_t t = lo; t < hi; ++t) {
    if (t + kAhead < hi) {  // the rows are scattered over tables larger than L2
      PrefetchRow(p.user + int64_t(p.u[off + t + kAhead]) * d, d);
      PrefetchRow(p.item + int64_t(p.i[off + t + kAhead]) * d, d);
      PrefetchRow(p.item + int64_t(s.neg[off + t + kAhead]) * d, d);
    }
    const float* __restrict pu = p.user + int64_t(p.u[off + t]) * d;
    const float* __restrict qi = p.item + int64_t(p.i[off + t]) * d;
    const float* __restrict qj = p.item + int64_t(s.neg[off + t]) * d;
    Scalars(p, pu, qi, qj, p.w[off + t], inv_w, &s.loss[t], &s.coef[t], &s.reg[t]);
  }
}

// Phase 2 of batch b for thread `own.tid`: the gradients of the rows it owns (computed
// from the triple's scalars and rows, as the single pass computes them), summed in batch
// order into `lane.a` (rows are only read).
void SumOwned(const Problem& p, const Shared& s, Lane& lane, int64_t b, const Owner& own) {
  Accumulator& a = lane.a;
  const int64_t d = p.d, off = b * p.batch;
  a.Clear();
  float* __restrict g = a.g.data();
  for (int64_t t = 0; t < p.batch; ++t) {
    const int64_t ru = p.u[off + t], ri = p.i[off + t], rj = s.neg[off + t];
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

// Write phase: one update of each row this thread touched (and owns) in the batch.
void ApplyBatch(const Problem& p, std::vector<int32_t>& slot_user,
                std::vector<int32_t>& slot_item, Accumulator& a, float bc1, float bc2) {
  const int64_t d = p.d;
  const float lr = p.lr;
  for (size_t n = 0; n < a.rows.size(); ++n) {
    if (n + kAhead < a.rows.size()) {
      const int64_t ahead = a.rows[n + kAhead];
      const bool ahead_item = a.is_item[n + kAhead];
      PrefetchRow((ahead_item ? p.item : p.user) + ahead * d, d);
      if (p.adam) PrefetchRow((ahead_item ? p.mv_item : p.mv_user) + ahead * 2 * d, 2 * d);
    }
    const int64_t row = a.rows[n];
    const bool item = a.is_item[n];
    const float* __restrict acc = a.acc.data() + int64_t(n) * 2 * d;
    float* __restrict emb = (item ? p.item : p.user) + row * d;
    (item ? slot_item : slot_user)[row] = -1;
    if (!p.adam) {
      for (int64_t k = 0; k < d; ++k) emb[k] -= lr * acc[k];
      continue;
    }
    float* __restrict m = (item ? p.mv_item : p.mv_user) + row * 2 * d;
    AdamRow(emb, m, m + d, acc, a.repeated[n] ? acc + d : nullptr, d, lr, bc1, bc2);
  }
}

// The constants of batch b: 1 / W with W = max(sum w, 1), and Adam's bias corrections.
struct BatchConstants {
  float inv_w, bc1, bc2;
  BatchConstants(const Problem& p, int64_t b) {
    float sw = 0;
    for (int64_t t = 0; t < p.batch; ++t) sw += p.w[b * p.batch + t];
    inv_w = 1.0f / std::max(sw, 1.0f);
    const float step = static_cast<float>(p.steps + b + 1);
    bc1 = 1.0f - std::pow(kB1, step);
    bc2 = 1.0f - std::pow(kB2, step);
  }
};

// Batch b in one pass over its triples: negatives, then per triple its scalars and the
// gradients of its three rows (summed per row in batch order), then one update per row.
// The same arithmetic, in the same order, as phases 1-3 on one thread.
void SinglePassBatch(const Problem& p, const PositiveSet& positives, Lane& lane, int64_t b) {
  const int64_t d = p.d, off = b * p.batch;
  const BatchConstants c(p, b);
  ResolveNegatives(p, positives, off, off + p.batch, lane.neg.data());
  Accumulator& a = lane.a;
  a.Clear();
  float* __restrict g = a.g.data();
  float total_loss = 0;
  for (int64_t t = 0; t < p.batch; ++t) {
    if (t + kAhead < p.batch) {
      PrefetchRow(p.user + int64_t(p.u[off + t + kAhead]) * d, d);
      PrefetchRow(p.item + int64_t(p.i[off + t + kAhead]) * d, d);
      PrefetchRow(p.item + int64_t(lane.neg[t + kAhead]) * d, d);
    }
    const int64_t ru = p.u[off + t], ri = p.i[off + t], rj = lane.neg[t];
    const float* __restrict pu = p.user + ru * d;
    const float* __restrict qi = p.item + ri * d;
    const float* __restrict qj = p.item + rj * d;
    float loss, coef, r;
    Scalars(p, pu, qi, qj, p.w[off + t], c.inv_w, &loss, &coef, &r);
    total_loss += loss;
    UserGrad(g, coef, qi, qj, r, pu, d);
    Accumulate(a, lane.slot_user, ru, false, g, d, p.adam);
    Axpby(g, coef, pu, r, qi, d);
    Accumulate(a, lane.slot_item, ri, true, g, d, p.adam);
    Axpby(g, -coef, pu, r, qj, d);
    Accumulate(a, lane.slot_item, rj, true, g, d, p.adam);
  }
  // every read of the batch is done: the updates
  ApplyBatch(p, lane.slot_user, lane.slot_item, a, c.bc1, c.bc2);
  p.losses[b] = total_loss * c.inv_w;
}

// Hogwild (n_threads > 1): thread `tid` runs batches tid, tid + n, ... in one pass each,
// reading and updating the shared rows without synchronisation (Recht et al. 2011, as
// `implicit` does), so a row may be read while another thread updates it and two
// threads' updates of a row may interleave: results depend on thread timing. One thread
// runs the batches in order and gives exactly the deterministic result.
void RunSinglePass(const Problem& p, int n_threads) {
  const PositiveSet positives(p);
  auto work = [&](int tid) {
    Lane lane(p);
    for (int64_t b = tid; b < p.n_batches; b += n_threads) SinglePassBatch(p, positives, lane, b);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n_threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
}

// One problem on n_threads >= 2 threads, deterministically: every batch in three phases
// with barriers between them: (1) by triple range, each triple's scalars; (2) each thread
// sums, in batch order, the gradients of the rows it owns; (3) it updates them. Every
// row's sum has the same terms in the same order for any count, so the result is the
// same for any count (and equals RunSinglePass on one thread).
void RunPhased(const Problem& p, int n_threads) {
  Shared s(p);
  const PositiveSet positives(p);
  SpinBarrier barrier(n_threads);
  auto work = [&](int tid) {
    const Owner own{tid, n_threads};
    const int64_t total = p.n_batches * p.batch;
    const int64_t chunk = (total + n_threads - 1) / n_threads;
    const int64_t lo = std::min(total, tid * chunk), hi = std::min(total, (tid + 1) * chunk);
    ResolveNegatives(p, positives, lo, hi, s.neg.data() + lo);
    barrier.Wait();  // every negative of the epoch is resolved
    Lane lane(p);  // this thread's slot maps and sums (its rows only)
    const int64_t per = (p.batch + n_threads - 1) / n_threads;
    for (int64_t b = 0; b < p.n_batches; ++b) {
      const BatchConstants c(p, b);
      TripleScalars(p, s, b, std::min(p.batch, tid * per), std::min(p.batch, (tid + 1) * per),
                    c.inv_w);
      barrier.Wait();  // every triple's scalars are known
      SumOwned(p, s, lane, b, own);
      if (tid == 0) {
        float total_loss = 0;
        for (int64_t t = 0; t < p.batch; ++t) total_loss += s.loss[t];
        p.losses[b] = total_loss * c.inv_w;
      }
      barrier.Wait();  // every read of the batch is done
      ApplyBatch(p, lane.slot_user, lane.slot_item, lane.a, c.bc1, c.bc2);
      barrier.Wait();  // every row is updated before the next batch reads it
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
      return ffi::Error::InvalidArgument(std::string("bpr_epoch: index out of range in ") +
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

ffi::Error BprEpochImpl(ffi::Buffer<ffi::F32> user, ffi::Buffer<ffi::F32> item,
                        ffi::Buffer<ffi::F32> mv_user, ffi::Buffer<ffi::F32> mv_item,
                        ffi::Buffer<ffi::S32> steps, ffi::Buffer<ffi::S32> u,
                        ffi::Buffer<ffi::S32> i, ffi::Buffer<ffi::S32> j,
                        ffi::Buffer<ffi::S32> keys, ffi::Buffer<ffi::S32> indptr,
                        ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> lr,
                        ffi::Buffer<ffi::F32> l2, ffi::ResultBuffer<ffi::F32> user_out,
                        ffi::ResultBuffer<ffi::F32> item_out,
                        ffi::ResultBuffer<ffi::F32> mv_user_out,
                        ffi::ResultBuffer<ffi::F32> mv_item_out,
                        ffi::ResultBuffer<ffi::S32> steps_out,
                        ffi::ResultBuffer<ffi::F32> losses, int64_t adam, int64_t n_threads,
                        int64_t hogwild) {
  const auto ud = user.dimensions(), id = item.dimensions(), td = u.dimensions();
  if (ud.size() < 2 || id.size() < 2 || td.size() < 2)
    return ffi::Error::InvalidArgument("bpr_epoch: tables need [..., rows, d], triples [..., nb, B]");
  const int64_t n_users = ud[ud.size() - 2], d = ud[ud.size() - 1];
  const int64_t n_items = id[id.size() - 2];
  const int64_t nb = td[td.size() - 2], B = td[td.size() - 1];
  const int64_t S = lr.element_count();
  const int64_t n_cand = j.dimensions().back();
  const int64_t n_keys = keys.dimensions().back();
  if (n_cand < 1 || int64_t(j.element_count()) != S * nb * B * n_cand)
    return ffi::Error::InvalidArgument("bpr_epoch: candidates need [..., nb, B, n_cand]");
  if (n_cand > 1 && (int64_t(indptr.element_count()) != S * (n_users + 1) ||
                     int64_t(keys.element_count()) != S * n_keys))
    return ffi::Error::InvalidArgument("bpr_epoch: rejection needs keys [..., E], indptr [..., U+1]");
  if (d != id[id.size() - 1] || S < 1 || int64_t(user.element_count()) != S * n_users * d ||
      int64_t(item.element_count()) != S * n_items * d ||
      int64_t(u.element_count()) != S * nb * B || i.element_count() != u.element_count() ||
      w.element_count() != u.element_count() ||
      int64_t(l2.element_count()) != S || int64_t(steps.element_count()) != S)
    return ffi::Error::InvalidArgument("bpr_epoch: inconsistent shapes");
  if (adam && (int64_t(mv_user.element_count()) != 2 * S * n_users * d ||
               int64_t(mv_item.element_count()) != 2 * S * n_items * d))
    return ffi::Error::InvalidArgument("bpr_epoch: Adam moments need [..., rows, 2d]");
  const int64_t E = u.element_count();
  if (auto e = CheckIndices(u.typed_data(), E, n_users, "users"); e.failure()) return e;
  if (auto e = CheckIndices(i.typed_data(), E, n_items, "positives"); e.failure()) return e;
  if (auto e = CheckIndices(j.typed_data(), E * n_cand, n_items, "negatives"); e.failure())
    return e;
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
    p.u = u.typed_data() + s * nb * B;
    p.i = i.typed_data() + s * nb * B;
    p.j = j.typed_data() + s * nb * B * n_cand;
    p.n_cand = n_cand;
    p.keys = n_cand > 1 ? keys.typed_data() + s * n_keys : nullptr;
    p.indptr = n_cand > 1 ? indptr.typed_data() + s * (n_users + 1) : nullptr;
    p.w = w.typed_data() + s * nb * B;
    p.n_batches = nb;
    p.batch = B;
    p.lr = lr.typed_data()[s];
    p.l2 = l2.typed_data()[s];
    p.steps = steps.typed_data()[s];
    p.losses = losses->typed_data() + s * nb;
    p.adam = adam != 0;
    steps_out->typed_data()[s] = p.steps + static_cast<int32_t>(nb);
  }
  const int threads = static_cast<int>(std::max<int64_t>(1, n_threads));
  if (S == 1) {
    // Deterministic phases leave one core to XLA's runtime: its worker threads spin for a
    // while after each operation, and a barrier waiting on a descheduled thread stalls
    // every thread (on 2 cores the phases ran slower than one thread; without XLA's
    // intra-op threads they ran 1.5x faster). Hogwild has no barriers to stall.
    if (hogwild && threads > 1)
      RunSinglePass(problems[0], threads);
    else if (threads > 2 && B >= 64)
      RunPhased(problems[0], threads - 1);
    else
      RunSinglePass(problems[0], 1);
    return ffi::Error::Success();
  }
  // several problems: one per thread, dealt round-robin
  const int workers = static_cast<int>(std::min<int64_t>(threads, S));
  std::vector<std::thread> pool;
  auto work = [&](int tid) {
    for (int64_t s = tid; s < S; s += workers) RunSinglePass(problems[s], 1);
  };
  for (int t = 1; t < workers; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ComplemjaxBprEpoch, BprEpochImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // user
                                  .Arg<ffi::Buffer<ffi::F32>>()  // item
                                  .Arg<ffi::Buffer<ffi::F32>>()  // mv_user
                                  .Arg<ffi::Buffer<ffi::F32>>()  // mv_item
                                  .Arg<ffi::Buffer<ffi::S32>>()  // steps
                                  .Arg<ffi::Buffer<ffi::S32>>()  // u
                                  .Arg<ffi::Buffer<ffi::S32>>()  // i
                                  .Arg<ffi::Buffer<ffi::S32>>()  // j candidates
                                  .Arg<ffi::Buffer<ffi::S32>>()  // keys
                                  .Arg<ffi::Buffer<ffi::S32>>()  // indptr
                                  .Arg<ffi::Buffer<ffi::F32>>()  // w
                                  .Arg<ffi::Buffer<ffi::F32>>()  // lr
                                  .Arg<ffi::Buffer<ffi::F32>>()  // l2
                                  .Ret<ffi::Buffer<ffi::F32>>()  // user
                                  .Ret<ffi::Buffer<ffi::F32>>()  // item
                                  .Ret<ffi::Buffer<ffi::F32>>()  // mv_user
                                  .Ret<ffi::Buffer<ffi::F32>>()  // mv_item
                                  .Ret<ffi::Buffer<ffi::S32>>()  // steps
                                  .Ret<ffi::Buffer<ffi::F32>>()  // losses
                                  .Attr<int64_t>("adam")
                                  .Attr<int64_t>("n_threads")
                                  .Attr<int64_t>("hogwild"));
