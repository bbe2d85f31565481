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

}  // namespace fastlinreg
