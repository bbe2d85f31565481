// The whole gradient descent on the device (descent.hpp's loop, step for
// step): each step is the fused pass, the block-order reduction and
// descent_step_kernel, which applies the divergence guard, the tol rule and
// the update on the device and raises a stop flag that turns the queued
// steps into no-ops. The host only launches: with tol < 0 it never waits
// until the end; with tol >= 0 it waits on a flag copied back every
// check_every steps, at most two batches behind the launches, so the device
// always has queued work. The loss curve comes back once, at the end.
#include <algorithm>
#include <cmath>
#include <vector>

#include "fused.cuh"
#include "standardise.cuh"

namespace fastlinreg {
namespace cuda {

namespace {

constexpr int kStepThreads = 256;

struct StepState {
  int stop;    // set by the step that ends the run; the later steps are no-ops
  int status;  // DescentStatus
  long long n_iter;
  double loss0, grad_norm0, norm2, last_loss;
};

struct StepArgs {
  double *total;  // (d k + k + 1): G, gb, loss of the pass (mean), reused in place
  double *V, *c, *W, *b;
  DeviceStandardisation st;
  double learning_rate, tol, alpha, divergence_factor;
  index_t max_iter;
  double *loss_curve;  // device (max_iter)
  StepState *state;
};

__global__ void __launch_bounds__(kStepThreads) descent_step_kernel(const StepArgs a, index_t t) {
  __shared__ double scratch[kWarp];
  if (a.state->stop) return;  // every thread reads it before thread 0 may write it
  const index_t d = a.st.d, k = a.st.k, dk = d * k;
  double *G = a.total, *gb = a.total + dk;
  double loss = a.total[dk + k];
  if (a.alpha != 0.0) loss += 0.5 * a.alpha * squared_norm(a.W, dk, scratch);
  const double loss0 = t == 0 ? loss : a.state->loss0;
  __syncthreads();  // all reads of the state are done
  if (threadIdx.x == 0) {
    a.state->last_loss = loss;
    if (t == 0) a.state->loss0 = loss;
  }
  if (!isfinite(loss) || (t > 0 && loss > a.divergence_factor * loss0)) {
    if (threadIdx.x == 0) {
      a.state->status = 2;
      a.state->stop = 1;
    }
    return;
  }
  const double norm2 = a.st.to_descended_norm2(G, gb, a.W, a.alpha, scratch);
  const double norm0 = t == 0 ? sqrt(norm2) : a.state->grad_norm0;
  if (threadIdx.x == 0) {
    a.state->norm2 = norm2;
    if (t == 0) a.state->grad_norm0 = norm0;  // later steps only read it
  }
  if (!isfinite(norm2)) {
    if (threadIdx.x == 0) {
      a.state->status = 2;
      a.state->stop = 1;
    }
    return;
  }
  if (threadIdx.x == 0) a.loss_curve[t] = loss;
  for (index_t e = threadIdx.x; e < dk; e += blockDim.x) a.V[e] -= a.learning_rate * G[e];
  if (a.st.fit_intercept)
    for (index_t q = threadIdx.x; q < k; q += blockDim.x) a.c[q] -= a.learning_rate * gb[q];
  __syncthreads();  // V, c complete before to_model reads them
  if (threadIdx.x == 0) {
    a.state->n_iter = t + 1;
    if (a.tol >= 0.0 && sqrt(norm2) <= a.tol * norm0) {
      a.state->status = 1;
      a.state->stop = 1;
    } else if (t + 1 >= a.max_iter) {
      a.state->status = 0;
      a.state->stop = 1;
    }
  }
  a.st.to_model(a.V, a.c, a.W, a.b, scratch);
}

// Pinned flags the host reads without blocking (cudaEventQuery) or, with
// tol >= 0, by waiting on the oldest batch only.
class StopPoller {
 public:
  static constexpr int kSlots = 3;
  explicit StopPoller(const int *device_flag) : flag_(device_flag) {
    FASTLINREG_CUDA_CHECK(cudaMallocHost(&host_, sizeof(int) * kSlots));
    for (auto &e : events_)
      FASTLINREG_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  ~StopPoller() {
    for (auto &e : events_) cudaEventDestroy(e);
    cudaFreeHost(host_);
  }
  StopPoller(const StopPoller &) = delete;
  StopPoller &operator=(const StopPoller &) = delete;

  // After a batch of launches: queue a copy of the flag (if a slot is free,
  // or may be waited for). Returns true when a completed copy shows the
  // flag up. `block` lets it wait on the oldest copy when all slots are
  // queued: the device still has the newer batches to run meanwhile.
  bool after_batch(bool block, index_t &waits) {
    if (pending_ == kSlots) {
      const int oldest = (next_ + kSlots - pending_) % kSlots;
      if (block) {
        FASTLINREG_CUDA_CHECK(cudaEventSynchronize(events_[oldest]));
        ++waits;
      }
    }
    if (drain()) return true;
    if (pending_ < kSlots) {
      FASTLINREG_CUDA_CHECK(
          cudaMemcpyAsync(host_ + next_, flag_, sizeof(int), cudaMemcpyDeviceToHost, 0));
      FASTLINREG_CUDA_CHECK(cudaEventRecord(events_[next_], 0));
      next_ = (next_ + 1) % kSlots;
      ++pending_;
    }
    return false;
  }

 private:
  // Retire the completed copies, oldest first; true if one shows the flag.
  bool drain() {
    while (pending_ > 0) {
      const int oldest = (next_ + kSlots - pending_) % kSlots;
      const cudaError_t q = cudaEventQuery(events_[oldest]);
      if (q == cudaErrorNotReady) return false;
      FASTLINREG_CUDA_CHECK(q);
      --pending_;
      if (host_[oldest]) return true;
    }
    return false;
  }

  const int *flag_;
  int *host_ = nullptr;
  cudaEvent_t events_[kSlots];
  int next_ = 0, pending_ = 0;
};

}  // namespace

DescentOutcome descend(const DeviceData &data, const DescentSettings &s, double *W_io, double *b_io,
                       double *loss_curve, const StopCheck &should_stop) {
  DescentOutcome out;
  const index_t d = data.d, k = data.k, dk = d * k;
  // descent.hpp's first moves: the start in the descended space, and the model it stands for.
  std::vector<double> V(static_cast<std::size_t>(dk)), c(static_cast<std::size_t>(k));
  std::vector<double> W(static_cast<std::size_t>(dk)), b(static_cast<std::size_t>(k));
  host_from_model(d, k, s.shift, s.scale, s.fit_intercept, W_io, b_io, V.data(), c.data());
  host_to_model(d, k, s.shift, s.scale, s.fit_intercept, V.data(), c.data(), W.data(), b.data());
  if (s.max_iter <= 0) {
    std::copy(W.begin(), W.end(), W_io);
    std::copy(b.begin(), b.end(), b_io);
    return out;
  }
  const FusedPlan plan = plan_fused(data.n, d, k, data.itemsize);

  // One allocation for the small arrays: V, c, W, b, shift, scale, the pass totals, the curve.
  const std::size_t n_small = std::size_t(2 * dk + 2 * k + 2 * d + plan.n_elems + s.max_iter);
  DeviceBuffer small(sizeof(double) * n_small);
  DeviceBuffer partial(sizeof(double) * std::size_t(plan.n_elems * plan.n_blocks));
  DeviceBuffer state_d(sizeof(StepState));
  double *Vd = small.as<double>(), *cd = Vd + dk, *Wd = cd + k, *bd = Wd + dk;
  double *shift_d = bd + k, *scale_d = shift_d + d, *total = scale_d + d;
  double *curve_d = total + plan.n_elems;

  copy_to_device(Vd, V.data(), sizeof(double) * V.size());
  copy_to_device(cd, c.data(), sizeof(double) * c.size());
  copy_to_device(Wd, W.data(), sizeof(double) * W.size());
  copy_to_device(bd, b.data(), sizeof(double) * b.size());
  if (s.shift) copy_to_device(shift_d, s.shift, sizeof(double) * std::size_t(d));
  if (s.scale) copy_to_device(scale_d, s.scale, sizeof(double) * std::size_t(d));
  FASTLINREG_CUDA_CHECK(cudaMemset(state_d.as<StepState>(), 0, sizeof(StepState)));
  StepState *state = state_d.as<StepState>();

  StepArgs step{};
  step.total = total;
  step.V = Vd;
  step.c = cd;
  step.W = Wd;
  step.b = bd;
  step.st = {d, k, s.shift ? shift_d : nullptr, s.scale ? scale_d : nullptr, s.fit_intercept};
  step.learning_rate = s.learning_rate;
  step.tol = s.tol;
  step.alpha = s.alpha;
  step.divergence_factor = s.divergence_factor;
  step.max_iter = s.max_iter;
  step.loss_curve = curve_d;
  step.state = state;

  StopPoller poller(&state->stop);
  const index_t every = std::max<index_t>(1, s.check_every);
  const bool can_stop_early = s.tol >= 0.0;
  bool interrupted = false;
  dispatch_elementwise_loss(data.loss, [&](auto policy) {
    using Loss = decltype(policy);
    dispatch_dtype(data.itemsize, [&](auto scalar) {
      using T = decltype(scalar);
      FusedArgs<T> a = fused_args<T>(data, plan);
      a.W = Wd;
      a.b = bd;
      a.partial = partial.as<double>();
      a.stop = &state->stop;
      for (index_t t = 0; t < s.max_iter; ++t) {
        launch_fused_pass<Loss, T>(a);
        launch_reduce_partials(partial.as<double>(), plan, 1.0 / data.weight_sum, total,
                               &state->stop);
        descent_step_kernel<<<1, kStepThreads>>>(step, t);
        check_launch("descent_step_kernel");
        if ((t + 1) % every == 0 && t + 1 < s.max_iter) {
          if (should_stop && should_stop()) {
            interrupted = true;
            break;
          }
          if (poller.after_batch(can_stop_early, out.host_waits)) break;
        }
      }
    });
  });

  StepState host_state{};
  copy_to_host(&host_state, state, sizeof(StepState));  // the one wait of a tol < 0 run
  ++out.host_waits;
  copy_to_host(V.data(), Vd, sizeof(double) * V.size());
  copy_to_host(c.data(), cd, sizeof(double) * c.size());
  copy_to_host(loss_curve, curve_d, sizeof(double) * std::size_t(host_state.n_iter));
  // descent.hpp's last move, on the host: the model of the last iterate.
  host_to_model(d, k, s.shift, s.scale, s.fit_intercept, V.data(), c.data(), W_io, b_io);
  out.n_iter = host_state.n_iter;
  out.status = host_state.stop || !interrupted ? host_state.status : 3;
  out.last_loss = host_state.last_loss;
  return out;
}

}  // namespace cuda
}  // namespace fastlinreg
