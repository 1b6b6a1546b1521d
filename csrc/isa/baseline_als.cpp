// Implicit ALS kernels for baseline x86-64 (SSE2), or for any other CPU.
#include "fastrec/prelude.hpp"

#define FASTREC_KERNEL_PART 3  // implicit ALS only (see kernels.hpp)
#define FASTREC_ISA_NS baseline
#include "fastrec/kernels.hpp"
