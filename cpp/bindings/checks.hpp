// The argument checks the compiled modules share (_core's module.cpp and
// _cuda's module_cuda.cpp): each raises a ValueError that names the array
// and the shape it must have.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace fastlinreg::bindings {

using darray = pybind11::array_t<double, pybind11::array::c_style | pybind11::array::forcecast>;
using OptArray = std::optional<darray>;
using index_t = std::int64_t;

inline void require(bool ok, const std::string &msg) {
  if (!ok) throw pybind11::value_error(msg);
}

inline void check_vec(const darray &a, index_t len, const char *name) {
  require(a.ndim() == 1 && a.shape(0) == len,
          std::string(name) + " must be a 1-D float64 array of length " + std::to_string(len));
}

inline void check_mat(const darray &a, index_t r, index_t c, const char *name) {
  require(a.ndim() == 2 && a.shape(0) == r && a.shape(1) == c,
          std::string(name) + " must be a C-contiguous float64 array of shape (" +
              std::to_string(r) + ", " + std::to_string(c) + ")");
}

inline void check_writable(const darray &a, const char *name) {
  require(a.writeable(), std::string(name) + " must be writable");
}

// (W (d, k), b (k)) of a model (or its gradient), checked and writable.
inline std::pair<double *, double *> model_out(darray &W, darray &b, index_t d, index_t k) {
  check_mat(W, d, k, "W");
  check_vec(b, k, "b");
  check_writable(W, "W");
  check_writable(b, "b");
  return {W.mutable_data(), b.mutable_data()};
}

// The number of outputs of a model, from its intercept b (k).
inline index_t outputs_of(const darray &b) {
  require(b.ndim() == 1 && b.shape(0) >= 1, "b must be a non-empty 1-D float64 array");
  return b.shape(0);
}

}  // namespace fastlinreg::bindings
