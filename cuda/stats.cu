// Sufficient statistics and column moments on the device, in one read of X
// each (stats.hpp's definitions and layout; the same first-row shift).
//
// sufficient_stats packs blocks of rows as a_i = sqrt(w_i) [x_i - s_x, y_i - s_y, 1]
// (double, (rows, m), m = d + k + 1) and adds A^T A into S (m, m) by cuBLAS
// dsyrk (deterministic for a fixed GPU and cuBLAS version) or by gram_kernel,
// whose sums run in a fixed order. The last diagonal entry of S is the
// weight sum. S is centred on the host (O(m^2)), as the CPU backend does.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cublas_loader.hpp"
#include "fused.cuh"

namespace fastlinreg {
namespace cuda {

namespace {

constexpr int kMomentThreads = 128;
constexpr index_t kMomentBlocks = 1024;

// Shifted, weighted sums of a block's rows: partial[(e, block)] for e < 2d + 1:
// s1 (d), s2 (d), then the weight sum. A thread per column, rows in order.
template <class T>
__global__ void __launch_bounds__(kMomentThreads)
    moments_kernel(const T *__restrict__ X, index_t n, index_t d, index_t ldx,
                   const double *__restrict__ sw, const double *__restrict__ shift,
                   index_t rows_per_block, double *__restrict__ partial) {
  const index_t nb = gridDim.x, blk = blockIdx.x;
  const index_t r0 = blk * rows_per_block, r1 = min(n, r0 + rows_per_block);
  for (index_t j = threadIdx.x; j < d; j += blockDim.x) {
    const double s = shift[j];
    double s1 = 0.0, s2 = 0.0;
    for (index_t i = r0; i < r1; ++i) {
      const double w = sw ? sw[i] : 1.0;
      const double v = static_cast<double>(X[i * ldx + j]) - s;
      s1 = fma(w, v, s1);
      s2 = fma(w * v, v, s2);
    }
    partial[j * nb + blk] = s1;
    partial[(d + j) * nb + blk] = s2;
  }
  if (threadIdx.x == 0) {
    double ws = 0.0;
    for (index_t i = r0; i < r1; ++i) ws += sw ? sw[i] : 1.0;
    partial[(2 * d) * nb + blk] = ws;
  }
}

// Rows [r0, r0 + rows) packed as sqrt(w_i) [x_i - s_x, y_i - s_y, 1] into A (rows, m).
template <class T>
__global__ void pack_rows_kernel(const T *__restrict__ X, index_t d, index_t ldx,
                                 const double *__restrict__ y, index_t k,
                                 const double *__restrict__ sw, const double *__restrict__ shift,
                                 index_t r0, index_t rows, double *__restrict__ A) {
  const index_t m = d + k + 1;
  const index_t total = rows * m;
  for (index_t e = index_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += index_t(gridDim.x) * blockDim.x) {
    const index_t r = e / m, c = e % m, i = r0 + r;
    const double sq = sw ? sqrt(sw[i]) : 1.0;
    double v;
    if (c < d)
      v = static_cast<double>(X[i * ldx + c]) - shift[c];
    else if (c < d + k)
      v = y[i * k + (c - d)] - shift[c];
    else
      v = 1.0;
    A[e] = sq * v;
  }
}

// S (m, m) row-major, upper triangle += A^T A over `rows` rows of A (rows, m):
// a 16 x 16 tile of S a block, rows in order, a thread per entry.
constexpr int kGramTile = 16;
__global__ void gram_kernel(const double *__restrict__ A, index_t rows, index_t m,
                            double *__restrict__ S) {
  const index_t tj = blockIdx.y, tl = blockIdx.x;
  if (tl < tj) return;  // lower tiles: the upper triangle is enough
  __shared__ double a_j[kGramTile][kGramTile + 1], a_l[kGramTile][kGramTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const index_t j = tj * kGramTile + ty, l = tl * kGramTile + tx;
  double acc = 0.0;
  for (index_t r0 = 0; r0 < rows; r0 += kGramTile) {
    const index_t r = r0 + ty;  // thread (ty, tx) loads row r0 + ty
    const index_t cj = tj * kGramTile + tx, cl = tl * kGramTile + tx;
    a_j[ty][tx] = r < rows && cj < m ? A[r * m + cj] : 0.0;
    a_l[ty][tx] = r < rows && cl < m ? A[r * m + cl] : 0.0;
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kGramTile; ++rr) acc = fma(a_j[rr][ty], a_l[rr][tx], acc);
    __syncthreads();
  }
  if (j < m && l < m && j <= l) S[j * m + l] += acc;
}

// Row 0 of X (d values) and of y (k) as doubles on the host: the shift.
std::vector<double> first_row_shift(const DeviceData &data, bool with_y) {
  const index_t d = data.d, k = with_y ? data.k : 0;
  std::vector<double> shift(static_cast<std::size_t>(d + k), 0.0);
  if (data.n == 0) return shift;
  dispatch_dtype(data.itemsize, [&](auto scalar) {
    using T = decltype(scalar);
    std::vector<T> row(static_cast<std::size_t>(d));
    copy_to_host(row.data(), data.X, sizeof(T) * row.size());
    for (index_t j = 0; j < d; ++j) shift[j] = static_cast<double>(row[j]);
  });
  if (k) copy_to_host(shift.data() + d, data.y, sizeof(double) * std::size_t(k));
  return shift;
}

}  // namespace

double column_moments(const DeviceData &data, double *mean, double *var) {
  const index_t n = data.n, d = data.d;
  const std::vector<double> shift = first_row_shift(data, false);
  const index_t rows_per_block = std::max<index_t>(1, ceil_div(n, kMomentBlocks));
  FusedPlan plan;  // only the reduction's fields: blocks and elements
  plan.n_blocks = std::max<index_t>(1, ceil_div(n, rows_per_block));
  plan.n_elems = 2 * d + 1;
  DeviceBuffer shift_d(sizeof(double) * shift.size() + 8);
  DeviceBuffer partial(sizeof(double) * std::size_t(plan.n_elems * plan.n_blocks));
  DeviceBuffer total(sizeof(double) * std::size_t(plan.n_elems));
  copy_to_device(shift_d.as<double>(), shift.data(), sizeof(double) * shift.size());
  dispatch_dtype(data.itemsize, [&](auto scalar) {
    using T = decltype(scalar);
    moments_kernel<T><<<static_cast<unsigned>(plan.n_blocks), kMomentThreads>>>(
        static_cast<const T *>(data.X), n, d, data.ldx, data.sw, shift_d.as<double>(),
        rows_per_block, partial.as<double>());
    check_launch("moments_kernel");
  });
  launch_reduce_partials(partial.as<double>(), plan, 1.0, total.as<double>(), nullptr);
  std::vector<double> tot(static_cast<std::size_t>(plan.n_elems));
  copy_to_host(tot.data(), total.as<double>(), sizeof(double) * tot.size());
  const double wsum = tot[static_cast<std::size_t>(2 * d)];
  const double inv = wsum > 0.0 ? 1.0 / wsum : 0.0;
  for (index_t j = 0; j < d; ++j) {
    const double m1 = tot[j] * inv;
    mean[j] = shift[j] + m1;
    const double v = tot[d + j] * inv - m1 * m1;  // NaN where the sums overflowed: kept
    var[j] = v < 0.0 ? 0.0 : v;
  }
  return wsum;
}

double sufficient_stats(const DeviceData &data, bool use_cublas, double *mean_x, double *mean_y,
                        double *Cxx, double *Cxy, double *Cyy, std::string *engine) {
  const index_t n = data.n, d = data.d, k = data.k;
  if (!data.y) throw std::invalid_argument("sufficient_stats needs y");
  const index_t m = d + k + 1;
  if (m >= (index_t(1) << 31)) throw std::invalid_argument("too many columns for 32-bit BLAS");
  const CublasApi *blas = use_cublas ? cublas_api() : nullptr;
  if (engine) *engine = blas ? "cublas" : "own";
  // A block of packed rows takes about 32 MiB: it stays in L2 between the
  // pack that writes it and the rank update that reads it.
  const index_t block_rows = std::min<index_t>(
      std::max<index_t>((index_t(32) << 20) / (8 * m), 256), std::max<index_t>(n, 1));
  const std::vector<double> shift = first_row_shift(data, true);
  DeviceBuffer shift_d(sizeof(double) * shift.size());
  DeviceBuffer A(sizeof(double) * std::size_t(block_rows * m));
  DeviceBuffer S(sizeof(double) * std::size_t(m * m));
  copy_to_device(shift_d.as<double>(), shift.data(), sizeof(double) * shift.size());
  FASTLINREG_CUDA_CHECK(cudaMemset(S.as<double>(), 0, sizeof(double) * std::size_t(m * m)));
  const double one = 1.0;
  for (index_t r0 = 0; r0 < n; r0 += block_rows) {
    const index_t rows = std::min(block_rows, n - r0);
    dispatch_dtype(data.itemsize, [&](auto scalar) {
      using T = decltype(scalar);
      const auto blocks = static_cast<unsigned>(std::min<index_t>(ceil_div(rows * m, 256), 8192));
      pack_rows_kernel<T><<<blocks, 256>>>(static_cast<const T *>(data.X), d, data.ldx, data.y, k,
                                           data.sw, shift_d.as<double>(), r0, rows, A.as<double>());
      check_launch("pack_rows_kernel");
    });
    if (blas) {
      // A row-major (rows, m) is column-major (m, rows): S += A A^T in its
      // column-major lower triangle, which is the row-major upper one.
      const int status = blas->dsyrk(
          blas->handle, kCublasFillLower, kCublasOpN, static_cast<int>(m), static_cast<int>(rows),
          &one, A.as<double>(), static_cast<int>(m), &one, S.as<double>(), static_cast<int>(m));
      if (status != 0)
        throw std::runtime_error("cublasDsyrk failed with status " + std::to_string(status));
    } else {
      const auto tiles = static_cast<unsigned>(ceil_div(m, kGramTile));
      gram_kernel<<<dim3(tiles, tiles), dim3(kGramTile, kGramTile)>>>(A.as<double>(), rows, m,
                                                                      S.as<double>());
      check_launch("gram_kernel");
    }
  }
  std::vector<double> Sh(static_cast<std::size_t>(m * m));
  copy_to_host(Sh.data(), S.as<double>(), sizeof(double) * Sh.size());
  auto at = [&](index_t j, index_t l) { return j <= l ? Sh[j * m + l] : Sh[l * m + j]; };
  auto first = [&](index_t j) { return at(j, m - 1); };
  const double wsum = at(m - 1, m - 1);
  const double inv = wsum > 0.0 ? 1.0 / wsum : 0.0;
  for (index_t j = 0; j < d; ++j) mean_x[j] = shift[j] + first(j) * inv;
  for (index_t c = 0; c < k; ++c) mean_y[c] = shift[d + c] + first(d + c) * inv;
  for (index_t j = 0; j < d; ++j)
    for (index_t l = 0; l < d; ++l) Cxx[j * d + l] = at(j, l) - first(j) * first(l) * inv;
  for (index_t j = 0; j < d; ++j)
    for (index_t c = 0; c < k; ++c) Cxy[j * k + c] = at(j, d + c) - first(j) * first(d + c) * inv;
  for (index_t a = 0; a < k; ++a)
    for (index_t c = 0; c < k; ++c)
      Cyy[a * k + c] = at(d + a, d + c) - first(d + a) * first(d + c) * inv;
  return wsum;
}

}  // namespace cuda
}  // namespace fastlinreg
