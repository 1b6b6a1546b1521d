// The light kernel families (SGD MF is csrc/isa/baseline_mf.cpp), for
// baseline x86-64 (SSE2), or for any other CPU.
#include "fastrec/prelude.hpp"

#define FASTREC_KERNEL_PART 2  // the light families (see kernels.hpp)
#define FASTREC_ISA_NS baseline
#include "fastrec/kernels.hpp"
