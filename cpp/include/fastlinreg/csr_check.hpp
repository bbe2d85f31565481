// The check of a CSR structure that the bindings run once before any CSR
// kernel trusts its indices (module.cpp's Problem.csr).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "fastlinreg/types.hpp"

namespace fastlinreg {

// What is wrong with a CSR structure, checked in blocks of rows before a
// kernel trusts it: indptr that decreases or ends past nnz, a column index
// outside [0, d), indices that do not increase within a row (the first
// found, in that order of checks within a block). The index checks run flat
// over the block's values, without a branch per row: within-row order holds
// when the only places an index does not exceed its predecessor are row starts.
enum class CsrFault { kNone, kIndptr, kRange, kOrder };

template <class I>
CsrFault csr_structure_fault(const I *indices, const I *indptr, index_t n, index_t d, index_t nnz) {
  constexpr index_t kRows = 4096;
  // Range checks in I's unsigned type (a negative index wraps past any
  // bound), so that they vectorise with the order check. A bound past I's
  // largest value is 2^(bits - 1): every non-negative I is below it.
  using U = std::make_unsigned_t<I>;
  const U top = U(1) << (8 * sizeof(I) - 1);
  const U bound = std::uint64_t(d) < std::uint64_t(top) ? U(d) : top;
  for (index_t i0 = 0; i0 < n; i0 += kRows) {
    const index_t i1 = std::min(n, i0 + kRows);
    bool bad_ptr = false;
    for (index_t i = i0; i < i1; ++i)
      bad_ptr |= (indptr[i] > indptr[i + 1]) | (index_t(indptr[i + 1]) > nnz);
    if (bad_ptr) return CsrFault::kIndptr;
    const index_t e0 = indptr[i0], e1 = indptr[i1];
    if (e1 == e0) continue;
    // One loop for both checks: the block's indices are read once.
    bool bad_range = U(indices[e0]) >= bound;
    index_t falls = 0, starts = 0;
    for (index_t e = e0 + 1; e < e1; ++e) {
      bad_range |= U(indices[e]) >= bound;
      falls += indices[e] <= indices[e - 1];
    }
    if (bad_range) return CsrFault::kRange;
    for (index_t i = i0; i < i1; ++i) {
      const index_t s = indptr[i];
      if (s > e0 && index_t(indptr[i + 1]) > s) starts += indices[s] <= indices[s - 1];
    }
    if (falls != starts) return CsrFault::kOrder;
  }
  return CsrFault::kNone;
}

}  // namespace fastlinreg
