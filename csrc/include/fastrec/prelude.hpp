// Every standard header a kernel may use.
//
// The csrc/isa units include this *before* they switch the compiler's target to
// AVX2 or AVX-512.  Inline standard-library code is then compiled for the baseline
// target in every unit, so the linker can never pick an AVX-512 copy of, say,
// std::vector<float>::resize for a caller running on an older CPU.  A kernel header
// that needs another standard header adds it here, not in itself.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "fastrec/omp_compat.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "fastrec/sparse.hpp"
#include "fastrec/isa.hpp"
#include "fastrec/memory.hpp"
