// The fastrec._cpp extension module: SIMD level control plus every registered
// kernel family (see registry.hpp).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "fastrec/isa.hpp"
#include "fastrec/omp_compat.hpp"
#include "registry.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_cpp, m) {
    m.doc() = "fastrec compiled kernels (C++17, OpenMP, SIMD with run-time dispatch)";

    m.def("simd_level", [] { return std::string(fastrec::isa_name(fastrec::active_isa())); },
          "SIMD level the kernels run with: 'avx512', 'avx2' or 'baseline'.");
    m.def("detected_simd_level", [] { return std::string(fastrec::isa_name(fastrec::detect_isa())); },
          "Widest SIMD level this CPU supports.");
    m.def("available_simd_levels", [] {
        std::vector<std::string> names;
        for (auto isa : {fastrec::Isa::baseline, fastrec::Isa::avx2, fastrec::Isa::avx512})
            if (fastrec::isa_supported(isa)) names.emplace_back(fastrec::isa_name(isa));
        return names;
    }, "SIMD levels this CPU can run, narrowest first.");
    m.def("set_simd_level", [](const std::string& name) {
        for (auto isa : {fastrec::Isa::baseline, fastrec::Isa::avx2, fastrec::Isa::avx512}) {
            if (name != fastrec::isa_name(isa)) continue;
            if (!fastrec::isa_supported(isa))
                throw py::value_error("SIMD level '" + name + "' is not supported by this CPU");
            fastrec::active_isa_ref() = isa;
            return;
        }
        throw py::value_error("unknown SIMD level '" + name + "': use baseline, avx2 or avx512");
    }, py::arg("level"), "Force a SIMD level (for testing every code path).");
#if FASTREC_HAVE_OPENMP
    m.def("omp_max_threads", [] { return omp_get_max_threads(); });
    m.def("openmp_version", [] { return _OPENMP; });
#else
    // A core built without OpenMP runs one thread whatever it is given, and there
    // is no OpenMP limit for the host's thread count to honour: report none.
    m.def("omp_max_threads", [] { return std::numeric_limits<int>::max(); });
    m.def("openmp_version", [] { return 0; });
#endif

    auto binders = fastrec::bindings::registry();
    std::sort(binders.begin(), binders.end());
    for (auto& [name, bind] : binders) bind(m);
}
