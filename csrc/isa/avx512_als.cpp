// Implicit ALS kernels for AVX-512 (F, BW, DQ, VL: Skylake-SP and later, Zen 4 and later).
//
// Standard and ISA-neutral headers come first, under the baseline target (see
// prelude.hpp); only the kernels below the pragma are compiled for AVX-512.
#include "fastrec/prelude.hpp"

#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi,bmi2,popcnt,lzcnt,f16c")
#define FASTREC_KERNEL_PART 3  // implicit ALS only (see kernels.hpp)
#define FASTREC_ISA_NS avx512
#include "fastrec/kernels.hpp"
