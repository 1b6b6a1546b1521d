// The machine's ceilings for the roofline report: FMA peak and stream bandwidth.
//
// fma_peak runs a register-resident loop of independent multiply-adds
// (acc = acc * m + a) at the native vector width of the ISA it is compiled for:
// 16 bytes on baseline x86-64 (SSE2, a multiply and an add), 32 bytes with
// AVX2 + FMA, 64 bytes with AVX-512.  Enough independent accumulators run side
// by side to cover the latency of the FMA units (latency 4 cycles x up to 4
// pipes = 16 in flight with AVX-512's 32 registers; 12 where only 16 vector
// registers exist: 4 cycles x 2 pipes, and on SSE2 a multiply-then-add chain of
// about 6 cycles at 2 updates per cycle), so the loop runs at the units'
// throughput, never touching memory.  Every lane of every
// update counts as 2 flops.  Each accumulator converges to a / (1 - m), a
// normal number, so no denormal or overflow slows the loop down.
//
// stream runs a STREAM-like copy (a = b) or triad (a = b + s * c) over arrays
// that the caller makes much larger than the last-level cache; the bytes that
// STREAM counts (each array once: 8 bytes per element for copy, 12 for triad)
// divided by the time give the sustainable memory bandwidth.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

// Inputs and outputs of one FMA-peak run (T: the element type of the vectors).
struct FmaPeakArgs {
    int64_t iterations;   // IN  loop trips per thread (>= 1); each trip updates every accumulator once
    int n_threads;        // IN  OpenMP threads (>= 1), each with its own accumulators
    double* out_flops;    // OUT flops performed by all threads (2 per lane per update)
    double* out_checksum; // OUT sum of every final accumulator (keeps the loop observable)
    int* out_lanes;       // OUT lanes of T per vector at this ISA
};

// Inputs and outputs of one stream run.
template <class T>
struct StreamArgs {
    T* a;            // OUT (n) destination
    const T* b;      // IN  (n)
    const T* c;      // IN  (n) triad only; may be nullptr for copy
    int64_t n;       // IN  elements of each array
    T scalar;        // IN  triad's s
    bool triad;      // IN  a = b + s * c when true, a = b when false
    int n_threads;   // IN  OpenMP threads (>= 1)
    double* out_bytes;  // OUT bytes STREAM counts for this run (sizeof(T) * n per array touched)
};

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T> void fma_peak(const FmaPeakArgs& args);
                             template <class T> void stream(const StreamArgs<T>& args);)

#ifdef FASTREC_ISA_NS

// The ISA this copy is compiled for, as a number usable in constant expressions.
#define FASTREC_ROOFLINE_ISA_ID_baseline 0
#define FASTREC_ROOFLINE_ISA_ID_avx2 1
#define FASTREC_ROOFLINE_ISA_ID_avx512 2
#define FASTREC_ROOFLINE_CAT2(a, b) a##b
#define FASTREC_ROOFLINE_CAT(a, b) FASTREC_ROOFLINE_CAT2(a, b)

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace roofline_detail {

constexpr int kIsaId = FASTREC_ROOFLINE_CAT(FASTREC_ROOFLINE_ISA_ID_, FASTREC_ISA_NS);
// One native vector register: xmm, ymm or zmm.
constexpr int kBytes = kIsaId == 2 ? 64 : (kIsaId == 1 ? 32 : 16);
// AVX-512 has 32 vector registers, the others 16; two hold the operands m and a.
constexpr int kAccumulators = kIsaId == 2 ? 16 : 12;

template <class T>
constexpr int kLanes = kBytes / static_cast<int>(sizeof(T));

template <class T>
struct NativeVec {
    typedef T type __attribute__((vector_size(kBytes)));
};

template <class T>
inline typename NativeVec<T>::type splat(T value) {
    typename NativeVec<T>::type v;
    for (int lane = 0; lane < kLanes<T>; ++lane) v[lane] = value;
    return v;
}

// One thread's loop; returns the sum of its accumulators.
template <class T>
inline double fma_loop(int64_t iterations, T seed) {
    using V = typename NativeVec<T>::type;
    const V m = splat<T>(T(1) - T(1e-7));
    const V a = splat<T>(T(1e-7));
    V acc[kAccumulators];
#pragma GCC unroll 16
    for (int j = 0; j < kAccumulators; ++j) acc[j] = splat<T>(seed + T(0.001) * static_cast<T>(j));
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int j = 0; j < kAccumulators; ++j) acc[j] = acc[j] * m + a;
    }
    double total = 0.0;
    for (int j = 0; j < kAccumulators; ++j)
        for (int lane = 0; lane < kLanes<T>; ++lane) total += static_cast<double>(acc[j][lane]);
    return total;
}

}  // namespace roofline_detail

template <class T>
void fma_peak(const FmaPeakArgs& args) {
    using namespace roofline_detail;
    const int n_threads = std::max(1, args.n_threads);
    const int64_t iterations = std::max<int64_t>(1, args.iterations);
    double checksum = 0.0;
#pragma omp parallel num_threads(n_threads) reduction(+ : checksum)
    checksum += fma_loop<T>(iterations, T(0.5) + T(0.01) * static_cast<T>(omp_get_thread_num()));
    *args.out_checksum = checksum;
    *args.out_flops = 2.0 * static_cast<double>(kLanes<T>) * kAccumulators * static_cast<double>(iterations) *
                      static_cast<double>(n_threads);
    *args.out_lanes = kLanes<T>;
}

template <class T>
void stream(const StreamArgs<T>& args) {
    T* __restrict a = args.a;
    const T* __restrict b = args.b;
    const T* __restrict c = args.c;
    const int64_t n = args.n;
    const T s = args.scalar;
    const int n_threads = std::max(1, args.n_threads);
    if (args.triad) {
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
    } else {
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t i = 0; i < n; ++i) a[i] = b[i];
    }
    *args.out_bytes = static_cast<double>(sizeof(T)) * static_cast<double>(n) * (args.triad ? 3.0 : 2.0);
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec

#undef FASTREC_ROOFLINE_CAT
#undef FASTREC_ROOFLINE_CAT2
#undef FASTREC_ROOFLINE_ISA_ID_baseline
#undef FASTREC_ROOFLINE_ISA_ID_avx2
#undef FASTREC_ROOFLINE_ISA_ID_avx512

#endif
