// Host code (the host compiler): sgd.hpp's generator, the very one the CPU backend runs.
#include "sgd_order.hpp"

#include <numeric>
#include <utility>

#include "fastlinreg/sgd.hpp"

namespace fastlinreg {
namespace cuda {

struct EpochOrder::Rng {
  detail::SplitMix64 gen;
};

EpochOrder::EpochOrder(std::int64_t n, std::uint64_t seed, std::int64_t epoch_offset)
    : order_(static_cast<std::size_t>(n)),
      // The seeding of descend_sgd_impl (sgd.hpp).
      rng_(new Rng{{seed ^ (0xD1B54A32D192ED03ull * std::uint64_t(epoch_offset + 1))}}) {
  std::iota(order_.begin(), order_.end(), std::int64_t(0));
}

EpochOrder::~EpochOrder() { delete rng_; }

const std::vector<std::int64_t> &EpochOrder::next(bool shuffle) {
  if (shuffle)
    for (std::int64_t i = static_cast<std::int64_t>(order_.size()) - 1; i > 0; --i)
      std::swap(order_[i], order_[rng_->gen.below(static_cast<std::uint64_t>(i + 1))]);
  return order_;
}

}  // namespace cuda
}  // namespace fastlinreg
