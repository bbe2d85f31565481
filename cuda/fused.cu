// The fused pass's launches, its block-order reduction, and the host entry
// fused_pass(). The kernel body is in fused.cuh.
#include <vector>

#include "fused.cuh"

namespace fastlinreg {
namespace cuda {

namespace {

constexpr int kReduceThreads = 256;

// A warp per element: lane l sums blocks l, l + 32, ... in order, then the
// lanes are added in the butterfly. The order depends on n_blocks alone.
__global__ void __launch_bounds__(kReduceThreads)
    reduce_partials_kernel(const double *__restrict__ partial, index_t n_blocks, index_t n_elems,
                           double scale, double *__restrict__ out, const int *stop) {
  if (stop && *stop) return;
  const index_t e = index_t(blockIdx.x) * (kReduceThreads / kWarp) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (e >= n_elems) return;  // whole warps leave together
  const double *row = partial + e * n_blocks;
  double s = 0.0;
  for (index_t blk = lane; blk < n_blocks; blk += kWarp) s += row[blk];
  s = warp_sum(s);
  if (lane == 0) out[e] = s * scale;
}

}  // namespace

template <class Loss, class T>
void launch_fused_pass(const FusedArgs<T> &a) {
  const FusedPlan &p = a.plan;
  const dim3 grid(static_cast<unsigned>(p.n_blocks), static_cast<unsigned>(p.n_groups));
  if (p.staged)
    fused_pass_kernel<Loss, T, true><<<grid, kFusedThreads, p.smem_bytes>>>(a);
  else
    fused_pass_kernel<Loss, T, false><<<grid, kFusedThreads, p.smem_bytes>>>(a);
  check_launch("fused_pass_kernel");
}

void launch_reduce_partials(const double *partial, const FusedPlan &plan, double scale, double *out,
                            const int *stop) {
  const index_t warps = kReduceThreads / kWarp;
  const auto blocks = static_cast<unsigned>(ceil_div(plan.n_elems, warps));
  reduce_partials_kernel<<<blocks, kReduceThreads>>>(partial, plan.n_blocks, plan.n_elems, scale,
                                                     out, stop);
  check_launch("reduce_partials_kernel");
}

template void launch_fused_pass<SquaredLoss, float>(const FusedArgs<float> &);
template void launch_fused_pass<SquaredLoss, double>(const FusedArgs<double> &);

FusedPlanInfo fused_plan(index_t n, index_t d, index_t ldx, index_t k, int itemsize) {
  (void)ldx;  // the plan does not depend on the row stride
  const FusedPlan p = plan_fused(n, d, k, itemsize);
  return {p.tile_rows, p.rows_per_block, p.n_blocks, p.n_groups, p.n_elems, p.staged, p.smem_bytes};
}

double fused_pass(const DeviceData &data, const double *W, const double *b, double *G, double *gb) {
  const index_t d = data.d, k = data.k;
  const FusedPlan plan = plan_fused(data.n, d, k, data.itemsize);
  DeviceBuffer model(sizeof(double) * std::size_t(d * k + k));
  DeviceBuffer partial(sizeof(double) * std::size_t(plan.n_elems * plan.n_blocks));
  DeviceBuffer total(sizeof(double) * std::size_t(plan.n_elems));
  double *Wd = model.as<double>(), *bd = Wd + d * k;
  copy_to_device(Wd, W, sizeof(double) * std::size_t(d * k));
  copy_to_device(bd, b, sizeof(double) * std::size_t(k));
  dispatch_elementwise_loss(data.loss, [&](auto policy) {
    using Loss = decltype(policy);
    dispatch_dtype(data.itemsize, [&](auto scalar) {
      using T = decltype(scalar);
      FusedArgs<T> a = fused_args<T>(data, plan);
      a.W = Wd;
      a.b = bd;
      a.partial = partial.as<double>();
      launch_fused_pass<Loss, T>(a);
    });
  });
  launch_reduce_partials(partial.as<double>(), plan, 1.0 / data.weight_sum, total.as<double>(),
                         nullptr);
  std::vector<double> host(static_cast<std::size_t>(plan.n_elems));
  copy_to_host(host.data(), total.as<double>(), sizeof(double) * host.size());  // waits
  std::copy(host.begin(), host.begin() + d * k, G);
  std::copy(host.begin() + d * k, host.begin() + d * k + k, gb);
  return host[static_cast<std::size_t>(d * k + k)];
}

}  // namespace cuda
}  // namespace fastlinreg
