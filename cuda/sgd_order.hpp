// The row order of SGD epochs, drawn on the host by the CPU backend's own
// generator (sgd.hpp's SplitMix64 and Fisher-Yates), so both backends visit
// the rows in the same order for the same seed.
#pragma once

#include <cstdint>
#include <vector>

namespace fastlinreg {
namespace cuda {

class EpochOrder {
 public:
  EpochOrder(std::int64_t n, std::uint64_t seed, std::int64_t epoch_offset);
  ~EpochOrder();
  EpochOrder(const EpochOrder &) = delete;
  EpochOrder &operator=(const EpochOrder &) = delete;
  // The next epoch's order: shuffled in place from the last one when shuffle.
  const std::vector<std::int64_t> &next(bool shuffle);

 private:
  struct Rng;
  std::vector<std::int64_t> order_;
  Rng *rng_;
};

}  // namespace cuda
}  // namespace fastlinreg
