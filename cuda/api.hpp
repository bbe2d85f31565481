// Host entry points of fastlinreg's CUDA kernels: plain C++ on raw pointers,
// no CUDA types, so the pybind11 layer (module_cuda.cpp) compiles with the
// host compiler alone. The twin of cpp/include/fastlinreg/kernels.hpp.
//
// Pointer conventions: "device" pointers point to GPU memory (X, y and
// sample weights, which stay on the device for a whole fit); every other
// array is host memory of a few d * k doubles, copied in and out by the call.
// All 2-D arrays are row-major; X may have a row stride ldx >= d.
// Every call runs on the legacy default stream (stream 0) and returns once
// its results are on the host, except predict(), whose output stays on the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fastlinreg/losses.hpp"

namespace fastlinreg {
namespace cuda {

using index_t = std::int64_t;

// Rows of a (weighted) regression problem in device memory.
struct DeviceData {
  const void *X = nullptr;  // device (n, d), row stride ldx; float32 or float64
  int itemsize = 8;         // 4: float32, 8: float64
  index_t n = 0, d = 0, ldx = 0;
  const double *y = nullptr;  // device (n, k) or nullptr for y = 0
  index_t k = 1;
  const double *sw = nullptr;  // device (n) sample weights, or nullptr
  double weight_sum = 0.0;     // sum of sw, or n
  LossKind loss = LossKind::kSquared;
};

// The descent loop's settings (descent.hpp's DescentParams; host pointers).
struct DescentSettings {
  index_t max_iter = 100;
  double learning_rate = 0.01;
  double tol = -1.0;  // < 0: no convergence test
  double alpha = 0.0;
  bool fit_intercept = true;
  const double *shift = nullptr;  // host (d) or nullptr
  const double *scale = nullptr;  // host (d) or nullptr
  double divergence_factor = 1e8;
  index_t check_every = 16;  // steps between the host's looks at the device's stop flag
};

struct DescentOutcome {
  index_t n_iter = 0;
  int status = 0;  // DescentStatus: 0 max_iter, 1 converged, 2 diverged, 3 interrupted
  double last_loss = 0.0;
  index_t host_waits = 0;  // blocking waits on the device, the final copy-back included
};

// sgd.hpp's SgdParams (host pointers).
struct SgdSettings {
  index_t max_epochs = 5, batch_size = 256;
  bool shuffle = true;
  std::uint64_t seed = 0;
  double eta0 = 0.01;  // epoch e steps eta0 / sqrt(1 + e), as sgd.hpp
  index_t epoch_offset = 0;
  double alpha = 0.0, tol = -1.0;
  index_t n_iter_no_change = 5;
  double ref_loss = 0.0, best_loss = 0.0;
  index_t no_improvement = 0;
  bool fit_intercept = true;
  const double *shift = nullptr, *scale = nullptr;
};

struct SgdOutcome {
  index_t n_epochs = 0;
  int status = 0;
  double best_loss = 0.0;
  index_t no_improvement = 0;
  double ref_loss = 0.0;
};

// True stops the loop (Ctrl-C); called by the launching thread between batches of steps.
using StopCheck = std::function<bool()>;

// --- the runtime -----------------------------------------------------------
struct DeviceStatus {
  int error = 0;           // cudaError_t of cudaGetDeviceCount (0: success)
  std::string error_name;  // e.g. "cudaErrorNoDevice"
  std::string message;     // cudaGetErrorString
  int device_count = 0;
  int runtime_version = 0;  // CUDART_VERSION this module was built with
  int driver_version = 0;   // 0 when no driver answers
  std::string name;         // device 0's name, if any
  int cc_major = 0, cc_minor = 0;
};
// Never throws: asking is the lazy initialisation of the runtime.
DeviceStatus device_status();

void *device_alloc(std::size_t nbytes);
void device_free(void *p) noexcept;
void copy_to_device(void *dst, const void *src, std::size_t nbytes);
void copy_to_host(void *dst, const void *src, std::size_t nbytes);
void synchronize();

// cuBLAS, loaded at run time (cublas_loader.cpp): the first path that opens, or the
// soname of this build's CUDA major version. Returns the path or soname loaded.
std::string load_cublas(const std::vector<std::string> &candidates);
bool cublas_loaded();

// --- the kernels -------------------------------------------------------------
// One fused pass of data.loss at (W (d, k), b (k)), host arrays. Returns the
// mean loss; G (d, k) and gb (k) (host) get the mean gradients.
double fused_pass(const DeviceData &data, const double *W, const double *b, double *G, double *gb);

// P (device, (n, k) float64) = X W + b, accumulated in double.
void predict(const DeviceData &data, const double *W, const double *b, double *P);

// Weighted column means and variances (host (d) each); returns the weight sum.
double column_moments(const DeviceData &data, double *mean, double *var);

// Centred sufficient statistics (stats.hpp's layout, host outputs); needs data.y.
// The rank update runs in cuBLAS dsyrk when cuBLAS is loaded and use_cublas,
// else in fastlinreg's own tiled kernel; *engine says which ("cublas" / "own").
double sufficient_stats(const DeviceData &data, bool use_cublas, double *mean_x, double *mean_y,
                        double *Cxx, double *Cxy, double *Cyy, std::string *engine);

// The whole descent on the device (descent.hpp's semantics): the model W (d, k)
// and b (k), host, the start in and the last iterate out (mapped to the
// descended space and back on the host, as descent.hpp's ParamMap does);
// loss_curve host (max_iter).
DescentOutcome descend(const DeviceData &data, const DescentSettings &s, double *W, double *b,
                       double *loss_curve, const StopCheck &should_stop);

// Mini-batch SGD epochs (sgd.hpp's semantics, same shuffles): the model W, b
// host in/out, loss_curve host (max_epochs).
SgdOutcome sgd(const DeviceData &data, const SgdSettings &s, double *W, double *b,
               double *loss_curve, const StopCheck &should_stop);

// The launch plan of a fused pass (shape only): for tests and the benchmark.
struct FusedPlanInfo {
  index_t tile_rows, rows_per_block, n_blocks, n_groups, n_elems;
  bool staged;
  std::size_t smem_bytes;
};
FusedPlanInfo fused_plan(index_t n, index_t d, index_t ldx, index_t k, int itemsize);

}  // namespace cuda
}  // namespace fastlinreg
