// Implicit ALS kernels for AVX2 + FMA (Haswell and later, Zen).
//
// Standard and ISA-neutral headers come first, under the baseline target (see
// prelude.hpp); only the kernels below the pragma are compiled for AVX2.
#include "fastrec/prelude.hpp"

#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,lzcnt,f16c")
#define FASTREC_KERNEL_PART 3  // implicit ALS only (see kernels.hpp)
#define FASTREC_ISA_NS avx2
#include "fastrec/kernels.hpp"
