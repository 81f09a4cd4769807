// Exact top-k of each row of a score matrix, ties to the lower index, as an XLA FFI call.
//
// The same selection as complemjax.ranking's pure-JAX top-k (lax.top_k on scores with
// -0.0 mapped to +0.0): the k entries that come first in the order (score descending,
// index ascending), returned in that order. NaN scores give unspecified results (the
// callers count NaN separately).
//
// Per row: the maxima of blocks of 64 scores (vector maxima), t = the k-th largest of
// them, then only the blocks whose maximum is >= t are read again, their entries >= t
// collected and the first k kept (see TopkRow: exact, since every top-k entry is >= t).
// Rows are split over threads (no synchronisation: each row is one thread's).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using Entry = std::pair<float, int32_t>;

// a comes before b in the order (score desc, index asc); -0.0 == +0.0 as floats.
inline bool Before(const Entry& a, const Entry& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

constexpr int64_t kBlock = 64;

// 16 floats as one vector (GCC/Clang vector extension: AVX-512, 2 AVX or 4 SSE/NEON ops).
typedef float V16 __attribute__((vector_size(64)));

inline V16 Load16(const float* s) {
  V16 v;
  std::memcpy(&v, s, sizeof(v));
  return v;
}

// Maximum of s[0..63] (a vector maximum, then 16 lanes).
inline float Max64(const float* __restrict s) {
  V16 m = Load16(s);
  for (int b = 1; b < 4; ++b) {
    const V16 x = Load16(s + 16 * b);
    m = m > x ? m : x;
  }
  float r = m[0];
  for (int l = 1; l < 16; ++l) r = m[l] > r ? m[l] : r;
  return r;
}

// Scratch of one thread: block maxima and candidates.
struct Scratch {
  std::vector<float> block_max, order;
  std::vector<Entry> cand;
};

// Top-k of one row. Blocks of 64 entries: t = the k-th largest block maximum is at most
// the k-th largest score (k blocks each hold an entry >= t), so every top-k entry is >= t
// and lies in a block whose maximum is >= t. Those entries are collected and the first k
// in (score desc, index asc) are kept.
void TopkRow(const float* __restrict s, int64_t n, int64_t k, float* vals, int32_t* idx,
             Scratch& w) {
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  w.block_max.resize(n_blocks);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t lo = b * kBlock;
    if (lo + kBlock <= n) {
      w.block_max[b] = Max64(s + lo);
    } else {
      float m = s[lo];
      for (int64_t j = lo + 1; j < n; ++j) m = s[j] > m ? s[j] : m;
      w.block_max[b] = m;
    }
  }
  float t = -std::numeric_limits<float>::infinity();
  if (n_blocks > k) {
    w.order.assign(w.block_max.begin(), w.block_max.end());
    std::nth_element(w.order.begin(), w.order.begin() + (k - 1), w.order.end(),
                     std::greater<float>());
    t = w.order[k - 1];
  }
  w.cand.clear();
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (!(w.block_max[b] >= t)) continue;
    const int64_t hi = std::min(n, (b + 1) * kBlock);
    for (int64_t j = b * kBlock; j < hi; ++j)
      if (s[j] >= t || n_blocks <= k) w.cand.emplace_back(s[j] == 0.0f ? 0.0f : s[j], int32_t(j));
  }
  if (int64_t(w.cand.size()) < k) {  // NaN block maxima: fall back to the whole row
    w.cand.clear();
    for (int64_t j = 0; j < n; ++j) w.cand.emplace_back(s[j] == 0.0f ? 0.0f : s[j], int32_t(j));
  }
  std::partial_sort(w.cand.begin(), w.cand.begin() + k, w.cand.end(), Before);
  for (int64_t r = 0; r < k; ++r) {
    vals[r] = w.cand[r].first;
    idx[r] = w.cand[r].second;
  }
}

ffi::Error TopkRowsImpl(ffi::Buffer<ffi::F32> scores, ffi::ResultBuffer<ffi::F32> vals,
                        ffi::ResultBuffer<ffi::S32> idx, int64_t k, int64_t n_threads) {
  const auto dims = scores.dimensions();
  if (dims.size() < 1) return ffi::Error::InvalidArgument("topk_rows: scores need [..., n]");
  const int64_t n = dims.back();
  if (k < 1 || k > n) return ffi::Error::InvalidArgument("topk_rows: need 1 <= k <= n");
  const int64_t rows = n == 0 ? 0 : int64_t(scores.element_count()) / n;
  const float* s = scores.typed_data();
  float* v = vals->typed_data();
  int32_t* ix = idx->typed_data();
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(n_threads, rows / 8));
  auto work = [&](int64_t tid) {
    Scratch scratch;
    const int64_t lo = rows * tid / workers, hi = rows * (tid + 1) / workers;
    for (int64_t r = lo; r < hi; ++r) TopkRow(s + r * n, n, k, v + r * k, ix + r * k, scratch);
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < workers; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ComplemjaxTopkRows, TopkRowsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scores
                                  .Ret<ffi::Buffer<ffi::F32>>()  // values
                                  .Ret<ffi::Buffer<ffi::S32>>()  // indices
                                  .Attr<int64_t>("k")
                                  .Attr<int64_t>("n_threads"));
