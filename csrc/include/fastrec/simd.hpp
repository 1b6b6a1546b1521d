// Vector types for kernels.
//
// GCC vector extensions lower to the registers of the target the enclosing
// csrc/isa unit was compiled for: one zmm register for a 64-byte vector under
// AVX-512, two ymm under AVX2, four xmm on baseline x86-64.  Kernels write one
// version of their inner loops and get all three SIMD levels.
//
// Register-blocked kernels (many live accumulators) use the native-width
// vectors NVec instead: GCC keeps a block of 64-byte vectors in memory when each
// is split into several registers, which costs a load and a store per FMA.
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

// Bytes in one SIMD register of the enclosing unit's level (looked up by the
// ISA namespace's name: the units switch target with a pragma, which does not
// define __AVX2__ or __AVX512F__ in C++).
#define FASTREC_SIMD_BYTES_avx512 64
#define FASTREC_SIMD_BYTES_avx2 32
#define FASTREC_SIMD_BYTES_baseline 16
#define FASTREC_SIMD_CAT2(a, b) a##b
#define FASTREC_SIMD_CAT(a, b) FASTREC_SIMD_CAT2(a, b)
constexpr int kNativeBytes = FASTREC_SIMD_CAT(FASTREC_SIMD_BYTES_, FASTREC_ISA_NS);

// A vector of T filling one native register: under AVX-512 the same as Vec64.
template <class T>
struct NVec {
    static constexpr int lanes = kNativeBytes / static_cast<int>(sizeof(T));
    typedef T type __attribute__((vector_size(kNativeBytes), aligned(kNativeBytes)));
};

template <class T>
using nvec_t = typename NVec<T>::type;

// `value` in every lane of a native vector (value - 0 is value for every
// value, -0 and NaN included, and GCC folds it into one broadcast).
template <class T>
inline nvec_t<T> nbroadcast(T value) {
    return value - nvec_t<T>{};
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
