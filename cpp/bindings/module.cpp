// fastlinreg._core: a thin pybind11 layer over cpp/include/fastlinreg/kernels.hpp.
//
// It checks dtypes and shapes once, where a checked object is made (Problem,
// Stats, the parameter structs), takes pointers, and releases the GIL around
// each kernel. Python allocates every output and passes it in. Arrays are
// bound with .noconvert() and never converted (copied) here: X must be
// float32 or float64 with contiguous rows, everything else C-contiguous
// float64.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "checks.hpp"
#include "fastlinreg/csr_check.hpp"
#include "fastlinreg/kernels.hpp"
#include "fastlinreg/replay.hpp"

namespace py = pybind11;
using namespace fastlinreg;
using namespace fastlinreg::bindings;

namespace {

template <class T>
using xarray = py::array_t<T, py::array::forcecast>;  // with .noconvert(): exact dtype only
// The row stride, in elements, of a 2-D X whose rows are contiguous.
template <class T>
index_t row_stride(const xarray<T> &X) {
  require(X.ndim() == 2, "X must be 2-D");
  const index_t n = X.shape(0), d = X.shape(1);
  const auto isz = static_cast<index_t>(sizeof(T));
  const index_t s0 = X.strides(0), s1 = X.strides(1);
  require(d <= 1 || s1 == isz,
          "X must have contiguous rows; pass np.ascontiguousarray(X) (the Python layer does)");
  if (n <= 1) return d;
  require(s0 > 0 && s0 % isz == 0 && s0 / isz >= d,
          "X rows must be laid out forward in memory; pass np.ascontiguousarray(X)");
  return s0 / isz;
}

// The CSR arrays of a sparse X: data float32/float64, indices and indptr
// int32/int64 (the same), all 1-D and contiguous, and d columns.
struct CsrArrays {
  py::array data, indices, indptr;
  index_t d;
};

// Rows of a problem and its loss, checked once: X float32 or float64 (n, d)
// with contiguous rows, or CSR arrays; y (n, k) float64 or None;
// sample_weight (n) or None.
class Problem {
 public:
  Problem(py::array X, OptArray y, OptArray sw, double weight_sum, int loss)
      : X_(std::move(X)), y_(std::move(y)), sw_(std::move(sw)) {
    if (py::isinstance<xarray<float>>(X_))  // equivalent dtypes: a memmap's too
      view_ = make_view<float>();
    else if (py::isinstance<xarray<double>>(X_))
      view_ = make_view<double>();
    else
      throw py::type_error("X must be a float32 or float64 ndarray (the Python layer converts)");
    finish(X_.shape(0), weight_sum, loss);
  }

  Problem(CsrArrays csr, OptArray y, OptArray sw, double weight_sum, int loss)
      : csr_(std::move(csr)), y_(std::move(y)), sw_(std::move(sw)) {
    const bool f32 = py::isinstance<xarray<float>>(csr_.data);
    require(f32 || py::isinstance<xarray<double>>(csr_.data), "data must be float32 or float64");
    if (py::isinstance<xarray<std::int32_t>>(csr_.indices))
      view_ = f32 ? CsrVariant(make_csr<float, std::int32_t>())
                  : CsrVariant(make_csr<double, std::int32_t>());
    else if (py::isinstance<xarray<std::int64_t>>(csr_.indices))
      view_ = f32 ? CsrVariant(make_csr<float, std::int64_t>())
                  : CsrVariant(make_csr<double, std::int64_t>());
    else
      throw py::type_error("indices and indptr must be int32 or int64");
    finish(n(), weight_sum, loss);
  }

 private:
  void finish(index_t n, double weight_sum, int loss) {
    if (y_)
      require(y_->ndim() == 2 && y_->shape(0) == n,
              "y must be a C-contiguous float64 array of shape (n_samples, n_targets)");
    if (sw_) check_vec(*sw_, n, "sample_weight");
    require(weight_sum > 0.0, "the sum of sample weights must be positive");
    dispatch_loss(static_cast<LossKind>(loss), [](auto) { return 0; });  // a known kind
    std::visit(
        [&](auto &v) {
          v.y = y_ ? y_->data() : nullptr;
          v.k = y_ ? y_->shape(1) : 1;
          v.sw = sw_ ? sw_->data() : nullptr;
          v.weight_sum = weight_sum;
          v.loss = static_cast<LossKind>(loss);
        },
        view_);
  }

 public:
  index_t n() const {
    return std::visit([](auto &v) { return v.n; }, view_);
  }
  index_t d() const {
    return std::visit([](auto &v) { return v.d; }, view_);
  }
  bool has_y() const { return y_.has_value(); }
  index_t k() const {
    return std::visit([](auto &v) { return v.k; }, view_);
  }

  // Runs f(view) with the typed view, its k set to `k` (checked against y
  // when the call reads y).
  template <class F>
  decltype(auto) with_view(index_t k, F &&f, bool reads_y = true) const {
    require(k >= 1, "the model needs at least one output");
    require(!reads_y || !y_ || y_->shape(1) == k,
            "the model has " + std::to_string(k) + " outputs but y has " +
                std::to_string(y_ ? y_->shape(1) : 0) + " columns");
    return std::visit(
        [&](auto v) {
          v.k = k;
          return f(v);
        },
        view_);
  }

 private:
  template <class T>
  DataView<T> make_view() const {
    const auto X = py::reinterpret_borrow<xarray<T>>(X_);
    DataView<T> v;
    v.ldx = row_stride<T>(X);
    v.X = X.data();
    v.n = X.shape(0);
    v.d = X.shape(1);
    return v;
  }

  // The CSR view, its arrays checked: a kernel trusts every index.
  template <class T, class I>
  CsrView<T, I> make_csr() const {
    const auto data = py::reinterpret_borrow<xarray<T>>(csr_.data);
    const auto indices = py::reinterpret_borrow<xarray<I>>(csr_.indices);
    require(py::isinstance<xarray<I>>(csr_.indptr), "indptr must have the dtype of indices");
    const auto indptr = py::reinterpret_borrow<xarray<I>>(csr_.indptr);
    for (const py::array *a : {&csr_.data, &csr_.indices, &csr_.indptr})
      require(a->ndim() == 1 && (a->flags() & py::array::c_style),
              "data, indices and indptr must be 1-D contiguous arrays");
    CsrView<T, I> v;
    v.data = data.data();
    v.indices = indices.data();
    v.indptr = indptr.data();
    v.n = indptr.shape(0) - 1;
    v.d = csr_.d;
    require(v.n >= 0 && v.d >= 0, "indptr must have n_samples + 1 entries");
    const index_t nnz = v.n >= 0 ? index_t(v.indptr[v.n]) : 0;
    require(v.indptr[0] == 0 && nnz <= indices.shape(0) && nnz <= data.shape(0),
            "indptr must start at 0 and end within data and indices");
    // One read of the structure (sparse.hpp); the messages are built only on failure.
    const CsrFault fault = csr_structure_fault(v.indices, v.indptr, v.n, v.d, nnz);
    require(fault != CsrFault::kIndptr, "indptr must be non-decreasing");
    require(fault != CsrFault::kRange, "a column index is outside [0, n_features)");
    require(fault != CsrFault::kOrder,
            "column indices must increase within each row (scipy: X.sorted_indices() after "
            "X.sum_duplicates(); the Python layer does this on a copy)");
    return v;
  }

  using CsrVariant = std::variant<DataView<float>, DataView<double>, CsrView<float, std::int32_t>,
                                  CsrView<float, std::int64_t>, CsrView<double, std::int32_t>,
                                  CsrView<double, std::int64_t>>;

  py::array X_;
  CsrArrays csr_;
  OptArray y_, sw_;
  CsrVariant view_;
};

// Centred sufficient statistics (the arrays of fastlinreg.SufficientStats),
// checked once. Writable arrays can also receive a pass's output.
class Stats {
 public:
  Stats(double weight_sum, darray mean_x, darray mean_y, darray Cxx, darray Cxy, darray Cyy)
      : mean_x_(std::move(mean_x)),
        mean_y_(std::move(mean_y)),
        Cxx_(std::move(Cxx)),
        Cxy_(std::move(Cxy)),
        Cyy_(std::move(Cyy)) {
    const index_t d = mean_x_.ndim() == 1 ? mean_x_.shape(0) : -1;
    const index_t k = mean_y_.ndim() == 1 ? mean_y_.shape(0) : -1;
    require(d >= 0 && k >= 1, "mean_x and mean_y must be 1-D float64 arrays");
    check_mat(Cxx_, d, d, "Cxx");
    check_mat(Cxy_, d, k, "Cxy");
    check_mat(Cyy_, k, k, "Cyy");
    view_ = GramView{d,           k,           weight_sum, mean_x_.data(), mean_y_.data(),
                     Cxx_.data(), Cxy_.data(), Cyy_.data()};
  }

  const GramView &view() const { return view_; }
  // The view for a solve: the weight sum must be positive.
  const GramView &solvable() const {
    require(view_.weight_sum > 0.0, "the sum of sample weights must be positive");
    return view_;
  }
  double *out(darray &a, const char *name) {
    check_writable(a, name);
    return a.mutable_data();
  }
  // After a pass wrote the arrays: its weight sum, and whether every statistic is finite.
  bool filled(double weight_sum) {
    view_.weight_sum = weight_sum;
    bool finite = std::isfinite(weight_sum);
    for (const darray *a : {&mean_x_, &mean_y_, &Cxx_, &Cxy_, &Cyy_})
      for (py::ssize_t i = 0; i < a->size(); ++i) finite = finite && std::isfinite(a->data()[i]);
    return finite;
  }
  darray mean_x_, mean_y_, Cxx_, Cxy_, Cyy_;

 private:
  GramView view_;
};

// A run's parameters with the arrays they point into (standardisation, the
// per-output penalty).
template <class Params>
struct Checked {
  Params p;
  OptArray shift, scale, alpha_per_output;

  // k < 0: a call with no outputs of its own (curvature), which reads alpha only.
  Params resolved(index_t d, index_t k = -1) const {
    if (shift) check_vec(*shift, d, "shift");
    if (scale) check_vec(*scale, d, "scale");
    if (alpha_per_output && k >= 0) check_vec(*alpha_per_output, k, "alpha_per_output");
    Params r = p;
    r.standardisation = {shift ? shift->data() : nullptr, scale ? scale->data() : nullptr};
    r.alpha_per_output = alpha_per_output && k >= 0 ? alpha_per_output->data() : nullptr;
    return r;
  }
};
using PyDescentParams = Checked<DescentParams>;
using PySgdParams = Checked<SgdParams>;

// A loop's StopCheck: checks for Ctrl-C and hands (step, loss) to
// `progress` (a Python callable, or None), taking the GIL for that only. Runs
// on the thread that called the kernel (the OpenMP master), which is the
// thread Python delivers signals to. An exception from `progress` stops the
// loop and is raised by raise_if_interrupted. `progress` must outlive the loop.
StopCheck python_check(const py::object &progress) {
  return [&progress](index_t step, double loss) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) return true;
    if (progress.is_none()) return false;
    try {
      progress(step, loss);
    } catch (py::error_already_set &e) {
      e.restore();
      return true;
    }
    return false;
  };
}

template <class Result>
Result raise_if_interrupted(const Result &r) {
  if (r.status == DescentStatus::kInterrupted) throw py::error_already_set();
  return r;
}

// Runs run(stop) with the GIL released; raises KeyboardInterrupt (or what
// the signal handler raised) if the curvature's passes stopped for a signal.
template <class Run>
double curvature_interruptible(Run &&run) {
  bool stopped = false;
  const py::object no_progress = py::none();
  const StopCheck check = python_check(no_progress);
  double r;
  {
    py::gil_scoped_release nogil;
    r = run(StopCheck([&](index_t step, double value) { return stopped = check(step, value); }));
  }
  if (stopped) throw py::error_already_set();
  return r;
}

template <class Params>
void bind_standardisation(py::class_<Checked<Params>> &cls) {
  cls.def_readwrite("shift", &Checked<Params>::shift, "(d) column shift, or None")
      .def_readwrite("scale", &Checked<Params>::scale, "(d) column scale, or None")
      .def_readwrite("alpha_per_output", &Checked<Params>::alpha_per_output,
                     "(k) one L2 penalty per output, or None for alpha")
      .def_property(
          "positive", [](const Checked<Params> &s) { return s.p.positive; },
          [](Checked<Params> &s, bool v) { s.p.positive = v; },
          "project the coefficients onto W >= 0 after each step");
}

// True for the dense views (DataView), false for CSR ones.
template <class V>
struct is_dense_view : std::false_type {};
template <class T>
struct is_dense_view<DataView<T>> : std::true_type {};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastlinreg's compiled kernels (fused gradient pass, descent loops, statistics).";
  m.attr("__version__") = FASTLINREG_VERSION;
  m.attr("has_openmp") = built_with_openmp();
  m.attr("simd_lanes") = simd_lanes();
  m.attr("isa") = active_isa();
  m.attr("compiled_isas") = compiled_isas();
  m.def("max_threads", &default_threads,
        "Threads a kernel uses by default (OMP_NUM_THREADS / threadpoolctl aware).");
  m.def("chunk_plan", &chunk_plan, py::arg("n"), py::arg("d"), py::arg("k"),
        "(n_chunks, rows_per_chunk) of a fused pass: depends on the shape only, never on "
        "the thread count.");

  py::class_<Problem>(m, "Problem",
                      "Rows of a problem and its loss, checked once: X float32/float64 (n, d) "
                      "with contiguous rows, y (n, k) float64 or None, sample_weight (n) or "
                      "None, the weight sum and the loss kind.")
      .def(py::init<py::array, OptArray, OptArray, double, int>(), py::arg("X").noconvert(),
           py::arg("y").noconvert(), py::arg("sample_weight").noconvert(), py::arg("weight_sum"),
           py::arg("loss") = 0)
      .def_static(
          "csr",
          [](py::array data, py::array indices, py::array indptr, index_t n_features, OptArray y,
             OptArray sw, double weight_sum, int loss) {
            return Problem(
                CsrArrays{std::move(data), std::move(indices), std::move(indptr), n_features},
                std::move(y), std::move(sw), weight_sum, loss);
          },
          py::arg("data").noconvert(), py::arg("indices").noconvert(),
          py::arg("indptr").noconvert(), py::arg("n_features"), py::arg("y").noconvert(),
          py::arg("sample_weight").noconvert(), py::arg("weight_sum"), py::arg("loss") = 0,
          "Rows held as CSR arrays (scipy.sparse's data, indices, indptr in canonical "
          "form: column indices increasing within each row), checked once and read in place.")
      .def_property_readonly("n", &Problem::n)
      .def_property_readonly("d", &Problem::d)
      .def_property_readonly("k", &Problem::k);

  py::class_<Stats>(m, "Stats", "Centred sufficient statistics, checked once (see stats.hpp).")
      .def(py::init<double, darray, darray, darray, darray, darray>(), py::arg("weight_sum"),
           py::arg("mean_x").noconvert(), py::arg("mean_y").noconvert(), py::arg("Cxx").noconvert(),
           py::arg("Cxy").noconvert(), py::arg("Cyy").noconvert());

  py::class_<PyDescentParams> dp(m, "DescentParams", "Parameters of a descent loop.");
  dp.def(py::init<>())
      .def_property(
          "max_iter", [](const PyDescentParams &s) { return s.p.max_iter; },
          [](PyDescentParams &s, index_t v) {
            require(v >= 0, "max_iter must be >= 0");
            s.p.max_iter = v;
          })
      .def_property(
          "learning_rate", [](const PyDescentParams &s) { return s.p.learning_rate; },
          [](PyDescentParams &s, double v) { s.p.learning_rate = v; })
      .def_property(
          "tol", [](const PyDescentParams &s) { return s.p.tol; },
          [](PyDescentParams &s, double v) { s.p.tol = v; }, "< 0: run max_iter steps")
      .def_property(
          "alpha", [](const PyDescentParams &s) { return s.p.alpha; },
          [](PyDescentParams &s, double v) { s.p.alpha = v; })
      .def_property(
          "fit_intercept", [](const PyDescentParams &s) { return s.p.fit_intercept; },
          [](PyDescentParams &s, bool v) { s.p.fit_intercept = v; });
  bind_standardisation<DescentParams>(dp);

  py::class_<PySgdParams> sp(m, "SgdParams", "Parameters of mini-batch SGD epochs.");
  sp.def(py::init<>());
#define FASTLINREG_SGD_FIELD(name)                          \
  sp.def_property(                                          \
      #name, [](const PySgdParams &s) { return s.p.name; }, \
      [](PySgdParams &s, decltype(SgdParams::name) v) { s.p.name = v; })
  FASTLINREG_SGD_FIELD(max_epochs);
  FASTLINREG_SGD_FIELD(batch_size);
  FASTLINREG_SGD_FIELD(shuffle);
  FASTLINREG_SGD_FIELD(seed);
  FASTLINREG_SGD_FIELD(eta0);
  FASTLINREG_SGD_FIELD(epoch_offset);
  FASTLINREG_SGD_FIELD(alpha);
  FASTLINREG_SGD_FIELD(tol);
  FASTLINREG_SGD_FIELD(n_iter_no_change);
  FASTLINREG_SGD_FIELD(ref_loss);
  FASTLINREG_SGD_FIELD(best_loss);
  FASTLINREG_SGD_FIELD(no_improvement);
  FASTLINREG_SGD_FIELD(fit_intercept);
#undef FASTLINREG_SGD_FIELD
  bind_standardisation<SgdParams>(sp);

  py::class_<DescentResult>(m, "DescentResult")
      .def_readonly("n_iter", &DescentResult::n_iter)
      .def_property_readonly("status",
                             [](const DescentResult &r) { return static_cast<int>(r.status); })
      .def_readonly("last_loss", &DescentResult::last_loss);
  py::class_<SgdResult>(m, "SgdResult")
      .def_readonly("n_epochs", &SgdResult::n_epochs)
      .def_property_readonly("status",
                             [](const SgdResult &r) { return static_cast<int>(r.status); })
      .def_readonly("best_loss", &SgdResult::best_loss)
      .def_readonly("no_improvement", &SgdResult::no_improvement)
      .def_readonly("ref_loss", &SgdResult::ref_loss);

  m.def(
      "fused_gradient",
      [](const Problem &pr, const darray &W, const darray &b, darray &G, darray &gb,
         int n_threads) {
        const index_t k = outputs_of(b);
        return pr.with_view(k, [&](auto v) {
          check_mat(W, v.d, k, "W");
          auto [Gp, gbp] = model_out(G, gb, v.d, k);
          py::gil_scoped_release nogil;
          return fused_gradient(v, W.data(), b.data(), Gp, gbp, n_threads);
        });
      },
      py::arg("problem"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("G").noconvert(), py::arg("gb").noconvert(), py::arg("n_threads") = 0,
      "One fused pass: returns the mean loss, writes the mean gradients G (d, k), gb (k).");

  m.def(
      "fused_hessian",
      [](const Problem &pr, const darray &W, const darray &b, darray &G, darray &gb, darray &H,
         int n_threads) {
        const index_t k = outputs_of(b);
        return pr.with_view(k, [&](auto v) -> double {
          if constexpr (is_dense_view<decltype(v)>::value) {
            check_mat(W, v.d, k, "W");
            auto [Gp, gbp] = model_out(G, gb, v.d, k);
            check_mat(H, (v.d + 1) * k, (v.d + 1) * k, "H");
            check_writable(H, "H");
            py::gil_scoped_release nogil;
            return fused_hessian(v, W.data(), b.data(), Gp, gbp, H.mutable_data(), n_threads);
          } else {
            throw py::value_error(
                "fused_hessian takes dense rows; for sparse X use the backend's hessian()");
          }
        });
      },
      py::arg("problem"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("G").noconvert(), py::arg("gb").noconvert(), py::arg("H").noconvert(),
      py::arg("n_threads") = 0,
      "The Newton pass: returns the mean loss, writes the mean gradients G (d, k), gb (k) and "
      "the Hessian H ((d + 1) k, (d + 1) k) in [W.ravel(), b], in one read of X.");

  m.def(
      "linear_predict",
      [](const Problem &pr, const darray &W, const darray &b, darray &P, int n_threads) {
        const index_t k = outputs_of(b);
        pr.with_view(
            k,
            [&](auto v) {
              check_mat(W, v.d, k, "W");
              check_mat(P, v.n, k, "P");
              check_writable(P, "P");
              py::gil_scoped_release nogil;
              linear_predict(v, W.data(), b.data(), P.mutable_data(), n_threads);
              return 0;
            },
            /*reads_y=*/false);
      },
      py::arg("problem"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("P").noconvert(), py::arg("n_threads") = 0,
      "Predictions P = X W + b (n, k), accumulated in double.");

  m.def(
      "descend_stream",
      [](const Problem &pr, const PyDescentParams &params, darray &W, darray &b, darray &loss_curve,
         int n_threads, const py::object &progress) {
        const index_t k = outputs_of(b);
        return pr.with_view(k, [&](auto v) {
          require(pr.has_y(), "descend_stream needs y");
          auto [Wp, bp] = model_out(W, b, v.d, k);
          const DescentParams p = params.resolved(v.d, k);
          check_vec(loss_curve, p.max_iter, "loss_curve");
          check_writable(loss_curve, "loss_curve");
          DescentResult r;
          {
            py::gil_scoped_release nogil;
            r = descend_stream(v, p, Wp, bp, loss_curve.mutable_data(), n_threads,
                               python_check(progress));
          }
          return raise_if_interrupted(r);
        });
      },
      py::arg("problem"), py::arg("params"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("loss_curve").noconvert(), py::arg("n_threads") = 0, py::arg("progress") = py::none(),
      "Gradient descent over X, all steps in C++ with the GIL released. W, b: the start in, "
      "the last iterate out; loss_curve[:n_iter] filled. progress(step, loss), if given, is "
      "called about every 2**25 elements read.");

  m.def(
      "descend_gram",
      [](const Stats &stats, const PyDescentParams &params, darray &W, darray &b,
         darray &loss_curve, int n_threads, const py::object &progress) {
        const GramView &s = stats.solvable();
        auto [Wp, bp] = model_out(W, b, s.d, s.k);
        const DescentParams p = params.resolved(s.d, s.k);
        check_vec(loss_curve, p.max_iter, "loss_curve");
        check_writable(loss_curve, "loss_curve");
        DescentResult r;
        {
          py::gil_scoped_release nogil;
          r = descend_gram(s, p, Wp, bp, loss_curve.mutable_data(), n_threads,
                           python_check(progress));
        }
        return raise_if_interrupted(r);
      },
      py::arg("stats"), py::arg("params"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("loss_curve").noconvert(), py::arg("n_threads") = 0, py::arg("progress") = py::none(),
      "Gradient descent replayed from sufficient statistics: the same iterates as "
      "descend_stream at O(d^2 k) per step; progress as descend_stream's.");

  m.def(
      "replay_descent",
      [](const Stats &stats, const PyDescentParams &params, darray &W, darray &b,
         darray &loss_curve) -> py::object {
        const GramView &s = stats.solvable();
        auto [Wp, bp] = model_out(W, b, s.d, s.k);
        const DescentParams p = params.resolved(s.d, s.k);
        check_vec(loss_curve, p.max_iter, "loss_curve");
        check_writable(loss_curve, "loss_curve");
        const DescentResult r = replay_descent(s, p, Wp, bp, loss_curve.mutable_data());
        if (r.n_iter < 0) return py::none();
        return py::cast(r);
      },
      py::arg("stats"), py::arg("params"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("loss_curve").noconvert(),
      "descend_gram's result for a plain fixed step, in closed form (replay.hpp); None where "
      "it cannot be certified (run the loop then).");

  m.def(
      "replay_rows",
      [](const Problem &pr, const PyDescentParams &params, darray &W, darray &b, darray &loss_curve,
         int n_threads) -> py::tuple {
        require(pr.has_y(), "replay_rows needs y");
        const index_t d = pr.d(), k = pr.k();
        Stats out(1.0, darray(d), darray(k), darray({d, d}), darray({d, k}), darray({k, k}));
        const double wsum = pr.with_view(k, [&](auto v) {
          double *mx = out.out(out.mean_x_, "mean_x"), *my = out.out(out.mean_y_, "mean_y");
          double *cxx = out.out(out.Cxx_, "Cxx"), *cxy = out.out(out.Cxy_, "Cxy");
          return sufficient_stats(v, nullptr, n_threads, mx, my, cxx, cxy,
                                  out.out(out.Cyy_, "Cyy"));
        });
        const py::tuple stats =
            py::make_tuple(wsum, out.mean_x_, out.mean_y_, out.Cxx_, out.Cxy_, out.Cyy_);
        if (!out.filled(wsum)) return py::make_tuple(stats, false, py::none());
        auto [Wp, bp] = model_out(W, b, d, k);
        const DescentParams p = params.resolved(d, k);
        check_vec(loss_curve, p.max_iter, "loss_curve");
        check_writable(loss_curve, "loss_curve");
        const DescentResult r = replay_descent(out.view(), p, Wp, bp, loss_curve.mutable_data());
        return py::make_tuple(stats, true, r.n_iter < 0 ? py::none() : py::cast(r));
      },
      py::arg("problem"), py::arg("params"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("loss_curve").noconvert(), py::arg("n_threads") = 0,
      "sufficient_stats (own rank update), then, when they are finite, replay_descent on them, "
      "in one call for tiny problems: ((weight_sum, mean_x, mean_y, Cxx, Cxy, Cyy), finite, "
      "DescentResult or None).");

  m.def(
      "descend_sgd",
      [](const Problem &pr, const PySgdParams &params, darray &W, darray &b, darray &loss_curve,
         const py::object &progress) {
        const index_t k = outputs_of(b);
        return pr.with_view(k, [&](auto v) {
          require(pr.has_y(), "descend_sgd needs y");
          require(v.n >= 1, "X needs at least one row");
          auto [Wp, bp] = model_out(W, b, v.d, k);
          const SgdParams p = params.resolved(v.d, k);
          require(p.batch_size >= 1, "batch_size must be at least 1");
          require(p.max_epochs >= 0, "max_epochs must be >= 0");
          check_vec(loss_curve, p.max_epochs, "loss_curve");
          check_writable(loss_curve, "loss_curve");
          SgdResult r;
          {
            py::gil_scoped_release nogil;
            r = descend_sgd(v, p, Wp, bp, loss_curve.mutable_data(), python_check(progress));
          }
          return raise_if_interrupted(r);
        });
      },
      py::arg("problem"), py::arg("params"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("loss_curve").noconvert(), py::arg("progress") = py::none(),
      "Mini-batch SGD epochs with the fused pass per batch. W, b: the start in, the last "
      "iterate out; loss_curve[:n_epochs] filled. progress(epoch, loss), if given, is called "
      "about every 2**25 elements read.");

  m.def(
      "curvature_stream",
      [](const Problem &pr, const PyDescentParams &params, int n_threads) {
        return pr.with_view(
            1,
            [&](auto v) {
              v.y = nullptr;
              const DescentParams p = params.resolved(v.d);
              return curvature_interruptible(
                  [&](const StopCheck &stop) { return curvature_stream(v, p, n_threads, stop); });
            },
            /*reads_y=*/false);
      },
      py::arg("problem"), py::arg("params"), py::arg("n_threads") = 0,
      "The largest curvature of the problem's loss along the coefficients in the descended "
      "space, bounded from above (at most 10 Lanczos passes; y is not read).");

  m.def(
      "curvature_gram",
      [](const Stats &stats, const PyDescentParams &params, int n_threads) {
        const GramView &s = stats.solvable();
        const DescentParams p = params.resolved(s.d);
        return curvature_interruptible(
            [&](const StopCheck &stop) { return curvature_gram(s, p, n_threads, stop); });
      },
      py::arg("stats"), py::arg("params"), py::arg("n_threads") = 0,
      "curvature_stream's Lanczos bound, on sufficient statistics (squared loss).");

  m.def(
      "sufficient_stats",
      [](const Problem &pr, Stats &out, int n_threads, const std::optional<py::capsule> &syrk) {
        require(pr.has_y(), "sufficient_stats needs y");
        const GramView &s = out.view();
        return pr.with_view(s.k, [&](auto v) {
          require(s.d == v.d, "the statistics' shapes do not match X");
          require(v.d < (index_t(1) << 31) && v.k < (index_t(1) << 31),
                  "too many columns for 32-bit BLAS");
          double *mx = out.out(out.mean_x_, "mean_x"), *my = out.out(out.mean_y_, "mean_y");
          double *cxx = out.out(out.Cxx_, "Cxx"), *cxy = out.out(out.Cxy_, "Cxy");
          double *cyy = out.out(out.Cyy_, "Cyy");
          dsyrk_fn *blas = syrk ? reinterpret_cast<dsyrk_fn *>(syrk->get_pointer()) : nullptr;
          py::gil_scoped_release nogil;
          return sufficient_stats(v, blas, n_threads, mx, my, cxx, cxy, cyy);
        });
      },
      py::arg("problem"), py::arg("out"), py::arg("n_threads") = 0, py::arg("syrk") = py::none(),
      "Centred sufficient statistics in one read of X, written into out's arrays; returns the "
      "weight sum. syrk: a dsyrk capsule (scipy.linalg.cython_blas) to run the rank update in "
      "BLAS instead of the own kernel (backends/_gram_kernel.py chooses).");

  m.def(
      "column_moments",
      [](const Problem &pr, darray &mean, darray &var, int n_threads) {
        return pr.with_view(
            1,
            [&](auto v) {
              check_vec(mean, v.d, "mean");
              check_vec(var, v.d, "var");
              check_writable(mean, "mean");
              check_writable(var, "var");
              py::gil_scoped_release nogil;
              return column_moments(v, n_threads, mean.mutable_data(), var.mutable_data());
            },
            /*reads_y=*/false);
      },
      py::arg("problem"), py::arg("mean").noconvert(), py::arg("var").noconvert(),
      py::arg("n_threads") = 0,
      "Weighted column means and variances in one pass; returns the "
      "weight sum.");
}
