// fastlinreg._core: a thin pybind11 layer over cpp/include/fastlinreg/kernels.hpp.
// It only checks dtypes and shapes, takes pointers, and releases the GIL
// around each kernel. Python allocates every output and passes it in.
// Float and double overloads share one name and are bound with .noconvert(),
// so no array is ever converted (copied) here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <tuple>
#include <utility>
#include <string>

#include "fastlinreg/kernels.hpp"
#include "fastlinreg/sgd.hpp"

namespace py = pybind11;
using namespace fastlinreg;

namespace {

template <class T>
using ndarray = py::array_t<T, py::array::forcecast>;  // with .noconvert(): exact dtype only
using darray = py::array_t<double, py::array::c_style | py::array::forcecast>;

void require(bool ok, const std::string &msg) {
  if (!ok) throw py::value_error(msg);
}

// Element strides of a 2-D X whose rows are contiguous (a row stride is fine).
template <class T>
index_t row_stride(const ndarray<T> &X) {
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

void check_vec(const darray &a, index_t len, const char *name) {
  require(a.ndim() == 1 && a.shape(0) == len,
          std::string(name) + " must be a 1-D float64 array of length " + std::to_string(len));
}

void check_mat(const darray &a, index_t r, index_t c, const char *name) {
  require(a.ndim() == 2 && a.shape(0) == r && a.shape(1) == c,
          std::string(name) + " must be a C-contiguous float64 array of shape (" +
              std::to_string(r) + ", " + std::to_string(c) + ")");
}

template <class T>
DataView<T> make_view(const ndarray<T> &X, const std::optional<darray> &y,
                      const std::optional<darray> &sw, index_t k, double weight_sum) {
  const index_t ldx = row_stride(X);
  const index_t n = X.shape(0);
  if (y) check_mat(*y, n, k, "y");
  if (sw) check_vec(*sw, n, "sample_weight");
  require(weight_sum > 0.0, "the sum of sample weights must be positive");
  return DataView<T>{X.data(), n, static_cast<index_t>(X.shape(1)), ldx,
                     y ? y->data() : nullptr, k, sw ? sw->data() : nullptr, weight_sum};
}

GramView make_gram(double weight_sum, const darray &mean_x, const darray &mean_y,
                   const darray &Cxx, const darray &Cxy, const darray &Cyy) {
  const index_t d = mean_x.ndim() == 1 ? mean_x.shape(0) : -1;
  const index_t k = mean_y.ndim() == 1 ? mean_y.shape(0) : -1;
  require(d >= 0 && k >= 1, "mean_x and mean_y must be 1-D float64 arrays");
  check_mat(Cxx, d, d, "Cxx");
  check_mat(Cxy, d, k, "Cxy");
  check_mat(Cyy, k, k, "Cyy");
  require(weight_sum > 0.0, "the sum of sample weights must be positive");
  return GramView{d, k, weight_sum, mean_x.data(), mean_y.data(), Cxx.data(), Cxy.data(), Cyy.data()};
}

// The (shift, scale) pointers of a standardised descent, checked: (d) each, or null.
std::pair<const double *, const double *> standardisation(index_t d,
                                                          const std::optional<darray> &shift,
                                                          const std::optional<darray> &scale) {
  if (shift) check_vec(*shift, d, "shift");
  if (scale) check_vec(*scale, d, "scale");
  return {shift ? shift->data() : nullptr, scale ? scale->data() : nullptr};
}

DescentParams make_params(index_t d, index_t max_iter, double learning_rate, double tol,
                          double alpha, bool fit_intercept, const std::optional<darray> &shift,
                          const std::optional<darray> &scale) {
  DescentParams p;
  p.max_iter = max_iter;
  p.learning_rate = learning_rate;
  p.tol = tol;
  p.alpha = alpha;
  p.fit_intercept = fit_intercept;
  std::tie(p.shift, p.scale) = standardisation(d, shift, scale);
  return p;
}

// Checks for Ctrl-C from inside the loop: takes the GIL for the check only.
// Runs on the thread that called the kernel (the OpenMP master), which is
// the thread Python delivers signals to.
bool python_interrupted() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

py::tuple descent_result(const DescentResult &r) {
  if (r.status == DescentStatus::kInterrupted) throw py::error_already_set();
  return py::make_tuple(r.n_iter, static_cast<int>(r.status), r.grad_norm0, r.grad_norm,
                        r.last_loss);
}

template <class T>
void bind_typed(py::module_ &m) {
  m.def(
      "fused_gradient",
      [](const ndarray<T> &X, const std::optional<darray> &y, const std::optional<darray> &sw,
         double weight_sum, const darray &W, const darray &b, darray &G, darray &gb,
         int n_threads) {
        const index_t k = b.ndim() == 1 ? b.shape(0) : -1;
        require(k >= 1, "b must be a 1-D float64 array");
        auto v = make_view(X, y, sw, k, weight_sum);
        check_mat(W, v.d, k, "W");
        check_mat(G, v.d, k, "G");
        check_vec(gb, k, "gb");
        py::gil_scoped_release nogil;
        return fused_gradient<T>(LossKind::kSquared, v, W.data(), b.data(), G.mutable_data(),
                                 gb.mutable_data(), n_threads);
      },
      py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("sample_weight").noconvert(),
      py::arg("weight_sum"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("G").noconvert(), py::arg("gb").noconvert(), py::arg("n_threads") = 0,
      "One fused pass: returns the mean loss, writes the mean gradients G (d, k), gb (k).");

  m.def(
      "linear_predict",
      [](const ndarray<T> &X, const darray &W, const darray &b, darray &P, int n_threads) {
        const index_t ldx = row_stride(X);
        const index_t n = X.shape(0), d = X.shape(1);
        const index_t k = b.ndim() == 1 ? b.shape(0) : -1;
        require(k >= 1, "b must be a 1-D float64 array");
        check_mat(W, d, k, "W");
        check_mat(P, n, k, "P");
        py::gil_scoped_release nogil;
        linear_predict<T>(X.data(), n, d, ldx, W.data(), b.data(), k, P.mutable_data(), n_threads);
      },
      py::arg("X").noconvert(), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("P").noconvert(), py::arg("n_threads") = 0,
      "Predictions P = X W + b (n, k), accumulated in double.");

  m.def(
      "descend_stream",
      [](const ndarray<T> &X, const darray &y, const std::optional<darray> &sw, double weight_sum,
         darray &V, darray &c, darray &loss_curve, index_t max_iter, double learning_rate,
         double tol, double alpha, bool fit_intercept, const std::optional<darray> &shift,
         const std::optional<darray> &scale, int n_threads) {
        const index_t k = c.ndim() == 1 ? c.shape(0) : -1;
        require(k >= 1, "c must be a 1-D float64 array");
        auto v = make_view(X, y, sw, k, weight_sum);
        check_mat(V, v.d, k, "V");
        check_vec(loss_curve, std::max<index_t>(max_iter, 0), "loss_curve");
        const auto p = make_params(v.d, max_iter, learning_rate, tol, alpha, fit_intercept,
                                   shift, scale);
        DescentResult r;
        {
          py::gil_scoped_release nogil;
          r = descend_stream<T>(LossKind::kSquared, v, p, V.mutable_data(), c.mutable_data(),
                                loss_curve.mutable_data(), n_threads, python_interrupted);
        }
        return descent_result(r);
      },
      py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("sample_weight").noconvert(),
      py::arg("weight_sum"), py::arg("V").noconvert(), py::arg("c").noconvert(),
      py::arg("loss_curve").noconvert(), py::arg("max_iter"), py::arg("learning_rate"),
      py::arg("tol"), py::arg("alpha"), py::arg("fit_intercept"), py::arg("shift").noconvert(),
      py::arg("scale").noconvert(), py::arg("n_threads") = 0,
      "Gradient descent over X, all steps in C++ with the GIL released. Updates V, c and "
      "loss_curve in place; returns (n_iter, status, grad_norm0, grad_norm, last_loss).");

  m.def(
      "descend_sgd",
      [](const ndarray<T> &X, const darray &y, const std::optional<darray> &sw, double weight_sum,
         darray &V, darray &c, darray &loss_curve, index_t max_epochs, index_t batch_size,
         bool shuffle, std::uint64_t seed, double eta0, double power_t, index_t epoch_offset,
         double alpha, double tol, index_t n_iter_no_change, double best_loss,
         index_t no_improvement, double ref_loss, bool fit_intercept, const std::optional<darray> &shift,
         const std::optional<darray> &scale) {
        const index_t k = c.ndim() == 1 ? c.shape(0) : -1;
        require(k >= 1, "c must be a 1-D float64 array");
        auto v = make_view(X, y, sw, k, weight_sum);
        require(v.n >= 1, "X needs at least one row");
        require(batch_size >= 1, "batch_size must be at least 1");
        check_mat(V, v.d, k, "V");
        check_vec(loss_curve, std::max<index_t>(max_epochs, 0), "loss_curve");
        SgdParams p;
        p.max_epochs = max_epochs;
        p.batch_size = batch_size;
        p.shuffle = shuffle;
        p.seed = seed;
        p.eta0 = eta0;
        p.power_t = power_t;
        p.epoch_offset = epoch_offset;
        p.alpha = alpha;
        p.tol = tol;
        p.n_iter_no_change = n_iter_no_change;
        p.best_loss = best_loss;
        p.no_improvement = no_improvement;
        p.ref_loss = ref_loss;
        p.fit_intercept = fit_intercept;
        std::tie(p.shift, p.scale) = standardisation(v.d, shift, scale);
        SgdResult r;
        {
          py::gil_scoped_release nogil;
          r = descend_sgd<T>(v.X, v.n, v.d, v.ldx, v.y, k, v.sw, v.weight_sum, p,
                             V.mutable_data(), c.mutable_data(), loss_curve.mutable_data(),
                             python_interrupted);
        }
        if (r.status == DescentStatus::kInterrupted) throw py::error_already_set();
        return py::make_tuple(r.n_epochs, static_cast<int>(r.status), r.best_loss,
                              r.no_improvement, r.ref_loss);
      },
      py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("sample_weight").noconvert(),
      py::arg("weight_sum"), py::arg("V").noconvert(), py::arg("c").noconvert(),
      py::arg("loss_curve").noconvert(), py::arg("max_epochs"), py::arg("batch_size"),
      py::arg("shuffle"), py::arg("seed"), py::arg("eta0"), py::arg("power_t"),
      py::arg("epoch_offset"), py::arg("alpha"), py::arg("tol"), py::arg("n_iter_no_change"),
      py::arg("best_loss"), py::arg("no_improvement"), py::arg("ref_loss"),
      py::arg("fit_intercept"),
      py::arg("shift").noconvert(), py::arg("scale").noconvert(),
      "Mini-batch SGD with the fused pass per batch. Updates V, c, loss_curve in place; "
      "returns (n_epochs, status, best_loss, no_improvement, ref_loss).");

  m.def(
      "hessian_norm_stream",
      [](const ndarray<T> &X, const std::optional<darray> &sw, double weight_sum, double alpha,
         bool fit_intercept, const std::optional<darray> &shift,
         const std::optional<darray> &scale, int n_threads) {
        auto v = make_view(X, std::nullopt, sw, 1, weight_sum);
        const auto p = make_params(v.d, 0, 0.0, -1.0, alpha, fit_intercept, shift, scale);
        py::gil_scoped_release nogil;
        return hessian_norm_stream<T>(v, p, n_threads);
      },
      py::arg("X").noconvert(), py::arg("sample_weight").noconvert(), py::arg("weight_sum"),
      py::arg("alpha"), py::arg("fit_intercept"), py::arg("shift").noconvert(),
      py::arg("scale").noconvert(), py::arg("n_threads") = 0,
      "Largest Hessian eigenvalue of the mean squared loss in the standardised space "
      "(power iteration with the fused pass).");

  m.def(
      "sufficient_stats",
      [](const ndarray<T> &X, const darray &y, const std::optional<darray> &sw,
         darray &mean_x, darray &mean_y, darray &Cxx, darray &Cxy, darray &Cyy,
         const std::optional<py::capsule> &syrk, int n_threads) {
        const index_t ldx = row_stride(X);
        const index_t n = X.shape(0), d = X.shape(1);
        require(y.ndim() == 2 && y.shape(0) == n, "y must be a (n, k) float64 array");
        const index_t k = y.shape(1);
        if (sw) check_vec(*sw, n, "sample_weight");
        check_vec(mean_x, d, "mean_x");
        check_vec(mean_y, k, "mean_y");
        check_mat(Cxx, d, d, "Cxx");
        check_mat(Cxy, d, k, "Cxy");
        check_mat(Cyy, k, k, "Cyy");
        require(d < (index_t(1) << 31) && k < (index_t(1) << 31),
                "too many columns for 32-bit BLAS");
        BlasFunctions blas;
        if (syrk) blas.syrk = reinterpret_cast<dsyrk_fn *>(syrk->get_pointer());
        const double *swp = sw ? sw->data() : nullptr;
        py::gil_scoped_release nogil;
        return sufficient_stats<T>(X.data(), n, d, ldx, y.data(), k, swp, blas, n_threads,
                                   mean_x.mutable_data(), mean_y.mutable_data(),
                                   Cxx.mutable_data(), Cxy.mutable_data(), Cyy.mutable_data());
      },
      py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("sample_weight").noconvert(),
      py::arg("mean_x").noconvert(), py::arg("mean_y").noconvert(), py::arg("Cxx").noconvert(),
      py::arg("Cxy").noconvert(), py::arg("Cyy").noconvert(), py::arg("syrk") = py::none(),
      py::arg("n_threads") = 0,
      "Centred sufficient statistics in one read of X; returns the weight sum. "
      "syrk: scipy.linalg.cython_blas's dsyrk capsule to run the rank update in BLAS, "
      "or None for fastlinreg's own tiled kernel.");

  m.def(
      "column_moments",
      [](const ndarray<T> &X, const std::optional<darray> &sw, darray &mean, darray &var,
         int n_threads) {
        const index_t ldx = row_stride(X);
        const index_t n = X.shape(0), d = X.shape(1);
        if (sw) check_vec(*sw, n, "sample_weight");
        check_vec(mean, d, "mean");
        check_vec(var, d, "var");
        const double *swp = sw ? sw->data() : nullptr;
        py::gil_scoped_release nogil;
        return column_moments<T>(X.data(), n, d, ldx, swp, n_threads, mean.mutable_data(),
                                 var.mutable_data());
      },
      py::arg("X").noconvert(), py::arg("sample_weight").noconvert(), py::arg("mean").noconvert(),
      py::arg("var").noconvert(), py::arg("n_threads") = 0,
      "Weighted column means and variances in one pass; returns the weight sum.");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastlinreg's compiled kernels (fused gradient pass, descent loops, statistics).";
  m.attr("__version__") = FASTLINREG_VERSION;
  m.attr("has_openmp") = has_openmp();
  m.def("max_threads", [] { return resolve_threads(0); },
        "Threads a kernel uses by default (OMP_NUM_THREADS / threadpoolctl aware).");
  m.def(
      "plan_chunks",
      [](index_t n, index_t d, index_t k) {
        const auto p = plan_chunks(n, d, k);
        return py::make_tuple(p.n_chunks, p.rows_per_chunk);
      },
      py::arg("n"), py::arg("d"), py::arg("k"),
      "The row chunking of a fused pass (depends on the shape only, never on threads).");
  bind_typed<float>(m);
  bind_typed<double>(m);

  m.def(
      "descend_gram",
      [](double weight_sum, const darray &mean_x, const darray &mean_y, const darray &Cxx,
         const darray &Cxy, const darray &Cyy, darray &V, darray &c, darray &loss_curve,
         index_t max_iter, double learning_rate, double tol, double alpha, bool fit_intercept,
         const std::optional<darray> &shift, const std::optional<darray> &scale, int n_threads) {
        const auto s = make_gram(weight_sum, mean_x, mean_y, Cxx, Cxy, Cyy);
        check_mat(V, s.d, s.k, "V");
        check_vec(c, s.k, "c");
        check_vec(loss_curve, std::max<index_t>(max_iter, 0), "loss_curve");
        const auto p = make_params(s.d, max_iter, learning_rate, tol, alpha, fit_intercept,
                                   shift, scale);
        DescentResult r;
        {
          py::gil_scoped_release nogil;
          r = descend_gram(s, p, V.mutable_data(), c.mutable_data(), loss_curve.mutable_data(),
                           n_threads, python_interrupted);
        }
        return descent_result(r);
      },
      py::arg("weight_sum"), py::arg("mean_x").noconvert(), py::arg("mean_y").noconvert(),
      py::arg("Cxx").noconvert(), py::arg("Cxy").noconvert(), py::arg("Cyy").noconvert(),
      py::arg("V").noconvert(), py::arg("c").noconvert(), py::arg("loss_curve").noconvert(),
      py::arg("max_iter"), py::arg("learning_rate"), py::arg("tol"), py::arg("alpha"),
      py::arg("fit_intercept"), py::arg("shift").noconvert(), py::arg("scale").noconvert(),
      py::arg("n_threads") = 0,
      "Gradient descent replayed from sufficient statistics: the same iterates as "
      "descend_stream at O(d^2 k) per step.");

  m.def(
      "hessian_norm_gram",
      [](double weight_sum, const darray &mean_x, const darray &mean_y, const darray &Cxx,
         const darray &Cxy, const darray &Cyy, double alpha, bool fit_intercept,
         const std::optional<darray> &shift, const std::optional<darray> &scale, int n_threads) {
        const auto s = make_gram(weight_sum, mean_x, mean_y, Cxx, Cxy, Cyy);
        const auto p = make_params(s.d, 0, 0.0, -1.0, alpha, fit_intercept, shift, scale);
        py::gil_scoped_release nogil;
        return hessian_norm_gram(s, p, n_threads);
      },
      py::arg("weight_sum"), py::arg("mean_x").noconvert(), py::arg("mean_y").noconvert(),
      py::arg("Cxx").noconvert(), py::arg("Cxy").noconvert(), py::arg("Cyy").noconvert(),
      py::arg("alpha"), py::arg("fit_intercept"), py::arg("shift").noconvert(),
      py::arg("scale").noconvert(), py::arg("n_threads") = 0,
      "hessian_norm_stream's power iteration, on sufficient statistics.");
}
