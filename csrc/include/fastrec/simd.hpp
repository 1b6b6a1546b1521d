// Fixed-width vector types for kernels.
//
// GCC vector extensions lower to the registers of the target the enclosing
// csrc/isa unit was compiled for: one zmm register for a 64-byte vector under
// AVX-512, two ymm under AVX2, four xmm on baseline x86-64.  Kernels write one
// version of their inner loops and get all three SIMD levels.
#pragma once

#include "fastrec/prelude.hpp"

#ifndef FASTREC_ISA_NS
#error "simd.hpp is a kernel-side header: include it from a csrc/isa unit"
#endif

namespace fastrec {
namespace FASTREC_ISA_NS {

// A 64-byte vector of T: 16 floats or 8 doubles.
template <class T>
struct Vec64 {
    static constexpr int lanes = 64 / sizeof(T);
    typedef T type __attribute__((vector_size(64), aligned(64)));
};

template <class T>
using vec64_t = typename Vec64<T>::type;

template <class T>
inline vec64_t<T> broadcast64(T value) {
    vec64_t<T> v;
    for (int lane = 0; lane < Vec64<T>::lanes; ++lane) v[lane] = value;
    return v;
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
