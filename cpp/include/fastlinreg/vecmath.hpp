// exp and log on vectors of doubles (GCC/Clang vector extensions), for the
// loss policies that the SIMD kernels apply lane by lane.
//
// Every function is lane-pure: a lane's result depends on that lane's input
// alone, so a row gives the same bits wherever it sits in a tile and the
// kernels' results stay independent of the thread count. Accuracy is about
// one ulp (the fdlibm algorithms, with range reduction by powers of two):
//  * exp_nonpositive(z), z <= 0: e^z = 2^k e^r, |r| <= ln2 / 2, a degree-13
//    Taylor polynomial in r (truncation below 2^-57 relative). 2^k is applied
//    in two factors, so results down to the smallest subnormal round once;
//    z below -746 gives +0 and NaN stays NaN.
//  * log1p_unit(t), 0 <= t <= 1: fdlibm's log1p (1 + t = 2^k (1 + f) with
//    1 + f in [sqrt(2)/2, sqrt(2)], s = f / (2 + f), a Remez polynomial in s^2
//    with error below 2^-58), with the rounding of 1 + t corrected.
//  * log_ge1(s), s >= 1 (finite): the same core after splitting s into
//    2^k (1 + f) by its bits.
// No -ffast-math is needed or assumed; FMA contraction may change the last
// bit between instruction sets, never between lanes or runs.
#pragma once

#include <cstdint>

#include "fastlinreg/isa.hpp"

namespace fastlinreg {
FASTLINREG_ISA_BEGIN
namespace vecmath {

// The signed integer vector of as many lanes as V (a comparison's type).
template <class V>
using IntOf = decltype(V{} < V{});

template <class V>
inline V broadcast(double c) {
  return V{} + c;
}

inline constexpr double kLn2Hi = 6.93147180369123816490e-01;  // trailing zeros: k * hi exact
inline constexpr double kLn2Lo = 1.90821492927058770002e-10;
// 1.5 * 2^52: adding it rounds a double of magnitude < 2^51 to an integer,
// which then sits in the low bits of the sum's representation.
inline constexpr double kRound = 6755399441055744.0;

// 2^k for integer-valued k in [-1022, 1023], from k + kRound's bits: shifting
// them left by 52 drops the constant's bits and leaves k in the exponent field.
template <class V>
inline V pow2_of_rounded(const V &k_plus_round) {
  typedef IntOf<V> I;
  return (V)(((I)k_plus_round << 52) + (std::int64_t(1023) << 52));
}

// e^z for z <= 0 (z > 0 is not supported; the callers pass -|p| or p - max p).
template <class V>
inline V exp_nonpositive(V z) {
  z = z < -746.0 ? broadcast<V>(-746.0) : z;     // below: +0 after rounding either way
  const V kr = z * 1.4426950408889634 + kRound;  // round(z / ln2) + kRound
  const V k = kr - kRound;
  const V r = (z - k * kLn2Hi) - k * kLn2Lo;
  // e^r = 1 + (r + r^2 Q(r)), Q of degree 11 by Estrin's scheme (a short
  // dependency chain); the 1 is added last, so r keeps all its bits.
  const V r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const V q0 = 1.0 / 2 + r * (1.0 / 6), q1 = 1.0 / 24 + r * (1.0 / 120),
          q2 = 1.0 / 720 + r * (1.0 / 5040), q3 = 1.0 / 40320 + r * (1.0 / 362880),
          q4 = 1.0 / 3628800 + r * (1.0 / 39916800),
          q5 = 1.0 / 479001600 + r * (1.0 / 6227020800.0);
  const V Q = (q0 + r2 * q1) + r4 * (q2 + r2 * q3) + r8 * (q4 + r2 * q5);
  const V poly = 1.0 + (r + r2 * Q);
  // 2^k in two factors, each in the normal range for k >= -1076.
  const V half = k * 0.5 + kRound;  // round(k / 2) + kRound
  const V k2 = (k - (half - kRound)) + kRound;
  return (poly * pow2_of_rounded(half)) * pow2_of_rounded(k2);
}

// log(1 + f) for 1 + f in [sqrt(2)/2, sqrt(2)], with c (a correction of
// 1 + f's rounding, over 1 + f) and k ln 2 added: fdlibm's last lines.
template <class V>
inline V log1p_core(const V &f, const V &c, const V &k) {
  constexpr double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                   Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                   Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                   Lg7 = 1.479819860511658591e-01;
  const V s = f / (2.0 + f);
  const V z = s * s, w = z * z;
  const V t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
  const V t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
  const V R = t2 + t1;
  const V hfsq = 0.5 * f * f;
  return k * kLn2Hi - ((hfsq - (s * (hfsq + R) + (k * kLn2Lo + c))) - f);
}

// log(1 + t) for t in [0, 1] (NaN stays NaN).
template <class V>
inline V log1p_unit(const V &t) {
  // 1 + t >= sqrt(2): f = (1 + t) / 2 - 1 (exact), c = the rounding error of
  // 1 + t over 1 + t, whose 1 / (2 (1 + f)) needs only a few terms (c is below
  // half an ulp of 1, so the terms' error is below 0.03 ulp of the result).
  const auto big = t > 0.41421356237309503;
  const V u = 1.0 + t;
  const V fb = u * 0.5 - 1.0;
  const V cb = (t - (u - 1.0)) * 0.5 * (1.0 - fb + fb * fb);
  const V f = big ? fb : t;
  const V c = big ? cb : V{};
  const V k = big ? broadcast<V>(1.0) : V{};
  return log1p_core(f, c, k);
}

// log(s) for s >= 1 (the softmax's sum of e^(p - max p), in [1, k]); NaN stays NaN.
template <class V>
inline V log_ge1(const V &s) {
  typedef IntOf<V> I;
  const I bits = (I)s;
  const I e = (bits >> 52) - 1023;  // s >= 1: the sign bit is clear
  const V m = (V)((bits & ((std::int64_t(1) << 52) - 1)) | (std::int64_t(1023) << 52));  // [1, 2)
  const auto big = m > 1.4142135623730951;
  const V f = big ? m * 0.5 - 1.0 : m - 1.0;               // both exact
  const V ke = (V)(e + (I)broadcast<V>(kRound)) - kRound;  // e as a double, by its bits
  const V k = ke + (big ? broadcast<V>(1.0) : V{});
  return log1p_core(f, V{}, k) + (s - s);  // + NaN where s is NaN
}

}  // namespace vecmath
FASTLINREG_ISA_END
}  // namespace fastlinreg
