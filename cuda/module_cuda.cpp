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

#include "api.hpp"

namespace py = pybind11;
using namespace fastlinreg;
using namespace fastlinreg::cuda;

namespace {

using darray = py::array_t<double, py::array::c_style | py::array::forcecast>;

void require(bool ok, const std::string &msg) {
  if (!ok) throw py::value_error(msg);
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

template <class P>
P *as_ptr(std::uintptr_t p) {
  return reinterpret_cast<P *>(p);
}

void check_data(const DeviceData &v) {
  require(v.X != nullptr || v.n == 0, "X is a null device pointer");
  require(v.itemsize == 4 || v.itemsize == 8, "X must be float32 (itemsize 4) or float64 (8)");
  require(v.n >= 0 && v.d >= 0 && v.k >= 1, "bad shape");
  require(v.d < (index_t(1) << 31) && v.k < (index_t(1) << 31), "too many columns or outputs");
  require(v.n <= 1 || v.ldx >= v.d, "the row stride ldx must be at least d");
  require(v.weight_sum > 0.0, "the sum of sample weights must be positive");
}

const double *opt_ptr(const std::optional<darray> &a, index_t len, const char *name) {
  if (!a) return nullptr;
  check_vec(*a, len, name);
  return a->data();
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
  std::string kind = t.dtype.code == 2 ? "f" : t.dtype.code == 1 ? "u" : t.dtype.code == 0 ? "i" : "?";
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
  m.doc() = "fastlinreg's CUDA kernels (fused pass, descent, SGD, statistics). Pointer-level: "
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

  py::class_<PyDeviceBuffer>(m, "DeviceBuffer", "Device memory (cudaMalloc), freed with the object.")
      .def(py::init<std::size_t>(), py::arg("nbytes"))
      .def_property_readonly("ptr", &PyDeviceBuffer::ptr)
      .def_property_readonly("nbytes", &PyDeviceBuffer::nbytes)
      .def("upload", &PyDeviceBuffer::upload, py::arg("src"), py::arg("offset") = 0)
      .def("download", &PyDeviceBuffer::download, py::arg("dst"), py::arg("offset") = 0);

  py::class_<DeviceData>(m, "DeviceData", "Rows of a problem in device memory (pointers).")
      .def(py::init([](std::uintptr_t X, int itemsize, index_t n, index_t d, index_t ldx,
                       std::uintptr_t y, index_t k, std::uintptr_t sw, double weight_sum) {
             DeviceData v;
             v.X = as_ptr<const void>(X);
             v.itemsize = itemsize;
             v.n = n;
             v.d = d;
             v.ldx = ldx;
             v.y = as_ptr<const double>(y);
             v.k = k;
             v.sw = as_ptr<const double>(sw);
             v.weight_sum = weight_sum;
             check_data(v);
             return v;
           }),
           py::arg("X"), py::arg("itemsize"), py::arg("n"), py::arg("d"), py::arg("ldx"),
           py::arg("y") = 0, py::arg("k") = 1, py::arg("sample_weight") = 0,
           py::arg("weight_sum"))
      .def_readonly("n", &DeviceData::n)
      .def_readonly("d", &DeviceData::d)
      .def_readonly("k", &DeviceData::k)
      .def_readonly("itemsize", &DeviceData::itemsize)
      .def_readonly("weight_sum", &DeviceData::weight_sum);

  py::class_<DescentSettings>(m, "DescentSettings")
      .def(py::init<>())
      .def_readwrite("max_iter", &DescentSettings::max_iter)
      .def_readwrite("learning_rate", &DescentSettings::learning_rate)
      .def_readwrite("tol", &DescentSettings::tol)
      .def_readwrite("alpha", &DescentSettings::alpha)
      .def_readwrite("fit_intercept", &DescentSettings::fit_intercept)
      .def_readwrite("divergence_factor", &DescentSettings::divergence_factor)
      .def_readwrite("check_every", &DescentSettings::check_every);

  py::class_<SgdSettings>(m, "SgdSettings")
      .def(py::init<>())
      .def_readwrite("max_epochs", &SgdSettings::max_epochs)
      .def_readwrite("batch_size", &SgdSettings::batch_size)
      .def_readwrite("shuffle", &SgdSettings::shuffle)
      .def_readwrite("seed", &SgdSettings::seed)
      .def_readwrite("eta0", &SgdSettings::eta0)
      .def_readwrite("power_t", &SgdSettings::power_t)
      .def_readwrite("epoch_offset", &SgdSettings::epoch_offset)
      .def_readwrite("alpha", &SgdSettings::alpha)
      .def_readwrite("tol", &SgdSettings::tol)
      .def_readwrite("n_iter_no_change", &SgdSettings::n_iter_no_change)
      .def_readwrite("ref_loss", &SgdSettings::ref_loss)
      .def_readwrite("best_loss", &SgdSettings::best_loss)
      .def_readwrite("no_improvement", &SgdSettings::no_improvement)
      .def_readwrite("fit_intercept", &SgdSettings::fit_intercept);

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
      [](const DeviceData &data, const darray &W, const darray &b, darray &G, darray &gb) {
        check_mat(W, data.d, data.k, "W");
        check_vec(b, data.k, "b");
        check_mat(G, data.d, data.k, "G");
        check_vec(gb, data.k, "gb");
        py::gil_scoped_release nogil;
        return fused_pass(LossKind::kSquared, data, W.data(), b.data(), G.mutable_data(),
                          gb.mutable_data());
      },
      py::arg("data"), py::arg("W").noconvert(), py::arg("b").noconvert(),
      py::arg("G").noconvert(), py::arg("gb").noconvert(),
      "One fused pass: returns the mean loss, writes the mean gradients G (d, k), gb (k).");

  m.def(
      "predict",
      [](const DeviceData &data, const darray &W, const darray &b, std::uintptr_t P) {
        check_mat(W, data.d, data.k, "W");
        check_vec(b, data.k, "b");
        require(P != 0 || data.n == 0, "P is a null device pointer");
        py::gil_scoped_release nogil;
        predict(data, W.data(), b.data(), as_ptr<double>(P));
      },
      py::arg("data"), py::arg("W").noconvert(), py::arg("b").noconvert(), py::arg("P"),
      "P (device (n, k) float64) = X W + b.");

  m.def(
      "column_moments",
      [](const DeviceData &data, darray &mean, darray &var) {
        check_vec(mean, data.d, "mean");
        check_vec(var, data.d, "var");
        py::gil_scoped_release nogil;
        return column_moments(data, mean.mutable_data(), var.mutable_data());
      },
      py::arg("data"), py::arg("mean").noconvert(), py::arg("var").noconvert(),
      "Weighted column means and variances; returns the weight sum.");

  m.def(
      "sufficient_stats",
      [](const DeviceData &data, darray &mean_x, darray &mean_y, darray &Cxx, darray &Cxy,
         darray &Cyy, bool use_cublas) {
        require(data.y != nullptr, "sufficient_stats needs y");
        check_vec(mean_x, data.d, "mean_x");
        check_vec(mean_y, data.k, "mean_y");
        check_mat(Cxx, data.d, data.d, "Cxx");
        check_mat(Cxy, data.d, data.k, "Cxy");
        check_mat(Cyy, data.k, data.k, "Cyy");
        std::string engine;
        double wsum;
        {
          py::gil_scoped_release nogil;
          wsum = sufficient_stats(data, use_cublas, mean_x.mutable_data(), mean_y.mutable_data(),
                                  Cxx.mutable_data(), Cxy.mutable_data(), Cyy.mutable_data(),
                                  &engine);
        }
        return py::make_tuple(wsum, engine);
      },
      py::arg("data"), py::arg("mean_x").noconvert(), py::arg("mean_y").noconvert(),
      py::arg("Cxx").noconvert(), py::arg("Cxy").noconvert(), py::arg("Cyy").noconvert(),
      py::arg("use_cublas") = true,
      "Centred sufficient statistics; returns (weight_sum, engine), engine 'cublas' or 'own'.");

  m.def(
      "descend",
      [](const DeviceData &data, DescentSettings s, darray &V, darray &c, darray &loss_curve,
         const std::optional<darray> &shift, const std::optional<darray> &scale) {
        check_mat(V, data.d, data.k, "V");
        check_vec(c, data.k, "c");
        check_vec(loss_curve, std::max<index_t>(s.max_iter, 0), "loss_curve");
        s.shift = opt_ptr(shift, data.d, "shift");
        s.scale = opt_ptr(scale, data.d, "scale");
        DescentOutcome r;
        {
          py::gil_scoped_release nogil;
          r = descend(LossKind::kSquared, data, s, V.mutable_data(), c.mutable_data(),
                      loss_curve.mutable_data(), python_interrupted);
        }
        if (r.status == 3) throw py::error_already_set();
        return py::make_tuple(r.n_iter, r.status, r.grad_norm0, r.grad_norm, r.last_loss,
                              r.host_waits);
      },
      py::arg("data"), py::arg("settings"), py::arg("V").noconvert(), py::arg("c").noconvert(),
      py::arg("loss_curve").noconvert(), py::arg("shift").noconvert() = py::none(),
      py::arg("scale").noconvert() = py::none(),
      "Gradient descent on the device. Updates V, c, loss_curve in place; returns "
      "(n_iter, status, grad_norm0, grad_norm, last_loss, host_waits).");

  m.def(
      "sgd",
      [](const DeviceData &data, SgdSettings s, darray &V, darray &c, darray &loss_curve,
         const std::optional<darray> &shift, const std::optional<darray> &scale) {
        check_mat(V, data.d, data.k, "V");
        check_vec(c, data.k, "c");
        require(data.y != nullptr, "sgd needs y");
        require(s.batch_size >= 1, "batch_size must be at least 1");
        check_vec(loss_curve, std::max<index_t>(s.max_epochs, 0), "loss_curve");
        s.shift = opt_ptr(shift, data.d, "shift");
        s.scale = opt_ptr(scale, data.d, "scale");
        SgdOutcome r;
        {
          py::gil_scoped_release nogil;
          r = sgd(LossKind::kSquared, data, s, V.mutable_data(), c.mutable_data(),
                  loss_curve.mutable_data(), python_interrupted);
        }
        if (r.status == 3) throw py::error_already_set();
        return py::make_tuple(r.n_epochs, r.status, r.best_loss, r.no_improvement, r.ref_loss);
      },
      py::arg("data"), py::arg("settings"), py::arg("V").noconvert(), py::arg("c").noconvert(),
      py::arg("loss_curve").noconvert(), py::arg("shift").noconvert() = py::none(),
      py::arg("scale").noconvert() = py::none(),
      "Mini-batch SGD epochs on the device. Updates V, c, loss_curve in place; returns "
      "(n_epochs, status, best_loss, no_improvement, ref_loss).");
}
