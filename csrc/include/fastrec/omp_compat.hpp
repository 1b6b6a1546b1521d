// OpenMP when the compiler has it; otherwise a single-threaded build.
//
// Without -fopenmp the `#pragma omp` lines are ignored and every parallel region
// runs on the calling thread, which the kernels support (their results never
// depend on the thread count).  Code that calls the OpenMP runtime includes this
// header instead of <omp.h> and checks FASTREC_HAVE_OPENMP.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#define FASTREC_HAVE_OPENMP 1
#else
#define FASTREC_HAVE_OPENMP 0
#endif
