// Each csrc/bindings/*.cpp file registers a function that adds its kernels to
// the fastrec._cpp module, so adding a kernel family never edits module.cpp.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

namespace fastrec::bindings {

using Binder = void (*)(pybind11::module_&);

inline std::vector<std::pair<std::string, Binder>>& registry() {
    static std::vector<std::pair<std::string, Binder>> binders;
    return binders;
}

struct Registration {
    Registration(const char* name, Binder binder) { registry().emplace_back(name, binder); }
};

}  // namespace fastrec::bindings

// FASTREC_BINDINGS(similarity) { m.def(...); }
#define FASTREC_BINDINGS(name)                                                              \
    static void fastrec_bind_##name(pybind11::module_& m);                                  \
    static const ::fastrec::bindings::Registration fastrec_registration_##name(#name,       \
                                                                            fastrec_bind_##name); \
    static void fastrec_bind_##name(pybind11::module_& m)
