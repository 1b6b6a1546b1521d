// Cache-line aligned scratch buffers for kernels.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

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

// Per-thread scratch, made inside an OpenMP parallel region, which no exception
// may leave: on bad_alloc it returns null and sets `failed` (atomically), and
// the caller rethrows once the region has ended.  Threads without scratch skip
// their share of the work.
template <class S, class... Args>
std::unique_ptr<S> thread_scratch(bool& failed, Args&&... args) {
    try {
        return std::make_unique<S>(std::forward<Args>(args)...);
    } catch (const std::bad_alloc&) {
#pragma omp atomic write
        failed = true;
        return nullptr;
    }
}

}  // namespace fastrec
