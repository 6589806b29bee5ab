// Few-row matrix products for streaming convolutions, compiled for the machine that runs them.
//
// A streaming call of a low-rate conv multiplies a few rows (batch items x frames) by a large
// weight matrix: its cost is reading the weights. BLAS's few-row kernels re-read them for each
// pair of rows or leave the memory bus idle between short dot products; these kernels read
// each weight element once per call for any number of rows and keep several weight rows in
// flight. One op, streamify::rows_by_weight(rows [M, K], weight [N, K]) -> [M, N] = rows @ weight.t():
//   - weight rows contiguous (a conv weight viewed as [out, in * kernel]): dot products of
//     4 weight rows with up to 4 rows at a time;
//   - weight columns contiguous (a transposed conv weight [in, out * kernel] viewed as its
//     transpose): 4 weight rows at a time added into every output row.
// float32 and float64; anything else (other devices, dtypes, layouts) falls back to at::mm.
// No bias: the caller adds it, as for the portable products.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

template <typename T>
struct Vec {
  static constexpr int lanes = 64 / sizeof(T);
  typedef T type __attribute__((vector_size(64)));
};

template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

// Weight rows are read 4 at a time, each as one stream; the hardware prefetcher restarts cold at
// every new row, so each stream also prefetches this far ahead, into the row it reads next once
// this one ends (10-25 % more bandwidth from memory on one core than without).
constexpr int64_t kPrefetchBytes = 1024;

// elements per piece of 4 weight rows kept in L1 while several rows of x take them (1 KiB of float32)
constexpr int64_t kPiece = 256;

template <typename T>
inline void prefetch_ahead(const T* row, int64_t ldw, int rows_per_pass, int64_t at, int64_t begin, int64_t end) {
  const int64_t ahead = at + kPrefetchBytes / static_cast<int64_t>(sizeof(T));
  const T* target = ahead < end ? row + ahead : row + rows_per_pass * ldw + begin + (ahead - end);
  __builtin_prefetch(target, 0, 3);
}

template <typename V, typename T>
inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// acc[j * 4 + m] += sum over k in [k0, k1) (whole vectors) of x[m, k] * w[j, k], lane by lane,
// for MT rows of x and NT rows of w.
template <typename T, int MT, int NT>
void dot_tile(const T* x, int64_t ldx, const T* w, int64_t ldw, int64_t k0, int64_t k1, int64_t k_len,
              typename Vec<T>::type* acc) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  V sums[NT][MT];
  for (int j = 0; j < NT; ++j)
    for (int m = 0; m < MT; ++m) sums[j][m] = acc[j * 4 + m];
  for (int64_t k = k0; k < k1; k += L) {
    V wv[NT];
    for (int j = 0; j < NT; ++j) {
      prefetch_ahead(w + j * ldw, ldw, NT, k, 0, k_len);
      wv[j] = load<V>(w + j * ldw + k);
    }
    for (int m = 0; m < MT; ++m) {
      const V xv = load<V>(x + m * ldx + k);
      for (int j = 0; j < NT; ++j) sums[j][m] += wv[j] * xv;
    }
  }
  for (int j = 0; j < NT; ++j)
    for (int m = 0; m < MT; ++m) acc[j * 4 + m] = sums[j][m];
}

template <typename T, int MT>
void dot_tile_rows(int nt, const T* x, int64_t ldx, const T* w, int64_t ldw, int64_t k0, int64_t k1, int64_t k_len,
                   typename Vec<T>::type* acc) {
  switch (nt) {
    case 1: return dot_tile<T, MT, 1>(x, ldx, w, ldw, k0, k1, k_len, acc);
    case 2: return dot_tile<T, MT, 2>(x, ldx, w, ldw, k0, k1, k_len, acc);
    case 3: return dot_tile<T, MT, 3>(x, ldx, w, ldw, k0, k1, k_len, acc);
    default: return dot_tile<T, MT, 4>(x, ldx, w, ldw, k0, k1, k_len, acc);
  }
}

template <typename T>
void dot_tile_any(int mt, int nt, const T* x, int64_t ldx, const T* w, int64_t ldw, int64_t k0, int64_t k1,
                  int64_t k_len, typename Vec<T>::type* acc) {
  switch (mt) {
    case 1: return dot_tile_rows<T, 1>(nt, x, ldx, w, ldw, k0, k1, k_len, acc);
    case 2: return dot_tile_rows<T, 2>(nt, x, ldx, w, ldw, k0, k1, k_len, acc);
    case 3: return dot_tile_rows<T, 3>(nt, x, ldx, w, ldw, k0, k1, k_len, acc);
    default: return dot_tile_rows<T, 4>(nt, x, ldx, w, ldw, k0, k1, k_len, acc);
  }
}

// rows [M, K] (stride ldx) times weight [N, K] (row stride ldw, unit column stride) -> y [M, N].
// Up to 4 rows: one pass over each block of 4 weight rows. More rows: the block is taken in
// pieces of kPiece elements that stay in L1 while every 4 rows of x take them (partial sums kept
// as vectors), so the weights are still read from memory once.
template <typename T>
void by_weight_rows(const T* x, int64_t ldx, int64_t m_len, const T* w, int64_t ldw, int64_t n_len,
                    int64_t k_len, T* y) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  const int64_t k_vec = k_len / L * L;
  const int64_t piece = m_len <= 4 ? std::max<int64_t>(k_vec, L) : kPiece;
  const int64_t tiles = (m_len + 3) / 4;
  const int64_t blocks = (n_len + 3) / 4;
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, k_len * sizeof(T) * 4));
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    std::vector<V> acc(tiles * 16);
    for (int64_t b = begin; b < end; ++b) {
      const int64_t n = b * 4;
      const int nt = static_cast<int>(std::min<int64_t>(4, n_len - n));
      std::fill(acc.begin(), acc.end(), V{});
      for (int64_t kp = 0; kp < k_vec; kp += piece) {
        const int64_t kq = std::min(k_vec, kp + piece);
        for (int64_t t = 0; t < tiles; ++t) {
          const int mt = static_cast<int>(std::min<int64_t>(4, m_len - 4 * t));
          dot_tile_any<T>(mt, nt, x + 4 * t * ldx, ldx, w + n * ldw, ldw, kp, kq, k_len, acc.data() + 16 * t);
        }
      }
      for (int64_t t = 0; t < tiles; ++t) {
        const int mt = static_cast<int>(std::min<int64_t>(4, m_len - 4 * t));
        for (int j = 0; j < nt; ++j) {
          for (int m = 0; m < mt; ++m) {
            const V& lanes = acc[16 * t + j * 4 + m];
            const T* xm = x + (4 * t + m) * ldx;
            const T* wj = w + (n + j) * ldw;
            T sum = 0;
            for (int l = 0; l < L; ++l) sum += lanes[l];
            for (int64_t r = k_vec; r < k_len; ++r) sum += xm[r] * wj[r];
            y[(4 * t + m) * n_len + n + j] = sum;
          }
        }
      }
    }
  });
}

// y[0:L] += c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3, in that order
template <typename V, typename T>
inline void add_weighted(T* y, T c0, T c1, T c2, T c3, const V& v0, const V& v1, const V& v2, const V& v3) {
  V acc = load<V>(y);
  acc += c0 * v0;
  acc += c1 * v1;
  acc += c2 * v2;
  acc += c3 * v3;
  store<V>(y, acc);
}

// rows [M, K] (stride ldx) times wt [K, N] (row stride ldw, unit column stride) -> y [M, N]:
// the weight of a transposed conv, read row by row (4 at a time) and added into every output row.
template <typename T>
void by_weight_columns(const T* x, int64_t ldx, int64_t m_len, const T* wt, int64_t ldw, int64_t n_len,
                       int64_t k_len, T* y) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  // whole weight rows, 4 at a time, are read in order (one stream each); each thread takes a
  // range of output columns
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n_len / (4 * L)));
  const int64_t chunk = ((n_len + threads - 1) / threads + L - 1) / L * L;
  const int64_t chunks = (n_len + chunk - 1) / chunk;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t n0 = c * chunk;
      const int64_t n1 = std::min(n_len, n0 + chunk);
      for (int64_t m = 0; m < m_len; ++m) std::fill(y + m * n_len + n0, y + m * n_len + n1, T(0));
      for (int64_t k = 0; k < k_len; k += 4) {
        const int kb = static_cast<int>(std::min<int64_t>(4, k_len - k));
        const T* w0 = wt + k * ldw;
        const T* w1 = kb > 1 ? w0 + ldw : w0;
        const T* w2 = kb > 2 ? w0 + 2 * ldw : w0;
        const T* w3 = kb > 3 ? w0 + 3 * ldw : w0;
        // a piece of the 4 weight rows stays in L1 while every output row takes it, two at a time
        for (int64_t p0 = n0; p0 < n1; p0 += kPiece) {
          const int64_t p1 = std::min(n1, p0 + kPiece);
          for (int64_t m = 0; m < m_len; m += 2) {
            const bool pair = m + 1 < m_len;
            const T* xa = x + m * ldx + k;
            const T* xb = pair ? xa + ldx : xa;
            const T a0 = xa[0], a1 = kb > 1 ? xa[1] : T(0), a2 = kb > 2 ? xa[2] : T(0), a3 = kb > 3 ? xa[3] : T(0);
            const T b0 = xb[0], b1 = kb > 1 ? xb[1] : T(0), b2 = kb > 2 ? xb[2] : T(0), b3 = kb > 3 ? xb[3] : T(0);
            T* ya = y + m * n_len;
            T* yb = pair ? ya + n_len : ya;
            int64_t n = p0;
            for (; n + L <= p1; n += L) {
              if (m == 0) {  // the first output rows read the weight rows from memory
                prefetch_ahead(w0, ldw, 4, n, n0, n1);
                prefetch_ahead(w1, ldw, 4, n, n0, n1);
                prefetch_ahead(w2, ldw, 4, n, n0, n1);
                prefetch_ahead(w3, ldw, 4, n, n0, n1);
              }
              const V v0 = load<V>(w0 + n), v1 = load<V>(w1 + n), v2 = load<V>(w2 + n), v3 = load<V>(w3 + n);
              add_weighted(ya + n, a0, a1, a2, a3, v0, v1, v2, v3);
              if (pair) add_weighted(yb + n, b0, b1, b2, b3, v0, v1, v2, v3);
            }
            for (; n < p1; ++n) {
              ya[n] += a0 * w0[n] + a1 * w1[n] + a2 * w2[n] + a3 * w3[n];
              if (pair) yb[n] += b0 * w0[n] + b1 * w1[n] + b2 * w2[n] + b3 * w3[n];
            }
          }
        }
      }
    }
  });
}

at::Tensor rows_by_weight(const at::Tensor& rows, const at::Tensor& weight) {
  TORCH_CHECK(rows.dim() == 2 && weight.dim() == 2 && rows.size(1) == weight.size(1),
              "streamify::rows_by_weight: expected rows [M, K] and weight [N, K], got ", rows.sizes(), " and ",
              weight.sizes());
  const auto dtype = rows.scalar_type();
  const bool supported = rows.device().is_cpu() && weight.device().is_cpu() && weight.scalar_type() == dtype &&
                         (dtype == at::kFloat || dtype == at::kDouble) && rows.size(0) > 0 && weight.size(0) > 0;
  if (!supported) return at::mm(rows, weight.t());
  const at::Tensor x = rows.stride(1) == 1 ? rows : rows.contiguous();
  const int64_t m_len = x.size(0), k_len = x.size(1), n_len = weight.size(0);
  at::Tensor y = at::empty({m_len, n_len}, rows.options());
  if (k_len == 0) return y.zero_();
  const bool row_major = weight.stride(1) == 1;
  const bool column_major = !row_major && weight.stride(0) == 1;
  const at::Tensor w = row_major || column_major ? weight : weight.contiguous();
  AT_DISPATCH_FLOATING_TYPES(dtype, "streamify::rows_by_weight", [&] {
    if (column_major) {
      by_weight_columns<scalar_t>(x.data_ptr<scalar_t>(), x.stride(0), m_len, w.data_ptr<scalar_t>(), w.stride(1),
                                  n_len, k_len, y.data_ptr<scalar_t>());
    } else {
      by_weight_rows<scalar_t>(x.data_ptr<scalar_t>(), x.stride(0), m_len, w.data_ptr<scalar_t>(), w.stride(0),
                               n_len, k_len, y.data_ptr<scalar_t>());
    }
  });
  return y;
}

// How many threads at::parallel_for runs ``items`` one-item pieces on, here, now. It reports 1
// whatever torch.get_num_threads() says when this file was compiled without the OpenMP flags
// that PyTorch's threads need (its pragma is then ignored), which is what the tests check.
int64_t threads_used(int64_t items) {
  std::vector<char> seen(std::max<int64_t>(at::get_num_threads(), 1), 0);
  at::parallel_for(0, std::max<int64_t>(items, 1), 1, [&](int64_t, int64_t) {
    const int64_t thread = at::get_thread_num();
    if (thread >= 0 && thread < static_cast<int64_t>(seen.size())) seen[thread] = 1;
  });
  return std::count(seen.begin(), seen.end(), 1);
}

}  // namespace

TORCH_LIBRARY(streamify, m) {
  m.def("rows_by_weight(Tensor rows, Tensor weight) -> Tensor");
  m.def("threads_used(int items) -> int", &threads_used);
}

TORCH_LIBRARY_IMPL(streamify, CPU, m) {
  m.impl("rows_by_weight", rows_by_weight);
}
