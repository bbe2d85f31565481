// Mini-batch SGD epochs on the device (sgd.hpp's semantics). Each batch is
// the fused pass over the batch's rows, read in place through the epoch's
// row order (no gather copy), the block-order reduction, and
// sgd_batch_kernel (penalty, standardised gradient, the non-finite guard,
// the update), all queued without a host wait. The host draws the order
// (sgd_order.cpp, the CPU backend's generator), and once per epoch reads the
// epoch's loss back to apply scikit-learn's tol rule exactly as the CPU does.
// Small batches make this launch-bound: three launches a batch.
#include <algorithm>
#include <cmath>
#include <vector>

#include "fused.cuh"
#include "sgd_order.hpp"
#include "standardise.cuh"

namespace fastlinreg {
namespace cuda {

namespace {

constexpr int kBatchThreads = 256;

struct EpochState {
  int stop;  // a batch's loss was not finite: the epoch's later batches are no-ops
  int pad;
  double epoch_loss;  // sum over batches of loss * rows
};

struct BatchArgs {
  double *total;  // (d k + k + 1): the batch's mean G, gb, loss; reused in place
  double *V, *c, *W, *b;
  DeviceStandardisation st;
  double alpha;
  EpochState *state;
};

__global__ void __launch_bounds__(kBatchThreads)
    sgd_batch_kernel(const BatchArgs a, double eta, double rows) {
  __shared__ double scratch[kWarp];
  if (a.state->stop) return;
  const index_t d = a.st.d, k = a.st.k, dk = d * k;
  double *G = a.total, *gb = a.total + dk;
  double loss = a.total[dk + k];
  if (a.alpha != 0.0) loss += 0.5 * a.alpha * squared_norm(a.W, dk, scratch);
  a.st.to_descended_norm2(G, gb, a.W, a.alpha, scratch);  // its barriers order the state reads
  if (!isfinite(loss)) {
    if (threadIdx.x == 0) a.state->stop = 1;
    return;
  }
  if (threadIdx.x == 0) a.state->epoch_loss += loss * rows;
  for (index_t e = threadIdx.x; e < dk; e += blockDim.x) a.V[e] -= eta * G[e];
  if (a.st.fit_intercept)
    for (index_t q = threadIdx.x; q < k; q += blockDim.x) a.c[q] -= eta * gb[q];
  __syncthreads();
  a.st.to_model(a.V, a.c, a.W, a.b, scratch);
}

}  // namespace

SgdOutcome sgd(const DeviceData &data, const SgdSettings &p, double *W_io, double *b_io,
               double *loss_curve, const StopCheck &should_stop) {
  const index_t n = data.n, d = data.d, k = data.k, dk = d * k;
  if (n < 1) throw std::invalid_argument("X needs at least one row");
  const index_t B = std::max<index_t>(1, std::min(p.batch_size, n));
  const index_t tail = n % B;
  const double mean_w = data.weight_sum / double(n);
  const FusedPlan full = plan_fused(B, d, k, data.itemsize);
  const FusedPlan last = plan_fused(tail > 0 ? tail : B, d, k, data.itemsize);

  const std::size_t n_small = std::size_t(2 * dk + 2 * k + 2 * d + full.n_elems);
  DeviceBuffer small(sizeof(double) * n_small);
  DeviceBuffer partial(sizeof(double) * std::size_t(std::max(full.n_elems * full.n_blocks,
                                                             last.n_elems * last.n_blocks)));
  DeviceBuffer order_d(sizeof(std::int64_t) * std::size_t(n));
  DeviceBuffer state_d(sizeof(EpochState));
  double *Vd = small.as<double>(), *cd = Vd + dk, *Wd = cd + k, *bd = Wd + dk;
  double *shift_d = bd + k, *scale_d = shift_d + d, *total = scale_d + d;

  // sgd.hpp's first moves: the start in the descended space, and the model it stands for.
  std::vector<double> V(static_cast<std::size_t>(dk)), c(static_cast<std::size_t>(k));
  std::vector<double> W(static_cast<std::size_t>(dk)), b(static_cast<std::size_t>(k));
  host_from_model(d, k, p.shift, p.scale, p.fit_intercept, W_io, b_io, V.data(), c.data());
  host_to_model(d, k, p.shift, p.scale, p.fit_intercept, V.data(), c.data(), W.data(), b.data());
  copy_to_device(Vd, V.data(), sizeof(double) * V.size());
  copy_to_device(cd, c.data(), sizeof(double) * c.size());
  copy_to_device(Wd, W.data(), sizeof(double) * W.size());
  copy_to_device(bd, b.data(), sizeof(double) * b.size());
  if (p.shift) copy_to_device(shift_d, p.shift, sizeof(double) * std::size_t(d));
  if (p.scale) copy_to_device(scale_d, p.scale, sizeof(double) * std::size_t(d));
  EpochState *state = state_d.as<EpochState>();

  BatchArgs step{};
  step.total = total;
  step.V = Vd;
  step.c = cd;
  step.W = Wd;
  step.b = bd;
  step.st = {d, k, p.shift ? shift_d : nullptr, p.scale ? scale_d : nullptr, p.fit_intercept};
  step.alpha = p.alpha;
  step.state = state;

  SgdOutcome res;
  res.best_loss = p.best_loss;
  res.no_improvement = p.no_improvement;
  res.ref_loss = p.ref_loss;
  EpochOrder order(n, p.seed, p.epoch_offset);
  auto finish = [&](int status) {
    copy_to_host(V.data(), Vd, sizeof(double) * V.size());
    copy_to_host(c.data(), cd, sizeof(double) * c.size());
    host_to_model(d, k, p.shift, p.scale, p.fit_intercept, V.data(), c.data(), W_io, b_io);
    res.status = status;
    return res;
  };
  for (index_t e = 0; e < p.max_epochs; ++e) {
    if (should_stop && should_stop()) return finish(3);
    const std::vector<std::int64_t> &rows = order.next(p.shuffle);
    copy_to_device(order_d.as<std::int64_t>(), rows.data(), sizeof(std::int64_t) * rows.size());
    FASTLINREG_CUDA_CHECK(cudaMemset(state, 0, sizeof(EpochState)));
    const double eta = p.eta0 / std::sqrt(1.0 + double(p.epoch_offset + e));
    dispatch_elementwise_loss(data.loss, [&](auto policy) {
      using Loss = decltype(policy);
      dispatch_dtype(data.itemsize, [&](auto scalar) {
        using T = decltype(scalar);
        for (index_t s0 = 0; s0 < n; s0 += B) {
          const index_t m = std::min(B, n - s0);
          const FusedPlan &plan = m == B ? full : last;
          FusedArgs<T> a = fused_args<T>(data, plan);
          a.n = m;
          a.rows = order_d.as<std::int64_t>() + s0;
          a.W = Wd;
          a.b = bd;
          a.partial = partial.as<double>();
          a.stop = &state->stop;
          launch_fused_pass<Loss, T>(a);
          launch_reduce_partials(partial.as<double>(), plan, 1.0 / (double(m) * mean_w), total,
                                 &state->stop);
          sgd_batch_kernel<<<1, kBatchThreads>>>(step, eta, double(m));
          check_launch("sgd_batch_kernel");
        }
      });
    });
    EpochState host{};
    copy_to_host(&host, state, sizeof(EpochState));  // one wait an epoch
    const double epoch_loss = host.epoch_loss / double(n);
    if (host.stop || !std::isfinite(epoch_loss)) return finish(2);
    loss_curve[e] = epoch_loss;
    res.n_epochs = e + 1;
    if (!(res.ref_loss > 0.0)) res.ref_loss = epoch_loss;
    if (p.tol >= 0.0) {  // sgd.hpp's rule, line for line
      const double margin = p.tol * res.ref_loss;
      res.no_improvement = epoch_loss > res.best_loss - margin ? res.no_improvement + 1 : 0;
      if (res.no_improvement >= p.n_iter_no_change) {
        res.best_loss = std::min(res.best_loss, epoch_loss);
        return finish(1);
      }
    }
    res.best_loss = std::min(res.best_loss, epoch_loss);
  }
  return finish(0);
}

}  // namespace cuda
}  // namespace fastlinreg
