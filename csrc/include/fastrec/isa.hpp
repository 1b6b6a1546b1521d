// SIMD levels the compiled core is built for, and the choice of one at run time.
//
// Every kernel header is compiled three times, once per level, by the translation
// units in csrc/isa/.  Each copy lives in its own namespace (fastrec::baseline,
// fastrec::avx2, fastrec::avx512), so the copies never collide at link time.  The
// binding code asks active_isa() which copy to call.
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace fastrec {

enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::avx512: return "avx512";
        case Isa::avx2: return "avx2";
        default: return "baseline";
    }
}

// The widest level this CPU and its operating system support.  GCC's
// __builtin_cpu_supports also checks that the OS saves the wide registers.
inline Isa detect_isa() {
#if defined(FASTREC_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
    return Isa::baseline;
}

inline bool isa_supported(Isa isa) { return static_cast<int>(isa) <= static_cast<int>(detect_isa()); }

// The level kernels use.  Starts at the detected level, or at FASTREC_SIMD
// (baseline / avx2 / avx512) when that names a supported lower level.
// Atomic: a level set from one thread while kernels dispatch in others is no data race.
inline std::atomic<Isa>& active_isa_ref() {
    static std::atomic<Isa> isa{[] {
        Isa best = detect_isa();
        if (const char* env = std::getenv("FASTREC_SIMD")) {
            for (Isa candidate : {Isa::baseline, Isa::avx2, Isa::avx512})
                if (std::strcmp(env, isa_name(candidate)) == 0 && isa_supported(candidate))
                    return candidate;
        }
        return best;
    }()};
    return isa;
}

inline Isa active_isa() { return active_isa_ref().load(std::memory_order_relaxed); }

}  // namespace fastrec

// Declares `DECL` once in each ISA namespace, so a kernel header can name the
// three compiled copies of its entry point from ISA-neutral code.
#define FASTREC_DECLARE_FOR_EACH_ISA(...) \
    namespace fastrec {                   \
    namespace baseline { __VA_ARGS__ }    \
    namespace avx2 { __VA_ARGS__ }        \
    namespace avx512 { __VA_ARGS__ }      \
    }

// Runs the call expression `CALL` (for example `cosine_topk<T, I>(args)`) in
// the namespace of the active ISA.  Other CPUs build the baseline copy only.
#if !defined(FASTREC_X86)
#define FASTREC_DISPATCH(...) \
    do {                      \
        ::fastrec::baseline::__VA_ARGS__; \
    } while (0)
#else
#define FASTREC_DISPATCH(...)                                                \
    do {                                                                     \
        switch (::fastrec::active_isa()) {                                   \
            case ::fastrec::Isa::avx512: ::fastrec::avx512::__VA_ARGS__; break; \
            case ::fastrec::Isa::avx2: ::fastrec::avx2::__VA_ARGS__; break;     \
            default: ::fastrec::baseline::__VA_ARGS__; break;                \
        }                                                                    \
    } while (0)
#endif
