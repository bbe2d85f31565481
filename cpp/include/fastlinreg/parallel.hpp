// OpenMP guard: the kernels compile and run single-threaded without OpenMP.
#pragma once

#include "fastlinreg/isa.hpp"

#include <cstdint>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(FASTLINREG_HAVE_OPENMP)
#include <omp.h>
#else
inline int omp_get_thread_num() { return 0; }
inline int omp_get_num_threads() { return 1; }
inline int omp_get_max_threads() { return 1; }
#endif

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

// True when the module was built with OpenMP.
constexpr bool has_openmp() {
#if defined(FASTLINREG_HAVE_OPENMP)
  return true;
#else
  return false;
#endif
}

// The thread count a call uses when the caller passes n_threads <= 0:
// omp_get_max_threads(), which OMP_NUM_THREADS and threadpoolctl both set.
inline int resolve_threads(int n_threads) {
  if (n_threads > 0) return n_threads;
  const int t = omp_get_max_threads();
  return t > 0 ? t : 1;
}

// The pass protocol of a gradient oracle whose pass is n_units() independent
// units of work (Derived::unit(u) each, writing only its own results):
//   prepare(W, b)  one thread records the model (Derived's own);
//   share()        every thread of the team its static share of the units,
//                  with no barrier (serial outside a parallel region);
//   share_all()    all the units on the calling thread, no work-sharing
//                  construct (one thread of a team while the others wait);
//   partials(W, b) prepare on one thread, then share, in any team;
//   reduce(...)    one thread, once every share is done (Derived's own).
template <class Derived>
class UnitPass {
 public:
  void partials(const double *W, const double *b) {
#pragma omp single
    self().prepare(W, b);
    share();
  }
  void share() {
    const std::int64_t n = self().n_units();
#pragma omp for schedule(static) nowait
    for (std::int64_t u = 0; u < n; ++u) self().unit(u);
  }
  void share_all() {
    const std::int64_t n = self().n_units();
    for (std::int64_t u = 0; u < n; ++u) self().unit(u);
  }

 private:
  Derived &self() { return static_cast<Derived &>(*this); }
};

// A barrier for the threads of one team that meet once or twice a step for
// thousands of steps (the descent loop). A thread that arrives early spins
// for at most kSpin, then sleeps until the last one arrives.
//
// Why not `omp barrier`: libgomp's waiting threads spin for GOMP_SPINCOUNT
// (300000) pause instructions before they sleep, several milliseconds on
// recent cores. When another process holds one of the cores, the thread
// that is late has no core to run on while its partner spins on the other:
// measured on 2 cores with one busy process, 2-thread steps of 0.5-20 ms took
// 1.2-1.8x the one-thread time. Sleeping after a short spin gives the late
// thread that core. Balanced steps on a quiet machine arrive within the spin.
class SpinThenSleepBarrier {
 public:
  // How long an early thread spins before it sleeps.
  static constexpr std::chrono::microseconds kSpin{50};

  // Returns once every thread of the calling team (omp_get_num_threads(),
  // which may be fewer than a parallel region asked for) has called it. What
  // each thread wrote before its call is visible to every thread after it.
  void wait() {
    const int n = omp_get_num_threads();
    const unsigned gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(gen + 1, std::memory_order_seq_cst);
      if (sleepers_.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        wake_.notify_all();
      }
      return;
    }
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (unsigned i = 1;; ++i) {
      if (generation_.load(std::memory_order_acquire) != gen) return;
      pause();
      if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) break;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != gen; });
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<int> arrived_{0};
  std::atomic<unsigned> generation_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
};

FASTLINREG_ISA_END
}  // namespace fastlinreg
