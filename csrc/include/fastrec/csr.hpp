// A read-only view of a CSR matrix held in caller-owned arrays.
#pragma once

#include <cstdint>

namespace fastrec {

template <class T, class I>
struct CsrView {
    const int64_t* indptr = nullptr;  // IN (n_rows + 1)
    const I* indices = nullptr;       // IN (nnz), sorted and unique within a row
    const T* data = nullptr;          // IN (nnz)
    int64_t n_rows = 0;
    int64_t n_cols = 0;

    int64_t row_nnz(int64_t row) const { return indptr[row + 1] - indptr[row]; }
};

}  // namespace fastrec
