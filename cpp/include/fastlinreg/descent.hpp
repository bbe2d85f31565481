// The whole gradient-descent loop, over any gradient oracle.
//
// Parameters are descended in a possibly standardised space: with a column
// shift m (d) and scale s (d), the iterate (V, c) stands for the model
//   W = V / s (row-wise),   b = c - m^T W,
// which is gradient descent on the centred, scaled problem z = (x - m) / s
// without ever forming z: the oracle sees only (W, b) and returns the raw
// gradient, which is mapped back in O(d k). With no shift and no scale this
// is exactly plain gradient descent on (W, b), the tutorial's iterates.
#pragma once

#include "fastlinreg/isa.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "fastlinreg/fused.hpp"
#include "fastlinreg/parallel.hpp"
#include "fastlinreg/types.hpp"

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

namespace detail {

// The map between the model (W, b) and the descended (V, c); see
// Standardisation in types.hpp. The one place this arithmetic lives.
struct ParamMap {
  index_t d, k;
  const double *shift, *scale;
  bool fit_intercept;

  ParamMap(index_t d_, index_t k_, const Standardisation &s, bool fit_intercept_)
      : d(d_), k(k_), shift(s.shift), scale(s.scale), fit_intercept(fit_intercept_) {}

  // A column whose scale is +inf is frozen: a constant column, whose
  // coefficient stays 0 (the intercept absorbs it; the minimum-norm answer).
  bool frozen(index_t j) const { return scale && std::isinf(scale[j]); }

  // (W, b) -> (V, c): V = W * s (row-wise), c = b + m^T W (0 without an
  // intercept); a frozen column's coefficient is dropped.
  void from_model(const double *W, const double *b, double *V, double *c) const {
    for (index_t j = 0; j < d * k; ++j)
      V[j] = !scale ? W[j] : frozen(j / k) ? 0.0 : W[j] * scale[j / k];
    for (index_t q = 0; q < k; ++q) {
      double cq = fit_intercept ? b[q] : 0.0;
      if (shift && fit_intercept)
        for (index_t j = 0; j < d; ++j)
          if (!frozen(j)) cq += shift[j] * W[j * k + q];
      c[q] = cq;
    }
  }

  // (V, c) -> (W, b)
  void to_model(const double *V, const double *c, double *W, double *b) const {
    for (index_t j = 0; j < d; ++j) {
      const double inv = scale ? 1.0 / scale[j] : 1.0;
      for (index_t q = 0; q < k; ++q) W[j * k + q] = scale ? V[j * k + q] * inv : V[j * k + q];
    }
    for (index_t q = 0; q < k; ++q) {
      double bq = fit_intercept ? c[q] : 0.0;
      if (shift && fit_intercept)
        for (index_t j = 0; j < d; ++j) bq -= shift[j] * W[j * k + q];
      b[q] = bq;
    }
  }

  // Raw mean gradient (G, gb) at (W, b) -> gradient in (V, c), in place.
  // Adds the L2 term alpha * W to the coefficient gradient first. Returns
  // the gradient's norm.
  double to_descended(double *G, double *gb, const double *W, double alpha) const {
    return std::sqrt(to_descended_norm2(G, gb, W, alpha));
  }

  // to_descended, returning the squared norm: a step's tests need no sqrt.
  // alpha_k (k), when set, gives each output its own penalty.
  double to_descended_norm2(double *G, double *gb, const double *W, double alpha,
                            const double *alpha_k = nullptr) const {
    double norm2 = 0.0;
    for (index_t j = 0; j < d; ++j)
      for (index_t q = 0; q < k; ++q) {
        double g = G[j * k + q];
        const double a = alpha_k ? alpha_k[q] : alpha;
        if (a != 0.0) g += a * W[j * k + q];  // off every step's critical path when 0
        if (shift && fit_intercept) g -= shift[j] * gb[q];
        if (scale) g = frozen(j) ? 0.0 : g / scale[j];
        G[j * k + q] = g;
        norm2 += g * g;
      }
    if (fit_intercept)
      for (index_t q = 0; q < k; ++q) norm2 += gb[q] * gb[q];
    else
      for (index_t q = 0; q < k; ++q) gb[q] = 0.0;
    return norm2;
  }
};

// alpha/2 ||W||^2, or sum_q alpha_k[q]/2 ||W[:, q]||^2 when alpha_k is set.
inline double l2_penalty(const double *W, index_t d, index_t k, double alpha,
                         const double *alpha_k) {
  double pen = 0.0;
  for (index_t j = 0; j < d * k; ++j) pen += (alpha_k ? alpha_k[j % k] : alpha) * W[j] * W[j];
  return 0.5 * pen;
}

// The squared norm of the gradient G (d*k), gb (k) at V projected on V >= 0:
// a coordinate at the bound whose step would leave the set does not count.
inline double projected_norm2(const double *V, const double *G, const double *gb, index_t dk,
                              index_t k, bool fit_intercept) {
  double norm2 = 0.0;
  for (index_t j = 0; j < dk; ++j)
    if (V[j] > 0.0 || G[j] < 0.0) norm2 += G[j] * G[j];
  if (fit_intercept)
    for (index_t q = 0; q < k; ++q) norm2 += gb[q] * gb[q];
  return norm2;
}

inline void project_nonnegative(double *V, index_t dk) {
  for (index_t j = 0; j < dk; ++j) V[j] = std::max(V[j], 0.0);
}

// Persistent growth of a loss that should fall: `needed` rises in a row
// that lift it above where the rise began by more than `margin`. Descent
// with a safe step never rises (beyond rounding, which neither lasts nor
// reaches the margin); an unsafe one rises at a geometric rate once its
// unstable directions dominate.
struct GrowthWatch {
  index_t rises = 0;
  double prev = std::numeric_limits<double>::infinity(), base = 0.0;

  // True when `loss` ends `needed` rises in a row that together exceed
  // margin + rel * |the loss where they began|. The falling path is the
  // cheap one: it is every step of a converging run.
  bool grew(double loss, index_t needed, double margin, double rel = 0.0) {
    if (__builtin_expect(loss > prev, 0)) {
      if (rises++ == 0) base = prev;
      prev = loss;
      return rises >= needed && loss - base > margin + rel * std::fabs(base);
    }
    rises = 0;
    prev = loss;
    return false;
  }
};

// Gradient descent's rule: 8 rises in a row, together above 1e-3 of the first loss.
constexpr index_t kDescentRises = 8;
constexpr double kDescentMargin = 1e-3;

// The loop's working arrays: of a size fixed at compile time (N > 0), which
// lets a tiny problem's iterate live in registers, or on the heap (N == 0).
template <index_t N>
struct Buffer {
  double v[N];
  explicit Buffer(index_t) : v{} {}
  double *data() { return v; }
};
template <>
struct Buffer<0> {
  std::vector<double> v;
  explicit Buffer(index_t n) : v(static_cast<size_t>(n)) {}
  double *data() { return v.data(); }
};

}  // namespace detail

// Run gradient descent with the oracle. W (d, k) and b (k) hold the model to
// start from on entry and the last iterate on exit (those of a diverged run
// are not meaningful: the caller discards them). loss_curve has max_iter slots.
// The oracle follows UnitPass's protocol (parallel.hpp): prepare, share,
// share_all, partials and reduce(G, gb) -> loss; one that only runs serially
// (D > 0) needs only partials and reduce. D and K, when non-zero, are the
// oracle's d and k fixed at compile time (same steps, no heap, for tiny
// problems).
template <class Oracle, index_t D = 0, index_t K = 0>
DescentResult descend(Oracle &oracle_in, const DescentParams &params, double *W_io, double *b_io,
                      double *loss_curve, int n_threads, double work_per_pass,
                      const StopCheck &should_stop) {
  const DescentParams p = params;  // a local copy: no reloads after each store
  // With the sizes fixed the oracle is a small value: a local copy of it can
  // live in registers.
  std::conditional_t<(D > 0), Oracle, Oracle &> oracle = oracle_in;
  const index_t d = D > 0 ? D : oracle.d(), k = K > 0 ? K : oracle.k();
  const detail::ParamMap st(d, k, p.standardisation, p.fit_intercept);
  detail::Buffer<D * K> Vb(d * k), Wb(d * k), Gb(d * k);
  detail::Buffer<K> cb(k), bb(k), gbb(k);
  double *V = Vb.data(), *W = Wb.data(), *G = Gb.data();
  double *c = cb.data(), *b = bb.data(), *gb = gbb.data();
  st.from_model(W_io, b_io, V, c);
  if (p.positive) detail::project_nonnegative(V, d * k);  // V >= 0 <=> W >= 0: scale > 0
  st.to_model(V, c, W, b);

  // Check for signals about every 2^25 elements read (tens of milliseconds).
  const index_t check_every = std::max<index_t>(
      1, static_cast<index_t>((double(index_t(1) << 25)) / std::max(1.0, work_per_pass)));
  const bool checks = static_cast<bool>(should_stop);
  index_t until_check = check_every;

  DescentResult res;
  index_t rises = 0;  // the growth rule's rises in a row, from rise_base
  double rise_base = 0.0;
  double loss0 = 0.0, norm2 = 0.0, grad_norm0 = 0.0;
  bool stop = p.max_iter <= 0;
  const int nt = std::max(1, n_threads);

  // One step's bookkeeping after the oracle's partial sums: reduce, record,
  // test, update. Runs on the thread that called descend(). Inlined, so that
  // with D and K fixed the iterate stays in registers from step to step.
  auto finish_step = [&](index_t t) __attribute__((always_inline)) {
    double loss = oracle.reduce(G, gb);
    if (p.alpha != 0.0 || p.alpha_per_output)
      loss += detail::l2_penalty(W, d, k, p.alpha, p.alpha_per_output);
    if (t == 0) loss0 = loss;
    res.last_loss = loss;
    // GrowthWatch's rule, against the recorded curve: no state to store on
    // the falling path, which is every step of a converging run.
    bool grew = false;
    if (t > 0 && loss > loss_curve[t - 1]) {
      if (rises++ == 0) rise_base = loss_curve[t - 1];
      grew = rises >= detail::kDescentRises && loss - rise_base > detail::kDescentMargin * loss0;
    } else {
      rises = 0;
    }
    if (!std::isfinite(loss) || (t > 0 && loss > p.divergence_factor * loss0) || grew) {
      res.status = DescentStatus::kDiverged;
      stop = true;
      return;
    }
    // The norm's sqrt only where a test needs it.
    norm2 = st.to_descended_norm2(G, gb, W, p.alpha, p.alpha_per_output);
    if (p.positive) norm2 = detail::projected_norm2(V, G, gb, d * k, k, p.fit_intercept);
    if (t == 0) grad_norm0 = std::sqrt(norm2);
    if (!std::isfinite(norm2)) {
      res.status = DescentStatus::kDiverged;
      stop = true;
      return;
    }
    loss_curve[t] = loss;
    const double lr = p.learning_rate;
    for (index_t j = 0; j < d * k; ++j) V[j] -= lr * G[j];
    if (p.positive) detail::project_nonnegative(V, d * k);
    if (p.fit_intercept)
      for (index_t q = 0; q < k; ++q) c[q] -= lr * gb[q];
    res.n_iter = t + 1;
    if (p.tol >= 0.0 && std::sqrt(norm2) <= p.tol * grad_norm0) {
      res.status = DescentStatus::kConverged;
      stop = true;
    } else if (res.n_iter >= p.max_iter) {
      res.status = DescentStatus::kMaxIter;
      stop = true;
    } else if (checks && --until_check == 0) {
      until_check = check_every;
      if (should_stop(res.n_iter, loss)) {
        res.status = DescentStatus::kInterrupted;
        stop = true;
      }
    }
    st.to_model(V, c, W, b);
  };

  index_t t = 0;
  if constexpr (D == 0) {
    if (nt > 1 && has_openmp()) {
      // One team for the loop; each step the threads share the pass, meet,
      // thread 0 reduces, updates and prepares the next pass, and they meet
      // again. The meetings are a SpinThenSleepBarrier, not `omp barrier`
      // (see parallel.hpp).
      //
      // Thread 0 times its own share of each pass and its wait for the
      // others. A team of m threads beats one thread only while the wait
      // stays under (m - 1) shares. When it does not, over the recent steps
      // (another process holds a core, and the others get it late), thread 0
      // runs a spell of whole passes alone while the others sleep at the
      // next meeting, then the team tries again. The spell lasts 32 times
      // the time thread 0 lost waiting in the team that failed (at least
      // kMinSpell steps), twice that after each further team that fails
      // within kProbation steps: a lasting neighbour costs a few slow steps
      // now and then (1/33 of the time, then less and less), a passing one a
      // short spell. The team stays in one parallel region throughout (a
      // region's start and end are libgomp barriers, which spin). The chunks
      // and their order are the same either way, so the bits are too.
      //
      // Thread 0 decides and the others follow through `next` and
      // `after_spell`, which thread 0 writes only between meetings that the
      // others have not yet passed: the others may run late, and must not
      // read a decision thread 0 makes while they are still on the last one.
      constexpr index_t kMinSpell = 16, kProbation = 64;
      enum class Next { kStep, kSpell, kEnd };
      SpinThenSleepBarrier meet;
      Next next = Next::kStep, after_spell = Next::kStep;
      oracle.prepare(W, b);
#pragma omp parallel num_threads(nt)
      {
        const bool lead = omp_get_thread_num() == 0;
        const double others = double(omp_get_num_threads() - 1);
        double share_s = 0.0, wait_s = 0.0;  // recent team steps, decayed by 3/4 a step
        double lost_s = 0.0;                 // thread 0's waits in the current team
        index_t t_team = 0;                  // the step the current team started at
        int fails = 0;
        while (true) {
          const auto t0 = std::chrono::steady_clock::now();
          oracle.share();
          const auto t1 = std::chrono::steady_clock::now();
          meet.wait();
          if (lead) {
            const auto t2 = std::chrono::steady_clock::now();
            const double waited = std::chrono::duration<double>(t2 - t1).count();
            share_s = 0.75 * share_s + std::chrono::duration<double>(t1 - t0).count();
            wait_s = 0.75 * wait_s + waited;
            lost_s += waited;
            finish_step(t++);
            if (!stop) oracle.prepare(W, b);
            next = stop                                           ? Next::kEnd
                   : t - t_team >= 4 && wait_s > others * share_s ? Next::kSpell
                                                                  : Next::kStep;
          }
          meet.wait();
          const Next now = next;  // thread 0 writes it next after the next first meeting
          if (now == Next::kEnd) break;
          if (now == Next::kStep) continue;
          if (lead) {  // the spell; the others wait at the meeting below
            fails = t - t_team < kProbation ? std::min(fails + 1, 20) : 1;
            const double spell_s = 32.0 * lost_s * double(index_t(1) << (fails - 1));
            const auto start = std::chrono::steady_clock::now();
            for (index_t i = 0; !stop; ++i) {
              if (i >= kMinSpell &&
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >=
                      spell_s)
                break;
              oracle.share_all();
              finish_step(t++);
              if (!stop) oracle.prepare(W, b);
            }
            after_spell = stop ? Next::kEnd : Next::kStep;
            share_s = wait_s = lost_s = 0.0;
            t_team = t;
          }
          meet.wait();
          if (after_spell == Next::kEnd) break;  // written next in a spell after the next meetings
        }
      }
    }
  }
  // No team: a serial loop has no per-step barrier, which is what tiny
  // problems such as the tutorial's 16 points need.
  for (; !stop; ++t) {
    oracle.partials(W, b);
    finish_step(t);
  }
  st.to_model(V, c, W_io, b_io);
  return res;
}

// Passes over X that bound the automatic step's curvature (Lanczos steps).
constexpr index_t kCurvaturePasses = 10;
// The bound's relative margin for the rounding of the passes' sums.
constexpr double kCurvatureRounding = 1e-10;

namespace detail {

// The largest eigenvalue of the symmetric tridiagonal matrix with diagonal
// a (m) and off-diagonal b (m - 1), from above: bisection on Sturm counts
// inside the Gershgorin interval, to a few roundings.
inline double tridiagonal_top(const double *a, const double *b, index_t m) {
  double lo = a[0], hi = a[0];
  for (index_t i = 0; i < m; ++i) {
    const double r = (i > 0 ? std::fabs(b[i - 1]) : 0.0) + (i + 1 < m ? std::fabs(b[i]) : 0.0);
    lo = std::min(lo, a[i] - r);
    hi = std::max(hi, a[i] + r);
  }
  const double tiny = std::numeric_limits<double>::min();
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (!(mid > lo && mid < hi) || hi - lo <= 4e-16 * std::max(std::fabs(lo), std::fabs(hi))) break;
    index_t below = 0;  // eigenvalues below mid: negative pivots of T - mid I
    double q = 1.0;
    for (index_t i = 0; i < m; ++i) {
      q = a[i] - mid - (i > 0 ? b[i - 1] * b[i - 1] / q : 0.0);
      if (q == 0.0) q = -tiny;
      below += q < 0.0;
    }
    (below == m ? hi : lo) = mid;
  }
  return hi;
}

}  // namespace detail

// Largest eigenvalue of X^T X / weight_sum (+ alpha) in the descended
// (standardised) space, bounded from above: the curvature of the squared
// loss, which bounds that of any loss once scaled by the loss's kCurvature.
// Lanczos with full reorthogonalisation over an oracle that runs the
// curvature probe (CurvatureProbe in fused.hpp: the pass's "gradient" is
// then X^T X W / weight_sum), at most kCurvaturePasses passes (fewer when
// the Krylov space becomes invariant, e.g. d <= kCurvaturePasses). The
// result is theta + beta: the top Ritz value of the tridiagonal T_m plus
// the norm of the last residual, Zhou and Li's bound (Linear Algebra Appl.
// 435, 2011), above lambda_max with high probability for a start vector
// not orthogonal to its eigenvector (the plain Ritz value is a lower
// bound; theta + the Ritz pair's residual can fall below it on dense
// spectra). The intercept direction has curvature exactly
// intercept_curvature when the shift is the weighted column mean, so the
// result is the larger of the two with an intercept. Memory: m + 1 vectors
// of d. should_stop is asked about every 2^22 elements read; when it says
// stop the result is NaN (the caller raises what stopped it).
template <class Oracle>
double top_curvature(Oracle &oracle, const DescentParams &p, int n_threads,
                     double intercept_curvature, double work_per_pass,
                     const StopCheck &should_stop) {
  const index_t d = oracle.d();
  const index_t m_max = std::min<index_t>(d, kCurvaturePasses);
  const detail::ParamMap st(d, 1, p.standardisation, p.fit_intercept);
  std::vector<double> Q(static_cast<size_t>((m_max + 1) * d)), W(static_cast<size_t>(d)),
      G(static_cast<size_t>(d));
  std::vector<double> alpha(static_cast<size_t>(m_max)), beta(static_cast<size_t>(m_max));
  double b = 0.0, gb = 0.0, c = 0.0;
  // A fixed, sign-varied start vector: deterministic, not orthogonal to a
  // dominant direction of all-positive correlations.
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  double nrm = 0.0;
  for (index_t j = 0; j < d; ++j) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    Q[j] = 1.0 + 0.5 * (double(state >> 11) / 9007199254740992.0 - 0.5);
    nrm += Q[j] * Q[j];
  }
  for (index_t j = 0; j < d; ++j) Q[j] /= std::sqrt(nrm);
  const int nt = std::max(1, n_threads);
  double work = 0.0, bound = 0.0, largest = 0.0;
  for (index_t it = 0; it < m_max; ++it) {
    // Asked every 2^22 elements read: the passes are few, so each counts.
    work += work_per_pass;
    if (should_stop && work >= double(index_t(1) << 22)) {
      work = 0.0;
      if (should_stop(it, bound)) return std::numeric_limits<double>::quiet_NaN();
    }
    const double *v = &Q[it * d];
    c = 0.0;  // in the standardised space the intercept does not couple
    st.to_model(v, &c, W.data(), &b);
#pragma omp parallel num_threads(nt) if (nt > 1)
    oracle.partials(W.data(), &b);
    oracle.reduce(G.data(), &gb);
    st.to_descended(G.data(), &gb, W.data(), p.alpha);
    double a = 0.0;
    for (index_t j = 0; j < d; ++j) a += v[j] * G[j];
    alpha[it] = a;
    largest = std::max(largest, std::fabs(a));
    if (!std::isfinite(a)) return p.fit_intercept ? std::max(a, intercept_curvature) : a;
    // G -= a v + beta v_prev, then twice against every earlier vector: the
    // reorthogonalisation keeps T_m's top eigenvalue a Ritz value of A.
    for (int pass = 0; pass < 2; ++pass)
      for (index_t i = 0; i <= it; ++i) {
        const double *u = &Q[i * d];
        double dot = 0.0;
        for (index_t j = 0; j < d; ++j) dot += u[j] * G[j];
        for (index_t j = 0; j < d; ++j) G[j] -= dot * u[j];
      }
    double n2 = 0.0;
    for (index_t j = 0; j < d; ++j) n2 += G[j] * G[j];
    beta[it] = std::sqrt(n2);
    const index_t m = it + 1;
    // An invariant Krylov space: T_m's eigenvalues are A's, exactly.
    const bool invariant = !(beta[it] > 1e-13 * largest) || m == d;
    bound = detail::tridiagonal_top(alpha.data(), beta.data(), m) + (invariant ? 0.0 : beta[it]);
    if (invariant || !std::isfinite(beta[it])) break;
    const double inv = 1.0 / beta[it];
    for (index_t j = 0; j < d; ++j) Q[(it + 1) * d + j] = G[j] * inv;
  }
  bound *= 1.0 + kCurvatureRounding;
  return p.fit_intercept ? std::max(bound, intercept_curvature) : bound;
}

FASTLINREG_ISA_END
}  // namespace fastlinreg
