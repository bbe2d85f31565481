// The instruction-set namespace of the kernels' internals.
//
// _core holds the kernels compiled for several instruction sets (see
// kernels.cpp and dispatch.cpp). Each compilation puts every internal
// function, template and inline (fused.hpp, descent.hpp, losses.hpp, ...)
// into its own inline namespace, so that two compilations for different
// instruction sets never share a symbol: the linker cannot hand AVX-512 code
// to a caller on a CPU without it. Code inside names things as if the
// namespace were not there.
#pragma once

#ifndef FASTLINREG_ISA_NAMESPACE
#define FASTLINREG_ISA_NAMESPACE isa_native
#endif
#define FASTLINREG_ISA_BEGIN inline namespace FASTLINREG_ISA_NAMESPACE {
#define FASTLINREG_ISA_END }
