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
// Threads: a vmapped call (several seeds / grid points) runs one problem per thread; a
// single problem splits each batch: the per-triple gradients by triple range, then the
// row updates by row ownership (row % n_threads), each thread summing its rows'
// occurrences in batch order. The result is therefore the same for any thread count.

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

// One BPR problem (one seed / grid point): tables updated in place.
// Rows prefetched this many iterations ahead of their use.
constexpr int64_t kAhead = 6;

inline void PrefetchRow(const float* row, int64_t d) {
  for (int64_t k = 0; k < d; k += 16) __builtin_prefetch(row + k);
}

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

// Scratch of one problem: per-occurrence gradients, per-triple losses, and the
// row -> accumulator slot maps (-1: row not touched in this batch).
struct Scratch {
  std::vector<float> grads;  // [3B, d]: users, then positives, then negatives
  std::vector<float> loss;   // [B]
  std::vector<int32_t> neg;  // [B] resolved negatives
  std::vector<int32_t> slot_user, slot_item;
  explicit Scratch(const Problem& p)
      : grads(3 * p.batch * p.d),
        loss(p.batch),
        neg(p.batch),
        slot_user(p.n_users, -1),
        slot_item(p.n_items, -1) {}
};

// Per-thread accumulators of summed gradients (and squared gradients) per touched row.
struct Accumulator {
  std::vector<float> acc;       // [slots, 2d]
  std::vector<int64_t> rows;    // touched rows, in first-touch order
  std::vector<char> is_item;    // which table each touched row belongs to
  Accumulator(int64_t batch, int64_t d) : acc(3 * batch * 2 * d) {
    rows.reserve(3 * batch);
    is_item.reserve(3 * batch);
  }
};

// Gradients of one triple: coef = dloss/dx, r = 2 l2 w / W.
inline void TripleRowGrads(float* __restrict gu, float* __restrict gi, float* __restrict gj,
                           const float* __restrict pu, const float* __restrict qi,
                           const float* __restrict qj, int64_t d, float coef, float r) {
  for (int64_t k = 0; k < d; ++k) {
    gu[k] = coef * (qi[k] - qj[k]) + r * pu[k];
    gi[k] = coef * pu[k] + r * qi[k];
    gj[k] = -coef * pu[k] + r * qj[k];
  }
}

// Whether (user, item) is a training pair: binary search of the user's sorted keys.
inline bool IsPositive(const Problem& p, int32_t user, int32_t item) {
  const int32_t key = user * static_cast<int32_t>(p.n_items) + item;
  const int32_t* first = p.keys + p.indptr[user];
  const int32_t* last = p.keys + p.indptr[user + 1];
  const int32_t* it = std::lower_bound(first, last, key);
  return it != last && *it == key;
}

// The negative of a triple: the first candidate that is not a training pair of the user,
// else the last candidate (the rejection of complemjax.models.bpr.sample_bpr_triples).
inline int32_t ResolveNegative(const Problem& p, int64_t t) {
  const int32_t* cand = p.j + t * p.n_cand;
  for (int64_t r = 0; r + 1 < p.n_cand; ++r) {
    if (!IsPositive(p, p.u[t], cand[r])) return cand[r];
  }
  return cand[p.n_cand - 1];
}

// Phase A: per-triple loss and gradients for triples [lo, hi) of batch `b`.
void TripleGrads(const Problem& p, Scratch& s, int64_t b, int64_t lo, int64_t hi, float inv_w) {
  const int64_t d = p.d, B = p.batch, off = b * B;
  for (int64_t t = lo; t < hi; ++t) s.neg[t] = ResolveNegative(p, off + t);
  for (int64_t t = lo; t < hi; ++t) {
    if (t + kAhead < hi) {  // the rows are scattered over tables larger than L2
      PrefetchRow(p.user + int64_t(p.u[off + t + kAhead]) * d, d);
      PrefetchRow(p.item + int64_t(p.i[off + t + kAhead]) * d, d);
      PrefetchRow(p.item + int64_t(s.neg[t + kAhead]) * d, d);
    }
    const float* pu = p.user + int64_t(p.u[off + t]) * d;
    const float* qi = p.item + int64_t(p.i[off + t]) * d;
    const float* qj = p.item + int64_t(s.neg[t]) * d;
    float x, norms;
    DotAndNorms(pu, qi, qj, d, &x, &norms);
    const float wt = p.w[off + t];
    // softplus(-x) = max(-x, 0) + log1p(e) and sigmoid(-x), from one e = exp(-|x|)
    const float e = std::exp(-std::fabs(x));
    const float sig = (x >= 0 ? e : 1.0f) / (1.0f + e);
    s.loss[t] = wt * (std::max(-x, 0.0f) + std::log(1.0f + e) + p.l2 * norms);
    const float coef = -wt * sig * inv_w;
    const float r = 2.0f * p.l2 * wt * inv_w;
    TripleRowGrads(s.grads.data() + t * d, s.grads.data() + (B + t) * d,
                   s.grads.data() + (2 * B + t) * d, pu, qi, qj, d, coef, r);
  }
}

inline void SetRow(float* __restrict s1, float* __restrict s2, const float* __restrict g,
                   int64_t d) {
  for (int64_t k = 0; k < d; ++k) {
    s1[k] = g[k];
    s2[k] = g[k] * g[k];
  }
}

inline void AddRow(float* __restrict s1, float* __restrict s2, const float* __restrict g,
                   int64_t d) {
  for (int64_t k = 0; k < d; ++k) {
    s1[k] += g[k];
    s2[k] += g[k] * g[k];
  }
}

// Adam on one row: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g2, row -= lr m^ / (sqrt(v^) + eps).
inline void AdamRow(float* __restrict emb, float* __restrict m, float* __restrict v,
                    const float* __restrict g, const float* __restrict g2, int64_t d, float lr,
                    float bc1, float bc2) {
  for (int64_t k = 0; k < d; ++k) {
    const float mk = kB1 * m[k] + (1.0f - kB1) * g[k];
    const float vk = kB2 * v[k] + (1.0f - kB2) * g2[k];
    m[k] = mk;
    v[k] = vk;
    emb[k] -= lr * ((mk / bc1) / (std::sqrt(vk / bc2) + kEps));
  }
}

inline void Accumulate(Accumulator& a, std::vector<int32_t>& slot_of, int64_t row, bool item,
                       const float* g, int64_t d) {
  int32_t slot = slot_of[row];
  float* acc;
  if (slot < 0) {
    slot = static_cast<int32_t>(a.rows.size());
    slot_of[row] = slot;
    a.rows.push_back(row);
    a.is_item.push_back(item);
    acc = a.acc.data() + int64_t(slot) * 2 * d;
    SetRow(acc, acc + d, g, d);
    return;
  }
  acc = a.acc.data() + int64_t(slot) * 2 * d;
  AddRow(acc, acc + d, g, d);
}

// Whether thread `tid` of `n` owns a row (row % n == tid; no division for n a power of 2).
struct Owner {
  int tid, n;
  bool operator()(int64_t row) const {
    if (n == 1) return true;
    if ((n & (n - 1)) == 0) return (row & (n - 1)) == tid;
    return row % n == tid;
  }
};

// Phase B: this thread's rows (row % n_threads == tid) of batch `b`: sum the occurrence
// gradients in batch order, then update each touched row once.
void RowUpdates(const Problem& p, Scratch& s, Accumulator& a, int64_t b, int tid, int n_threads,
                float bc1, float bc2) {
  const int64_t d = p.d, B = p.batch, off = b * B;
  a.rows.clear();
  a.is_item.clear();
  const Owner owns{tid, n_threads};
  for (int64_t t = 0; t < B; ++t) {
    const int64_t row = p.u[off + t];
    if (owns(row)) Accumulate(a, s.slot_user, row, false, s.grads.data() + t * d, d);
  }
  for (int64_t t = 0; t < 2 * B; ++t) {
    const int64_t row = t < B ? p.i[off + t] : s.neg[t - B];
    if (owns(row)) Accumulate(a, s.slot_item, row, true, s.grads.data() + (B + t) * d, d);
  }
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
    (item ? s.slot_item : s.slot_user)[row] = -1;
    if (!p.adam) {
      for (int64_t k = 0; k < d; ++k) emb[k] -= lr * acc[k];
      continue;
    }
    float* __restrict m = (item ? p.mv_item : p.mv_user) + row * 2 * d;
    float* __restrict v = m + d;
    AdamRow(emb, m, v, acc, acc + d, d, lr, bc1, bc2);
  }
}

float BatchInvWeight(const Problem& p, int64_t b) {
  float sw = 0;
  for (int64_t t = 0; t < p.batch; ++t) sw += p.w[b * p.batch + t];
  return 1.0f / std::max(sw, 1.0f);
}

void BiasCorrections(const Problem& p, int64_t b, float* bc1, float* bc2) {
  const float t = static_cast<float>(p.steps + b + 1);
  *bc1 = 1.0f - std::pow(kB1, t);
  *bc2 = 1.0f - std::pow(kB2, t);
}

void FinishLoss(const Problem& p, const Scratch& s, int64_t b, float inv_w) {
  float total = 0;
  for (int64_t t = 0; t < p.batch; ++t) total += s.loss[t];
  p.losses[b] = total * inv_w;
}

// One problem on one thread.
void RunSerial(const Problem& p) {
  Scratch s(p);
  Accumulator a(p.batch, p.d);
  for (int64_t b = 0; b < p.n_batches; ++b) {
    const float inv_w = BatchInvWeight(p, b);
    float bc1 = 1, bc2 = 1;
    if (p.adam) BiasCorrections(p, b, &bc1, &bc2);
    TripleGrads(p, s, b, 0, p.batch, inv_w);
    RowUpdates(p, s, a, b, 0, 1, bc1, bc2);
    FinishLoss(p, s, b, inv_w);
  }
}

// One problem on n_threads threads (same result as RunSerial).
void RunParallel(const Problem& p, int n_threads) {
  Scratch s(p);
  SpinBarrier barrier(n_threads);
  auto work = [&](int tid) {
    Accumulator a(p.batch, p.d);
    const int64_t chunk = (p.batch + n_threads - 1) / n_threads;
    const int64_t lo = std::min<int64_t>(p.batch, tid * chunk);
    const int64_t hi = std::min<int64_t>(p.batch, lo + chunk);
    for (int64_t b = 0; b < p.n_batches; ++b) {
      const float inv_w = BatchInvWeight(p, b);
      float bc1 = 1, bc2 = 1;
      if (p.adam) BiasCorrections(p, b, &bc1, &bc2);
      TripleGrads(p, s, b, lo, hi, inv_w);
      barrier.Wait();  // every gradient of the batch is written
      RowUpdates(p, s, a, b, tid, n_threads, bc1, bc2);
      if (tid == 0) FinishLoss(p, s, b, inv_w);
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
                        ffi::ResultBuffer<ffi::F32> losses, int64_t adam, int64_t n_threads) {
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
    if (threads > 1 && B >= 64) {
      RunParallel(problems[0], threads);
    } else {
      RunSerial(problems[0]);
    }
    return ffi::Error::Success();
  }
  // several problems: one per thread, dealt round-robin
  const int workers = static_cast<int>(std::min<int64_t>(threads, S));
  std::vector<std::thread> pool;
  auto work = [&](int tid) {
    for (int64_t s = tid; s < S; s += workers) RunSerial(problems[s]);
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
                                  .Attr<int64_t>("n_threads"));
