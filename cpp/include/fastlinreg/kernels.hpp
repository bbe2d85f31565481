// Public C++ entry points of fastlinreg, for float and double X.
//
// A thin header: the plain types of types.hpp and declarations, nothing of
// the SIMD internals, so every includer (the bindings, a CUDA twin, a C++
// user) sees the same declarations whatever instruction set the kernels were
// built for. The templates are defined and explicitly instantiated for float
// and double in cpp/src/kernels.cpp and cpp/src/sgd.cpp, and only there.
//
// Models are (W (d, k), b (k)) in the caller's coordinates, row-major;
// params.standardisation only changes where the descent steps are taken.
#pragma once

#include <utility>

#include "fastlinreg/types.hpp"

namespace fastlinreg {

#include "fastlinreg/kernel_entries.inc"

// The instruction set the entry points run: "avx512", "avx2" or "x86-64-v2"
// for the multi-instruction-set build (chosen once, from what the CPU
// reports, or lowered by the environment variable FASTLINREG_ISA), "native"
// for a single-target build.
const char *active_isa();
// Instruction sets compiled into this build, best first, comma-separated.
const char *compiled_isas();

// The same entry points over CSR rows (cpp/src/sparse.cpp, sparse.hpp; built once, for the
// baseline instruction set), for
// float/double values and int32/int64 indices. X is read in place, never
// densified. sufficient_stats' syrk must be nullptr (the rank update of
// sparse rows is the kernel's own).
template <class T, class I>
double fused_gradient(const CsrView<T, I> &data, const double *W, const double *b, double *G,
                      double *gb, int n_threads);
template <class T, class I>
void linear_predict(const CsrView<T, I> &data, const double *W, const double *b, double *P,
                    int n_threads);
template <class T, class I>
DescentResult descend_stream(const CsrView<T, I> &data, const DescentParams &params, double *W,
                             double *b, double *loss_curve, int n_threads,
                             const StopCheck &should_stop);
template <class T, class I>
SgdResult descend_sgd(const CsrView<T, I> &data, const SgdParams &params, double *W, double *b,
                      double *loss_curve, const StopCheck &should_stop);
template <class T, class I>
double curvature_stream(const CsrView<T, I> &data, const DescentParams &params, int n_threads,
                        const StopCheck &should_stop = {});
template <class T, class I>
double sufficient_stats(const CsrView<T, I> &data, dsyrk_fn *syrk, int n_threads, double *mean_x,
                        double *mean_y, double *Cxx, double *Cxy, double *Cyy);
template <class T, class I>
double column_moments(const CsrView<T, I> &data, int n_threads, double *mean, double *var);

}  // namespace fastlinreg
