// Bounded top-k selection with the library's ordering: larger score first, and
// for equal scores the smaller index first.
//
// Kernel-side header: compiled once per SIMD level inside FASTREC_ISA_NS (see isa_unit.hpp).
#pragma once

#include "fastrec/prelude.hpp"

#ifndef FASTREC_ISA_NS
#error "topk.hpp is a kernel-side header: include it from a csrc/isa unit"
#endif

namespace fastrec {
namespace FASTREC_ISA_NS {

// True when (score_a, index_a) ranks before (score_b, index_b).
template <class T, class I>
inline bool ranks_before(T score_a, I index_a, T score_b, I index_b) {
    return score_a > score_b || (score_a == score_b && index_a < index_b);
}

// A min-heap over caller-owned storage whose root is the worst kept entry, so a
// candidate is accepted in O(1) when it does not beat the root and in O(log k)
// otherwise.
template <class T, class I>
class TopK {
   public:
    TopK() = default;
    TopK(T* scores, I* indices, int64_t capacity, int64_t size = 0)
        : scores_(scores), indices_(indices), capacity_(capacity), size_(size) {}

    void reset() { size_ = 0; }
    int64_t size() const { return size_; }
    bool full() const { return size_ == capacity_; }
    const T* scores() const { return scores_; }   // heap order, size() entries
    const I* indices() const { return indices_; }

    // Score a candidate must reach to be considered: -inf until the heap is full.
    T threshold() const {
        return full() && capacity_ > 0 ? scores_[0] : -std::numeric_limits<T>::infinity();
    }

    void push(T score, I index) {
        if (size_ < capacity_) {
            int64_t pos = size_++;
            while (pos > 0) {  // sift up: move the worse parent down
                int64_t parent = (pos - 1) / 2;
                if (!ranks_before(scores_[parent], indices_[parent], score, index)) break;
                scores_[pos] = scores_[parent];
                indices_[pos] = indices_[parent];
                pos = parent;
            }
            scores_[pos] = score;
            indices_[pos] = index;
            return;
        }
        if (capacity_ == 0 || !ranks_before(score, index, scores_[0], indices_[0])) return;
        int64_t pos = 0;  // replace the root and sift down
        for (;;) {
            int64_t child = 2 * pos + 1;
            if (child >= size_) break;
            if (child + 1 < size_ &&
                ranks_before(scores_[child], indices_[child], scores_[child + 1], indices_[child + 1]))
                ++child;  // the worse of the two children
            if (!ranks_before(score, index, scores_[child], indices_[child])) break;
            scores_[pos] = scores_[child];
            indices_[pos] = indices_[child];
            pos = child;
        }
        scores_[pos] = score;
        indices_[pos] = index;
    }

    // Writes the kept entries best first into out_scores / out_indices and
    // returns how many there are.  The heap is left empty.
    template <class OutI>
    int64_t drain_sorted(T* out_scores, OutI* out_indices) {
        int64_t n = size_;
        // Pop the worst repeatedly, filling the output from the back.
        for (int64_t slot = n - 1; slot >= 0; --slot) {
            out_scores[slot] = scores_[0];
            out_indices[slot] = static_cast<OutI>(indices_[0]);
            T last_score = scores_[size_ - 1];
            I last_index = indices_[size_ - 1];
            --size_;
            int64_t pos = 0;
            for (;;) {
                int64_t child = 2 * pos + 1;
                if (child >= size_) break;
                if (child + 1 < size_ &&
                    ranks_before(scores_[child], indices_[child], scores_[child + 1], indices_[child + 1]))
                    ++child;
                if (!ranks_before(last_score, last_index, scores_[child], indices_[child])) break;
                scores_[pos] = scores_[child];
                indices_[pos] = indices_[child];
                pos = child;
            }
            if (size_ > 0) {
                scores_[pos] = last_score;
                indices_[pos] = last_index;
            }
        }
        return n;
    }

   private:
    T* scores_ = nullptr;
    I* indices_ = nullptr;
    int64_t capacity_ = 0;
    int64_t size_ = 0;
};

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
