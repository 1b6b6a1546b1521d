// Cache-line aligned scratch buffers for kernels.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

namespace fastrec {

inline constexpr std::size_t kCacheLine = 64;

// An owning, 64-byte aligned, uninitialised array.  Kernels keep per-thread
// scratch in these; `zero()` clears it when the algorithm needs zeros.
template <class T>
class AlignedBuffer {
   public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(std::size_t count) { allocate(count); }
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    AlignedBuffer(AlignedBuffer&& other) noexcept : data_(other.data_), size_(other.size_) {
        other.data_ = nullptr;
        other.size_ = 0;
    }
    ~AlignedBuffer() { std::free(data_); }

    void allocate(std::size_t count) {
        std::free(data_);
        std::size_t bytes = ((count * sizeof(T) + kCacheLine - 1) / kCacheLine) * kCacheLine;
        data_ = static_cast<T*>(std::aligned_alloc(kCacheLine, bytes == 0 ? kCacheLine : bytes));
        if (data_ == nullptr) throw std::bad_alloc();
        size_ = count;
    }
    void zero() { std::memset(static_cast<void*>(data_), 0, size_ * sizeof(T)); }

    T* data() { return data_; }
    const T* data() const { return data_; }
    std::size_t size() const { return size_; }
    T& operator[](std::size_t i) { return data_[i]; }
    const T& operator[](std::size_t i) const { return data_[i]; }

   private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace fastrec
