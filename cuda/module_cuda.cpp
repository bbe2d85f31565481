// fastlinreg._cuda: a thin pybind11 layer over cuda/api.hpp. It checks
// shapes, takes pointers, and releases the GIL around each call. Device
// arrays arrive as integer pointers (Python parses __cuda_array_interface__
// or DLPack, see dlpack_info); host arrays are float64 numpy arrays that the
// caller allocates, bound with .noconvert() so nothing is copied silently.
//
// Importing this module touches neither the driver nor the GPU: the CUDA
// runtime (linked statically) starts at the first call that needs it, and
// device_status() is the one call that reports its absence without raising.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "api.hpp"
#include "checks.hpp"

namespace py = pybind11;
using namespace fastlinreg;
using namespace fastlinreg::cuda;
using namespace fastlinreg::bindings;

namespace {

template <class P>
P *as_ptr(std::uintptr_t p) {
  return reinterpret_cast<P *>(p);
}

// X in device memory, checked once: (n, d) float32/float64 rows, row stride ldx.
struct DeviceRows {
  const void *ptr = nullptr;
  int itemsize = 8;
  index_t n = 0, d = 0, ldx = 0;

  DeviceRows(std::uintptr_t p, int itemsize_, index_t n_, index_t d_, index_t ldx_)
      : ptr(as_ptr<const void>(p)), itemsize(itemsize_), n(n_), d(d_), ldx(n_ <= 1 ? d_ : ldx_) {
    require(itemsize == 4 || itemsize == 8, "X must be float32 (itemsize 4) or float64 (8)");
    require(n >= 0 && d >= 0, "X must have a non-negative shape");
    require(d < (index_t(1) << 31), "too many columns");
    require(ldx >= d, "the row stride ldx must be at least d (rows contiguous, laid out forward)");
    require(ptr != nullptr || n == 0 || d == 0, "X is a null device pointer");
  }
};

// Rows of a problem in device memory and its loss, checked once (module.cpp's
// Problem on the device): y (n, k) float64 C order, or 0 for none; sample
// weights (n) float64, or 0.
class Problem {
 public:
  Problem(const DeviceRows &X, std::uintptr_t y, index_t k, std::uintptr_t sw, double weight_sum,
          int loss) {
    require(k >= 1 && k < (index_t(1) << 31), "y must have between 1 and 2^31 columns");
    require(weight_sum > 0.0, "the sum of sample weights must be positive");
    dispatch_loss(static_cast<LossKind>(loss), [](auto) { return 0; });  // a known kind
    data_.X = X.ptr;
    data_.itemsize = X.itemsize;
    data_.n = X.n;
    data_.d = X.d;
    data_.ldx = X.ldx;
    data_.y = as_ptr<const double>(y);
    data_.k = k;
    data_.sw = as_ptr<const double>(sw);
    data_.weight_sum = weight_sum;
    data_.loss = static_cast<LossKind>(loss);
  }
  bool has_y() const { return data_.y != nullptr; }
  const DeviceData &data() const { return data_; }

  // The data with k outputs (b's length), checked against y when the call reads y.
  DeviceData with_k(index_t k, bool reads_y = true) const {
    require(k >= 1, "the model needs at least one output");
    DeviceData v = data_;
    if (reads_y)
      require(!v.y || v.k == k, "the model has " + std::to_string(k) + " outputs but y has " +
                                    std::to_string(v.k) + " columns");
    else
      v.y = nullptr;
    v.k = k;
    return v;
  }

 private:
  DeviceData data_;
};

// A run's settings with the standardisation arrays they point into (module.cpp's Checked).
template <class Settings>
struct Checked {
  Settings p;
  OptArray shift, scale;

  Settings resolved(index_t d) const {
    if (shift) check_vec(*shift, d, "shift");
    if (scale) check_vec(*scale, d, "scale");
    Settings r = p;
    r.shift = shift ? shift->data() : nullptr;
    r.scale = scale ? scale->data() : nullptr;
    return r;
  }
};
using PyDescentParams = Checked<DescentSettings>;
using PySgdParams = Checked<SgdSettings>;

template <class Settings>
void bind_standardisation(py::class_<Checked<Settings>> &cls) {
  cls.def_readwrite("shift", &Checked<Settings>::shift, "(d) column shift, or None")
      .def_readwrite("scale", &Checked<Settings>::scale, "(d) column scale, or None");
}

bool python_interrupted() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// The DLPack ABI (dlpack.h, v0.x DLManagedTensor): read, never consumed.
struct DLDevice {
  int32_t device_type;  // 1 CPU, 2 CUDA, 3 CUDA host, 13 CUDA managed
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;  // 0 int, 1 uint, 2 float
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides;  // elements; nullptr: C-contiguous
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void *manager_ctx;
  void (*deleter)(DLManagedTensor *);
};

py::dict dlpack_info(const py::capsule &cap) {
  require(std::string(cap.name() ? cap.name() : "") == "dltensor",
          "expected an unconsumed DLPack capsule named 'dltensor'");
  const auto *m = static_cast<const DLManagedTensor *>(cap.get_pointer());
  const DLTensor &t = m->dl_tensor;
  py::list shape, strides;
  int64_t expect = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {  // C-order strides when none are given
    strides.insert(0, t.strides ? t.strides[i] : expect);
    expect *= t.shape[i];
  }
  for (int i = 0; i < t.ndim; ++i) shape.append(t.shape[i]);
  std::string kind = t.dtype.code == 2   ? "f"
                     : t.dtype.code == 1 ? "u"
                     : t.dtype.code == 0 ? "i"
                                         : "?";
  py::dict d;
  d["ptr"] = reinterpret_cast<std::uintptr_t>(static_cast<char *>(t.data) + t.byte_offset);
  d["shape"] = py::tuple(shape);
  d["strides"] = py::tuple(strides);  // in elements
  d["typestr"] = "<" + kind + std::to_string(t.dtype.bits / 8);
  d["lanes"] = t.dtype.lanes;
  d["device_type"] = t.device.device_type;
  d["device_id"] = t.device.device_id;
  return d;
}

// Device memory owned by a Python object.
class PyDeviceBuffer {
 public:
  explicit PyDeviceBuffer(std::size_t nbytes) : nbytes_(nbytes), p_(device_alloc(nbytes)) {}
  ~PyDeviceBuffer() { device_free(p_); }
  PyDeviceBuffer(const PyDeviceBuffer &) = delete;
  PyDeviceBuffer &operator=(const PyDeviceBuffer &) = delete;
  std::uintptr_t ptr() const { return reinterpret_cast<std::uintptr_t>(p_); }
  std::size_t nbytes() const { return nbytes_; }
  void upload(const py::buffer &src, std::size_t offset) {
    const py::buffer_info info = src.request();
    require(PyBuffer_IsContiguous(info.view(), 'C'), "upload needs a C-contiguous array");
    const auto bytes = static_cast<std::size_t>(info.size * info.itemsize);
    require(offset + bytes <= nbytes_, "upload overruns the device buffer");
    py::gil_scoped_release nogil;
    copy_to_device(static_cast<char *>(p_) + offset, info.ptr, bytes);
  }
  void download(py::buffer &dst, std::size_t offset) const {
    const py::buffer_info info = dst.request(true);
    require(PyBuffer_IsContiguous(info.view(), 'C'), "download needs a C-contiguous array");
    const auto bytes = static_cast<std::size_t>(info.size * info.itemsize);
    require(offset + bytes <= nbytes_, "download overruns the device buffer");
    py::gil_scoped_release nogil;
    copy_to_host(info.ptr, static_cast<const char *>(p_) + offset, bytes);
  }

 private:
  std::size_t nbytes_;
  void *p_;
};

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() =
      "fastlinreg's CUDA kernels (fused pass, descent, SGD, statistics). Pointer-level: "
      "use fastlinreg.backends.cuda.";
  m.attr("cuda_major") = FASTLINREG_CUDA_MAJOR;

  m.def(
      "device_status",
      [] {
        const DeviceStatus s = device_status();
        py::dict d;
        d["error"] = s.error;
        d["error_name"] = s.error_name;
        d["message"] = s.message;
        d["device_count"] = s.device_count;
        d["runtime_version"] = s.runtime_version;
        d["driver_version"] = s.driver_version;
        d["name"] = s.name;
        d["compute_capability"] = py::make_tuple(s.cc_major, s.cc_minor);
        return d;
      },
      "The CUDA runtime's answer about the driver and devices; never raises.");
  m.def("load_cublas", &load_cublas, py::arg("candidates"),
        "dlopen cuBLAS: the first of candidates that opens, else this build's soname. "
        "Returns what was loaded; raises RuntimeError listing each failure.");
  m.def("cublas_loaded", &cublas_loaded);
  m.def("synchronize", [] {
    py::gil_scoped_release nogil;
    synchronize();
  });
  m.def("dlpack_info", &dlpack_info, py::arg("capsule"),
        "Pointer, shape, strides (elements), typestr and device of a DLPack capsule, "
        "which stays unconsumed (keep it alive while the pointer is used).");

  py::class_<PyDeviceBuffer>(m, "DeviceBuffer",
                             "Device memory (cudaMalloc), freed with the object.")
      .def(py::init<std::size_t>(), py::arg("nbytes"))
      .def_property_readonly("ptr", &PyDeviceBuffer::ptr)
      .def_property_readonly("nbytes", &PyDeviceBuffer::nbytes)
      .def("upload", &PyDeviceBuffer::upload, py::arg("src"), py::arg("offset") = 0)
      .def("download", &PyDeviceBuffer::download, py::arg("dst"), py::arg("offset") = 0);

  py::class_<DeviceRows>(m, "DeviceRows",
                         "X in device memory, checked once: a pointer, the itemsize (4 or 8), "
                         "n, d and the row stride ldx in elements (rows contiguous).")
      .def(py::init<std::uintptr_t, int, index_t, index_t, index_t>(), py::arg("ptr"),
           py::arg("itemsize"), py::arg("n"), py::arg("d"), py::arg("ldx"))
      .def_property_readonly(
          "ptr", [](const DeviceRows &r) { return reinterpret_cast<std::uintptr_t>(r.ptr); })
      .def_readonly("n", &DeviceRows::n)
      .def_readonly("d", &DeviceRows::d)
      .def_readonly("ldx", &DeviceRows::ldx)
      .def_readonly("itemsize", &DeviceRows::itemsize);

  py::class_<Problem>(m, "Problem",
                      "Rows of a problem in device memory and its loss, checked once: X "
                      "(DeviceRows), y (n, k) float64 C order (a device pointer, 0: none), "
                      "sample_weight (n) float64 (a device pointer, 0: none), the weight sum and "
                      "the loss kind.")
      .def(py::init<const DeviceRows &, std::uintptr_t, index_t, std::uintptr_t, double, int>(),
           py::arg("X"), py::arg("y"), py::arg("k"), py::arg("sample_weight"),
           py::arg("weight_sum"), py::arg("loss") = 0)
      .def_property_readonly("n", [](const Problem &p) { return p.data().n; })
      .def_property_readonly("d", [](const Problem &p) { return p.data().d; })
      .def_property_readonly("k", [](const Problem &p) { return p.data().k; })
      .def_property_readonly("weight_sum", [](const Problem &p) { return p.data().weight_sum; });

  py::class_<PyDescentParams> dp(m, "DescentParams", "Parameters of a descent loop.");
  dp.def(py::init<>());
#define FASTLINREG_CUDA_FIELD(cls, Struct, name)                \
  cls.def_property(                                             \
      #name, [](const Checked<Struct> &s) { return s.p.name; }, \
      [](Checked<Struct> &s, decltype(Struct::name) v) { s.p.name = v; })
  FASTLINREG_CUDA_FIELD(dp, DescentSettings, max_iter);
  FASTLINREG_CUDA_FIELD(dp, DescentSettings, learning_rate);
  FASTLINREG_CUDA_FIELD(dp, DescentSettings, tol);
  FASTLINREG_CUDA_FIELD(dp, DescentSettings, alpha);
  FASTLINREG_CUDA_FIELD(dp, DescentSettings, fit_intercept);
  FASTLINREG_CUDA_FIELD(dp, DescentSettings, check_every);
  bind_standardisation<DescentSettings>(dp);

  py::class_<PySgdParams> sp(m, "SgdParams", "Parameters of mini-batch SGD epochs.");
  sp.def(py::init<>());
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, max_epochs);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, batch_size);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, shuffle);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, seed);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, eta0);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, epoch_offset);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, alpha);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, tol);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, n_iter_no_change);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, ref_loss);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, best_loss);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, no_improvement);
  FASTLINREG_CUDA_FIELD(sp, SgdSettings, fit_intercept);
#undef FASTLINREG_CUDA_FIELD
  bind_standardisation<SgdSettings>(sp);

  py::class_<DescentOutcome>(m, "DescentResult")
      .def_readonly("n_iter", &DescentOutcome::n_iter)
      .def_readonly("status", &DescentOutcome::status)
      .def_readonly("last_loss", &DescentOutcome::last_loss)
      .def_readonly("host_waits", &DescentOutcome::host_waits,
                    "Blocking waits on the device, the final copy-back included.");
  py::class_<SgdOutcome>(m, "SgdResult")
      .def_readonly("n_epochs", &SgdOutcome::n_epochs)
      .def_readonly("status", &SgdOutcome::status)
      .def_readonly("best_loss", &SgdOutcome::best_loss)
      .def_readonly("no_improvement", &SgdOutcome::no_improvement)
      .def_readonly("ref_loss", &SgdOutcome::ref_loss);

  m.def(
      "fused_plan",
      [](index_t n, index_t d, index_t ldx, index_t k, int itemsize) {
        const FusedPlanInfo p = fused_plan(n, d, ldx, k, itemsize);
        py::dict r;
        r["tile_rows"] = p.tile_rows;
        r["rows_per_block"] = p.rows_per_block;
        r["n_blocks"] = p.n_blocks;
        r["n_groups"] = p.n_groups;
        r["n_elems"] = p.n_elems;
        r["staged"] = p.staged;
        r["smem_bytes"] = p.smem_bytes;
        return r;
      },
      py::arg("n"), py::arg("d"), py::arg("ldx"), py::arg("k"), py::arg("itemsize"),
      "The launch plan of a fused pass: a function of the shape alone (no device needed).");

  m.def(
      "fused_pass",
      [](const Problem &pr, const darray &W, const darray &b, darray &G, darray &gb) {
        const DeviceData v = pr.with_k(outputs_of(b));
        check_mat(W, v.d, v.k, "W");
        auto [Gp, gbp] = model_out(G, gb, v.d, v.k);
        py::gil_scoped_release nogil;
        return fused_pass(v, W.data(), b.data(), Gp, gbp);
      },
      py::arg("problem"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("G").noconvert(), py::arg("gb").noconvert(),
      "One fused pass: returns the mean loss, writes the mean gradients G (d, k), gb (k).");

  m.def(
      "predict",
      [](const Problem &pr, const darray &W, const darray &b, std::uintptr_t P) {
        const DeviceData v = pr.with_k(outputs_of(b), /*reads_y=*/false);
        check_mat(W, v.d, v.k, "W");
        require(P != 0 || v.n == 0, "P is a null device pointer");
        py::gil_scoped_release nogil;
        predict(v, W.data(), b.data(), as_ptr<double>(P));
      },
      py::arg("problem"), py::arg("W").noconvert(), py::arg("b").noconvert(), py::arg("P"),
      "P (device (n, k) float64, C order) = X W + b, accumulated in double.");

  m.def(
      "column_moments",
      [](const Problem &pr, darray &mean, darray &var) {
        const DeviceData v = pr.with_k(1, /*reads_y=*/false);
        check_vec(mean, v.d, "mean");
        check_vec(var, v.d, "var");
        check_writable(mean, "mean");
        check_writable(var, "var");
        py::gil_scoped_release nogil;
        return column_moments(v, mean.mutable_data(), var.mutable_data());
      },
      py::arg("problem"), py::arg("mean").noconvert(), py::arg("var").noconvert(),
      "Weighted column means and variances; returns the weight sum.");

  m.def(
      "sufficient_stats",
      [](const Problem &pr, darray &mean_x, darray &mean_y, darray &Cxx, darray &Cxy, darray &Cyy,
         bool use_cublas) {
        require(pr.has_y(), "sufficient_stats needs y");
        const DeviceData v = pr.data();
        check_vec(mean_x, v.d, "mean_x");
        check_vec(mean_y, v.k, "mean_y");
        check_mat(Cxx, v.d, v.d, "Cxx");
        check_mat(Cxy, v.d, v.k, "Cxy");
        check_mat(Cyy, v.k, v.k, "Cyy");
        for (auto *a : {&mean_x, &mean_y, &Cxx, &Cxy, &Cyy}) check_writable(*a, "a statistic");
        std::string engine;
        double wsum;
        {
          py::gil_scoped_release nogil;
          wsum =
              sufficient_stats(v, use_cublas, mean_x.mutable_data(), mean_y.mutable_data(),
                               Cxx.mutable_data(), Cxy.mutable_data(), Cyy.mutable_data(), &engine);
        }
        return py::make_tuple(wsum, engine);
      },
      py::arg("problem"), py::arg("mean_x").noconvert(), py::arg("mean_y").noconvert(),
      py::arg("Cxx").noconvert(), py::arg("Cxy").noconvert(), py::arg("Cyy").noconvert(),
      py::arg("use_cublas") = true,
      "Centred sufficient statistics; returns (weight_sum, engine), engine 'cublas' or 'own'.");

  m.def(
      "descend",
      [](const Problem &pr, const PyDescentParams &params, darray &W, darray &b,
         darray &loss_curve) {
        require(pr.has_y(), "descend needs y");
        const DeviceData v = pr.with_k(outputs_of(b));
        auto [Wp, bp] = model_out(W, b, v.d, v.k);
        const DescentSettings s = params.resolved(v.d);
        require(s.max_iter >= 0, "max_iter must be >= 0");
        check_vec(loss_curve, s.max_iter, "loss_curve");
        check_writable(loss_curve, "loss_curve");
        DescentOutcome r;
        {
          py::gil_scoped_release nogil;
          r = descend(v, s, Wp, bp, loss_curve.mutable_data(), python_interrupted);
        }
        if (r.status == 3) throw py::error_already_set();
        return r;
      },
      py::arg("problem"), py::arg("params"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("loss_curve").noconvert(),
      "Gradient descent, every step on the device. W, b: the start in, the last iterate out; "
      "loss_curve[:n_iter] filled.");

  m.def(
      "sgd",
      [](const Problem &pr, const PySgdParams &params, darray &W, darray &b, darray &loss_curve) {
        require(pr.has_y(), "sgd needs y");
        const DeviceData v = pr.with_k(outputs_of(b));
        require(v.n >= 1, "X needs at least one row");
        auto [Wp, bp] = model_out(W, b, v.d, v.k);
        const SgdSettings s = params.resolved(v.d);
        require(s.batch_size >= 1, "batch_size must be at least 1");
        require(s.max_epochs >= 0, "max_epochs must be >= 0");
        check_vec(loss_curve, s.max_epochs, "loss_curve");
        check_writable(loss_curve, "loss_curve");
        SgdOutcome r;
        {
          py::gil_scoped_release nogil;
          r = sgd(v, s, Wp, bp, loss_curve.mutable_data(), python_interrupted);
        }
        if (r.status == 3) throw py::error_already_set();
        return r;
      },
      py::arg("problem"), py::arg("params"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("loss_curve").noconvert(),
      "Mini-batch SGD epochs on the device, in the CPU backend's row order. W, b: the start "
      "in, the last iterate out; loss_curve[:n_epochs] filled.");
}
