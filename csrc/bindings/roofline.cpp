// Binding for csrc/include/fastrec/roofline.hpp.  Each call names its SIMD level,
// so one process can measure every level without changing the process-wide one.
#include <string>
#include <tuple>

#include "arrays.hpp"
#include "fastrec/roofline.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

fastrec::Isa parse_isa(const std::string& name) {
    for (auto isa : {fastrec::Isa::baseline, fastrec::Isa::avx2, fastrec::Isa::avx512}) {
        if (name != fastrec::isa_name(isa)) continue;
        if (!fastrec::isa_supported(isa))
            throw py::value_error("simd: '" + name + "' is not supported by this CPU (it supports up to '" +
                                  fastrec::isa_name(fastrec::detect_isa()) + "')");
        return isa;
    }
    throw py::value_error("simd: unknown SIMD level '" + name + "': use baseline, avx2 or avx512");
}

// (flops, checksum, lanes) of one FMA-peak run.
std::tuple<double, double, int> fma_peak(const std::string& simd, int64_t iterations, int n_threads) {
    const fastrec::Isa isa = parse_isa(simd);
    if (iterations < 1) throw py::value_error("iterations must be >= 1");
    if (n_threads < 1) throw py::value_error("n_threads must be >= 1");
    double flops = 0.0, checksum = 0.0;
    int lanes = 0;
    fastrec::FmaPeakArgs args{iterations, n_threads, &flops, &checksum, &lanes};
    {
        py::gil_scoped_release release;
#if defined(FASTREC_X86)
        switch (isa) {
            case fastrec::Isa::avx512: fastrec::avx512::fma_peak<float>(args); break;
            case fastrec::Isa::avx2: fastrec::avx2::fma_peak<float>(args); break;
            default: fastrec::baseline::fma_peak<float>(args); break;
        }
#else  // other CPUs build the baseline copy only (and support no other level)
        (void)isa;
        fastrec::baseline::fma_peak<float>(args);
#endif
    }
    return {flops, checksum, lanes};
}

// Bytes STREAM counts for one copy (c empty) or triad run into `a`.
double stream(const std::string& simd, carray<float>& a, const carray<float>& b, const carray<float>& c,
              double scalar, bool triad, int n_threads) {
    const fastrec::Isa isa = parse_isa(simd);
    if (n_threads < 1) throw py::value_error("n_threads must be >= 1");
    if (a.ndim() != 1) throw py::value_error("a: expected a 1-D array");
    const int64_t n = a.shape(0);
    require_length(b, n, "b");
    if (triad) require_length(c, n, "c");
    double bytes = 0.0;
    fastrec::StreamArgs<float> args{a.mutable_data(), b.data(), triad ? c.data() : nullptr, n,
                             static_cast<float>(scalar), triad, n_threads, &bytes};
    {
        py::gil_scoped_release release;
#if defined(FASTREC_X86)
        switch (isa) {
            case fastrec::Isa::avx512: fastrec::avx512::stream<float>(args); break;
            case fastrec::Isa::avx2: fastrec::avx2::stream<float>(args); break;
            default: fastrec::baseline::stream<float>(args); break;
        }
#else  // other CPUs build the baseline copy only (and support no other level)
        (void)isa;
        fastrec::baseline::stream<float>(args);
#endif
    }
    return bytes;
}

}  // namespace

FASTREC_BINDINGS(roofline) {
    m.def("roofline_fma_peak", &fma_peak, py::arg("simd"), py::arg("iterations"), py::arg("n_threads"),
          "Register-resident float32 FMA loop at SIMD level `simd`; returns (flops, checksum, lanes).");
    m.def("roofline_stream", &stream, py::arg("simd"), py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("c").noconvert(), py::arg("scalar"), py::arg("triad"), py::arg("n_threads"),
          "STREAM copy (a = b) or triad (a = b + scalar * c); returns the bytes STREAM counts.");
}
