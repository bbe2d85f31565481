// The kernels over a CSR matrix (CsrView in types.hpp): the fused pass, the
// statistics, the column moments, predictions and SGD batches. X is read in
// place (data, indices, indptr); nothing is densified. Every sum runs in a
// fixed order, so the bits never depend on the thread count.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "fastlinreg/parallel.hpp"
#include "fastlinreg/sparse_gram.hpp"
#include "fastlinreg/types.hpp"

namespace fastlinreg {

namespace detail {

// Rows per chunk of a CSR pass: chunks of at least 64K stored values, at
// most 32 of them, and no more than nnz / (d k) so that the chunk partials
// (d k + k + 1 doubles each) never outgrow X itself: O(nnz + d k) memory.
// 32, not more: one thread adds the partials each step while the others
// wait, and 150 partials of d = 1000 took 80-90 us, past the 50 us that
// SpinThenSleepBarrier spins before a waiting thread sleeps (and wakes late).
inline index_t csr_rows_per_chunk(index_t n, index_t nnz, index_t d, index_t k) {
  const index_t width = std::max<index_t>(1, d * k);
  index_t chunks = std::clamp<index_t>(nnz * k / (index_t(1) << 16), 1, 32);
  chunks = std::min<index_t>(chunks, std::max<index_t>(1, nnz / width));
  chunks = std::min<index_t>(chunks, std::max<index_t>(1, n));
  return std::max<index_t>(1, (n + chunks - 1) / chunks);
}

}  // namespace detail

// The fused pass over CSR rows: loss and gradient in one read of data and
// indices. Units of work are row chunks (UnitPass in parallel.hpp), each
// with its own partial, reduced in chunk order. select() restricts it to a
// list of rows (one chunk): the batches of SGD.
template <class Loss, class T, class I>
class CsrOracle : public UnitPass<CsrOracle<Loss, T, I>> {
  friend class UnitPass<CsrOracle<Loss, T, I>>;

 public:
  explicit CsrOracle(const CsrView<T, I> &v)
      : v_(v),
        slot_(v.d * v.k + v.k + 1),
        rows_per_chunk_(detail::csr_rows_per_chunk(v.n, nnz(), v.d, v.k)),
        n_chunks_(std::max<index_t>(1, (v.n + rows_per_chunk_ - 1) / rows_per_chunk_)),
        partial_(static_cast<size_t>(n_chunks_ * slot_)),
        inv_weight_sum_(1.0 / v.weight_sum) {}

  index_t d() const { return v_.d; }
  index_t k() const { return v_.k; }
  index_t n_chunks() const { return n_chunks_; }
  // Stored values read per pass: sets the cadence of signal checks.
  double work_per_pass() const { return double(nnz()) * double(v_.k); }

  void prepare(const double *W, const double *b) {
    W_ = W;
    b_ = b;
  }

  // The pass over rows[0:count] only, as one chunk normalised by weight_sum.
  void select(const index_t *rows, index_t count, double weight_sum) {
    rows_ = rows;
    n_chunks_ = 1;
    rows_per_chunk_ = count;
    inv_weight_sum_ = 1.0 / weight_sum;
  }

  // Sum the chunk partials in chunk order; returns the mean loss, G (d, k)
  // and gb (k) get the mean gradients.
  double reduce(double *G, double *gb) {
    const index_t dk = v_.d * v_.k;
    const double *first = partial_.data();
    for (index_t j = 0; j < dk; ++j) G[j] = first[j];
    for (index_t q = 0; q < v_.k; ++q) gb[q] = first[dk + q];
    double loss = first[dk + v_.k];
    for (index_t c = 1; c < n_chunks_; ++c) {
      const double *slot = partial_.data() + c * slot_;
      for (index_t j = 0; j < dk; ++j) G[j] += slot[j];
      for (index_t q = 0; q < v_.k; ++q) gb[q] += slot[dk + q];
      loss += slot[dk + v_.k];
    }
    for (index_t j = 0; j < dk; ++j) G[j] *= inv_weight_sum_;
    for (index_t q = 0; q < v_.k; ++q) gb[q] *= inv_weight_sum_;
    return loss * inv_weight_sum_;
  }

 private:
  index_t nnz() const { return index_t(v_.indptr[v_.n]) - index_t(v_.indptr[0]); }
  index_t n_units() const { return n_chunks_; }

  // The fused sums of chunk c into its partial: per row p = x W + b, the
  // loss's derivative, then G += x^T dp from the same stored values.
  void unit(index_t c) {
    const index_t k = v_.k, dk = v_.d * k;
    const index_t total = rows_ ? rows_per_chunk_ : v_.n;
    const index_t r0 = c * rows_per_chunk_, r1 = std::min(total, r0 + rows_per_chunk_);
    double *G = partial_.data() + c * slot_, *gb = G + dk;
    std::fill(G, G + slot_, 0.0);
    double loss = 0.0;
    const T *data = v_.data;
    const I *indices = v_.indices, *indptr = v_.indptr;
    const double *W = W_, *sw = v_.sw, *Y = v_.y;
    if constexpr (Loss::kElementwise) {
      if (k == 1) {  // the common case, its loop kept to locals
        unit_single_output(r0, r1, G, gb);
        return;
      }
    }
    std::vector<double> p(static_cast<size_t>(k)), dp(static_cast<size_t>(k));
    for (index_t r = r0; r < r1; ++r) {
      const index_t i = rows_ ? rows_[r] : r;
      const index_t e0 = indptr[i], e1 = indptr[i + 1];
      const double w = sw ? sw[i] : 1.0;
      const double *y = Y ? Y + i * k : nullptr;
      for (index_t q = 0; q < k; ++q) p[q] = b_[q];
      for (index_t e = e0; e < e1; ++e) {
        const double x = double(data[e]);
        const double *Wj = W + index_t(indices[e]) * k;
        for (index_t q = 0; q < k; ++q) p[q] += x * Wj[q];
      }
      loss += w * row_loss(p.data(), y, dp.data());
      for (index_t q = 0; q < k; ++q) {
        dp[q] *= w;
        gb[q] += dp[q];
      }
      for (index_t e = e0; e < e1; ++e) {
        const double x = double(data[e]);
        double *Gj = G + index_t(indices[e]) * k;
        for (index_t q = 0; q < k; ++q) Gj[q] += x * dp[q];
      }
    }
    G[dk + k] = loss;
  }

  // unit() for k == 1 and an elementwise loss: scalar sums, no row buffers.
  void unit_single_output(index_t r0, index_t r1, double *G, double *gb) {
    const T *data = v_.data;
    const I *indices = v_.indices, *indptr = v_.indptr;
    const double *W = W_, *sw = v_.sw, *Y = v_.y;
    double loss = 0.0, gb0 = 0.0;
    for (index_t r = r0; r < r1; ++r) {
      const index_t i = rows_ ? rows_[r] : r;
      const index_t e0 = indptr[i], e1 = indptr[i + 1];
      const double w = sw ? sw[i] : 1.0;
      // Two sums: half the dependency chain of one (a row holds few values).
      double acc0 = b_[0], acc1 = 0.0;
      index_t e = e0;
      for (; e + 2 <= e1; e += 2) {
        acc0 += double(data[e]) * W[indices[e]];
        acc1 += double(data[e + 1]) * W[indices[e + 1]];
      }
      if (e < e1) acc0 += double(data[e]) * W[indices[e]];
      const double acc = acc0 + acc1;
      const double yi = Y ? Y[i] : 0.0;
      const double g = w * Loss::derivative(acc, yi);
      loss += w * Loss::value(acc, yi);
      gb0 += g;
      for (index_t e = e0; e < e1; ++e) G[indices[e]] += double(data[e]) * g;
    }
    gb[0] = gb0;
    G[v_.d + 1] = loss;
  }

  // The row's loss and its derivatives dp (k); elementwise policies (the
  // curvature probe among them) have no row().
  double row_loss(const double *p, const double *y, double *dp) const {
    if constexpr (Loss::kElementwise) {
      double value = 0.0;
      for (index_t q = 0; q < v_.k; ++q) {
        const double yq = y ? y[q] : 0.0;
        dp[q] = Loss::derivative(p[q], yq);
        value += Loss::value(p[q], yq);
      }
      return value;
    } else {
      return Loss::row(p, y, v_.k, dp);
    }
  }

  CsrView<T, I> v_;
  index_t slot_, rows_per_chunk_, n_chunks_;
  std::vector<double> partial_;
  double inv_weight_sum_;
  const index_t *rows_ = nullptr;
  const double *W_ = nullptr, *b_ = nullptr;
};

// SGD's batch source over CSR rows (sgd_epochs in sgd.hpp): the fused pass
// restricted to the batch's rows, read in place.
template <class Loss, class T, class I>
class CsrBatches {
 public:
  explicit CsrBatches(const CsrView<T, I> &v)
      : oracle_(v), mean_w_(v.weight_sum / double(std::max<index_t>(1, v.n))) {}

  double gradient(const index_t *rows, index_t count, const double *W, const double *b, double *G,
                  double *gb) {
    oracle_.select(rows, count, double(count) * mean_w_);
    oracle_.partials(W, b);
    return oracle_.reduce(G, gb);
  }

 private:
  CsrOracle<Loss, T, I> oracle_;
  double mean_w_;
};

// P = X W + b (n, k), accumulated in double, threads over rows.
template <class T, class I>
void csr_predict(const CsrView<T, I> &v, const double *W, const double *b, double *P, int nt) {
  const index_t k = v.k;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (index_t i = 0; i < v.n; ++i) {
    double *p = P + i * k;
    for (index_t q = 0; q < k; ++q) p[q] = b[q];
    for (index_t e = v.indptr[i]; e < index_t(v.indptr[i + 1]); ++e) {
      const double x = double(v.data[e]);
      const double *Wj = W + index_t(v.indices[e]) * k;
      for (index_t q = 0; q < k; ++q) p[q] += x * Wj[q];
    }
  }
}

// Weighted column means (d) and the weighted sums of stored values, in one
// serial read: returns the weight sum. nz_weight (d), when given, gets each
// column's weight at its stored entries.
template <class T, class I>
double csr_column_means(const CsrView<T, I> &v, double *mean, double *nz_weight) {
  std::fill(mean, mean + v.d, 0.0);
  if (nz_weight) std::fill(nz_weight, nz_weight + v.d, 0.0);
  double wsum = 0.0;
  for (index_t i = 0; i < v.n; ++i) {
    const double w = v.sw ? v.sw[i] : 1.0;
    wsum += w;
    for (index_t e = v.indptr[i]; e < index_t(v.indptr[i + 1]); ++e) {
      mean[v.indices[e]] += w * double(v.data[e]);
      if (nz_weight) nz_weight[v.indices[e]] += w;
    }
  }
  for (index_t j = 0; j < v.d; ++j) mean[j] /= wsum;
  return wsum;
}

// Weighted column means and variances, the variance centred exactly:
// sum_i w (x - m)^2 = (stored entries) + (weight of the implicit zeros) m^2.
template <class T, class I>
double csr_column_moments(const CsrView<T, I> &v, double *mean, double *var) {
  std::vector<double> nz_weight(static_cast<size_t>(v.d));
  const double wsum = csr_column_means(v, mean, nz_weight.data());
  std::fill(var, var + v.d, 0.0);
  for (index_t i = 0; i < v.n; ++i) {
    const double w = v.sw ? v.sw[i] : 1.0;
    for (index_t e = v.indptr[i]; e < index_t(v.indptr[i + 1]); ++e) {
      const index_t j = v.indices[e];
      const double r = double(v.data[e]) - mean[j];
      var[j] += w * r * r;
    }
  }
  for (index_t j = 0; j < v.d; ++j)
    var[j] = (var[j] + (wsum - nz_weight[j]) * mean[j] * mean[j]) / wsum;
  return wsum;
}

// Centred sufficient statistics of CSR rows (the arrays of stats.hpp).
// XᵀWX is accumulated from the sparse rows into packed upper triangles
// (detail::CsrGram in sparse_gram.hpp: fixed slices of rows, a triangle
// each, added in slice order), then centred algebraically,
// Cxx = XᵀWX - w·m mᵀ (X is never centred: that would densify it).
// Cxy = Xᵀ W (Y - my) is exact. Every sum runs in an order set by the shape
// alone: the bits never depend on nt.
template <class T, class I>
double csr_stats(const CsrView<T, I> &v, int nt, double *mean_x, double *mean_y, double *Cxx,
                 double *Cxy, double *Cyy) {
  const index_t k = v.k;
  double wsum = 0.0;
  std::fill(mean_y, mean_y + k, 0.0);
  for (index_t i = 0; i < v.n; ++i) {
    const double w = v.sw ? v.sw[i] : 1.0;
    wsum += w;
    for (index_t q = 0; q < k; ++q) mean_y[q] += w * v.y[i * k + q];
  }
  for (index_t q = 0; q < k; ++q) mean_y[q] /= wsum;
  std::fill(Cyy, Cyy + k * k, 0.0);
  for (index_t i = 0; i < v.n; ++i) {
    const double w = v.sw ? v.sw[i] : 1.0;
    const double *y = v.y + i * k;
    for (index_t q = 0; q < k; ++q)
      for (index_t r = q; r < k; ++r) Cyy[q * k + r] += w * (y[q] - mean_y[q]) * (y[r] - mean_y[r]);
  }
  for (index_t q = 0; q < k; ++q)
    for (index_t r = 0; r < q; ++r) Cyy[q * k + r] = Cyy[r * k + q];
  detail::CsrGram<T, I> gram(v, mean_y);
  SpinThenSleepBarrier meet;
  nt = int(std::max<index_t>(1, std::min<index_t>(nt, gram.n_slices())));
#pragma omp parallel num_threads(nt) if (nt > 1)
  gram.run(wsum, mean_x, Cxx, Cxy, meet);
  return wsum;
}

}  // namespace fastlinreg
