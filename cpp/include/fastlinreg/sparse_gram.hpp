// The statistics pass over CSR rows (csr_stats in sparse.hpp): weighted
// column sums, Xᵀ W (Y - my) and the upper triangle of XᵀWX from the rows'
// pair products, in one read of X.
//
// Why slices: the rows are cut into a few slices (set by the shape alone,
// never by the thread count), each summed into its own packed upper
// triangle, then the slices are added in slice order. Threads take whole
// slices, so every product is made once and read once, with no branch on
// who owns it; the bits never depend on the thread count. The packed
// triangle is half the footprint of the full Cxx each update scatters into.
// Memory: the first slice's triangle in Cxx itself, at most
// kGramSlices - 1 more, and d (k + 1) sums per slice: O(nnz + d²).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fastlinreg/parallel.hpp"
#include "fastlinreg/types.hpp"

namespace fastlinreg {

namespace detail {

// Slices of rows at most; also the most threads the pass keeps busy.
constexpr index_t kGramSlices = 4;
// The slices' triangles together stay under this many doubles (1 GiB).
constexpr double kGramSliceDoubles = double(index_t(1) << 27);

// Where triangle row j starts in the packed triangle, less j: C[j, l] for
// l >= j is at packed_row(j, d) + l.
inline index_t packed_row(index_t j, index_t d) { return j * d - j * (j - 1) / 2 - j; }

template <class T, class I>
class CsrGram {
 public:
  // Slices of about equal products (a row of r values has r (r + 1) / 2),
  // as many as are worth a merge of their triangles (8 d² products each).
  CsrGram(const CsrView<T, I> &v, const double *mean_y) : v_(v), my_(mean_y) {
    const index_t d = v.d;
    const double tri = double(d) * double(d + 1) / 2.0;
    auto row_products = [&](index_t i) {
      const double r = double(index_t(v.indptr[i + 1]) - index_t(v.indptr[i]));
      return r * (r + 1.0) / 2.0;
    };
    double products = 0.0;
    for (index_t i = 0; i < v.n; ++i) products += row_products(i);
    index_t slices = index_t(
        std::min(products / (16.0 * std::max(1.0, tri)), kGramSliceDoubles / std::max(1.0, tri)));
    slices =
        std::clamp<index_t>(slices, 1, std::min<index_t>(kGramSlices, std::max<index_t>(1, v.n)));
    // Slice s starts at the first row whose products before it reach s/slices of them.
    rows_.push_back(0);
    double before = 0.0;
    for (index_t i = 0, s = 1; i < v.n && s < slices; ++i) {
      while (s < slices && before >= products * double(s) / double(slices)) {
        rows_.push_back(i);
        ++s;
      }
      before += row_products(i);
    }
    while (index_t(rows_.size()) < slices) rows_.push_back(v.n);
    rows_.push_back(v.n);
    P_.resize(static_cast<size_t>(slices));
    sums_.resize(static_cast<size_t>(slices));
  }

  index_t n_slices() const { return index_t(rows_.size()) - 1; }

  // The whole pass on the calling team (or thread): the slices (a static
  // share each), their sum in slice order, then the centring. The team
  // meets at `meet` (parallel.hpp: it sleeps rather than spins where another
  // process holds a core). Afterwards mean_x (d), Cxx (d, d) and Cxy (d, k)
  // hold the centred statistics for the weight sum wsum.
  void run(double wsum, double *mean_x, double *Cxx, double *Cxy, SpinThenSleepBarrier &meet) {
#pragma omp for schedule(static, 1) nowait
    for (index_t s = 0; s < n_slices(); ++s) slice(s, s == 0 ? Cxx : nullptr);
    meet.wait();
    const index_t d = v_.d, dk = v_.d * v_.k, size = d * (d + 1) / 2;
    constexpr index_t kBlock = 4096;
    const index_t blocks = (size + kBlock - 1) / kBlock;
    // The triangle's blocks, and one more unit for the sums and means.
#pragma omp for schedule(static) nowait
    for (index_t c = 0; c <= blocks; ++c) {
      if (c == blocks) {
        const double *first = sums_[0].data();
        std::copy(first, first + d, mean_x);
        std::copy(first + d, first + d + dk, Cxy);
        for (index_t s = 1; s < n_slices(); ++s) {
          const double *in = sums_[s].data();
          for (index_t j = 0; j < d; ++j) mean_x[j] += in[j];
          for (index_t j = 0; j < dk; ++j) Cxy[j] += in[d + j];
        }
        for (index_t j = 0; j < d; ++j) mean_x[j] /= wsum;
        continue;
      }
      double *out = Cxx + c * kBlock;
      const index_t m = std::min(kBlock, size - c * kBlock);
      for (index_t s = 1; s < n_slices(); ++s) {
        const double *in = P_[s].data() + c * kBlock;
        for (index_t q = 0; q < m; ++q) out[q] += in[q];
      }
    }
    meet.wait();
    // The triangle to Cxx's layout in place, from the last row: a row's new
    // place overlaps the packed places of the rows after it.
    if (omp_get_thread_num() == 0)
      for (index_t j = d - 1; j >= 0; --j)
        std::memmove(Cxx + j * d + j, Cxx + packed_row(j, d) + j, sizeof(double) * (d - j));
    meet.wait();
    centre(wsum, mean_x, Cxx);
  }

 private:
  // Cxx = XᵀWX - wsum m mᵀ from XᵀWX's upper triangle in Cxx, in tiles of
  // 64 rows: each tile's rows along, then mirrored below the diagonal tile
  // by tile, so that the transposed writes stay in cache.
  void centre(double wsum, const double *m, double *Cxx) const {
    const index_t d = v_.d;
    constexpr index_t kTile = 64;
#pragma omp for schedule(dynamic, 1) nowait
    for (index_t j0 = 0; j0 < d; j0 += kTile) {
      const index_t j1 = std::min(d, j0 + kTile);
      for (index_t j = j0; j < j1; ++j) {
        double *row = Cxx + j * d;
        const double wm = wsum * m[j];
        for (index_t l = j; l < d; ++l) row[l] -= wm * m[l];
      }
      for (index_t l0 = j1; l0 < d; l0 += kTile)
        for (index_t l = l0; l < std::min(d, l0 + kTile); ++l)
          for (index_t j = j0; j < j1; ++j) Cxx[l * d + j] = Cxx[j * d + l];
      for (index_t j = j0; j < j1; ++j)
        for (index_t l = j0; l < j; ++l) Cxx[j * d + l] = Cxx[l * d + j];
    }
  }

  // The rows of slice s into its own packed triangle (at `storage`, or
  // its own array) and sums.
  void slice(index_t s, double *storage) {
    const index_t d = v_.d, k = v_.k, size = d * (d + 1) / 2;
    if (storage) {
      std::fill(storage, storage + size, 0.0);
    } else {
      P_[s].assign(static_cast<size_t>(size), 0.0);
      storage = P_[s].data();
    }
    std::vector<double> &sums = sums_[s];
    sums.assign(static_cast<size_t>(d * (k + 1)), 0.0);
    double *colsum = sums.data(), *cxy = colsum + d;
    const T *data = v_.data;
    const I *indices = v_.indices;
    for (index_t i = rows_[s]; i < rows_[s + 1]; ++i) {
      const index_t e0 = v_.indptr[i], e1 = v_.indptr[i + 1];
      const double w = v_.sw ? v_.sw[i] : 1.0;
      const double *y = v_.y + i * k;
      for (index_t e = e0; e < e1; ++e) {
        const index_t j = indices[e];
        const double wx = w * double(data[e]);
        colsum[j] += wx;
        for (index_t q = 0; q < k; ++q) cxy[j * k + q] += wx * (y[q] - my_[q]);
        double *row = storage + packed_row(j, d);
        // Indices increase within a row: the entries from e on are the
        // triangle's. Two at a time: short rows end their loops less often.
        index_t f = e;
        for (; f + 2 <= e1; f += 2) {
          const index_t l0 = indices[f], l1 = indices[f + 1];
          const double x0 = double(data[f]), x1 = double(data[f + 1]);
          row[l0] += wx * x0;
          row[l1] += wx * x1;
        }
        if (f < e1) row[indices[f]] += wx * double(data[f]);
      }
    }
  }

  CsrView<T, I> v_;
  const double *my_;
  std::vector<index_t> rows_;
  std::vector<std::vector<double>> P_, sums_;
};

}  // namespace detail

}  // namespace fastlinreg
