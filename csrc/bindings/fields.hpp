// Bindings generated from the field tables of the kernel headers.
//
// Each kernel header lists the Python-visible arguments of a kernel, in call order,
// next to its argument struct:
//
//   #define FASTREC_FOO_FIELDS(F, A)  (each line but the last ends in a backslash)
//       F(x,         T,   IN,    A.x,         (bind(A.n)))
//       F(out,       T,   OUT,   A.out,       (A.n))
//       F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))
//
// F(name, type, role, target, rule): `name` is the Python argument name (the one the
// Numba and numpy backends use), `type` the element type of an array or the type of a
// value, `target` the member of the argument struct `A` that receives the data
// pointer or the value, and `rule` the check, in parentheses:
//
//   IN        array read by the kernel; pybind11 may convert it (a copy of another dtype)
//   IN_EXACT  array read by the kernel; only the exact dtype, C-contiguous, is accepted
//   OUT       array written by the kernel (exact dtype, never converted)
//   INOUT     array read and written by the kernel (exact dtype, never converted)
//   VALUE     a scalar
//
// An array rule lists its extents: a value the extent must equal, bind(slot) that
// stores any extent into a member, bind_nonempty(slot) the same for an extent >= 1,
// bind_indptr(slot) that stores extent - 1 (a CSR indptr of slot rows).
// optional(...) also accepts an empty 1-D array and then sets the target to nullptr;
// a leading when(condition) skips the argument, target nullptr, when condition is
// false.  nnz(view) is the entry count of a CSR view whose indptr came earlier.
// Value rules: at_least(lo), in_range(lo, hi), finite_at_least(lo), and raised_to(lo)
// that replaces smaller values by lo; () accepts any value.  Rules are evaluated in
// table order, so they may use what earlier arguments bound; they may also name any
// argument of the call by its name.
//
// From one table the binding derives the C++ parameter list (FASTREC_PARAMS), the
// pybind11 argument names (FASTREC_PYARGS) and the unpacking with its checks
// (FASTREC_UNPACK), so an argument is declared once and keywords always match the
// other backends' names.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "arrays.hpp"

namespace fastrec::bindings {

struct role_IN {
    static constexpr bool array = true, writes = false, convert = true;
};
struct role_IN_EXACT {
    static constexpr bool array = true, writes = false, convert = false;
};
struct role_OUT {
    static constexpr bool array = true, writes = true, convert = false;
};
struct role_INOUT {
    static constexpr bool array = true, writes = true, convert = false;
};
struct role_VALUE {
    static constexpr bool array = false, writes = false, convert = true;
};

// The C++ parameter type pybind11 fills for one field.
template <class Type, class Role>
using param_t = std::conditional_t<!Role::array, Type,
                                   std::conditional_t<Role::writes, carray<Type>&, const carray<Type>&>>;

template <class Role>
py::arg make_arg(const char* name) {
    py::arg arg(name);
    if (!Role::convert) arg.noconvert();
    return arg;
}

// One extent of an array rule: `value`, or any extent >= offset + min stored as extent - offset.
struct Dim {
    int64_t value = 0;
    int64_t* slot = nullptr;
    int64_t offset = 0;
    int64_t min = 0;
    Dim(int64_t required) : value(required) {}
    Dim(int64_t* bound, int64_t offset_, int64_t min_) : slot(bound), offset(offset_), min(min_) {}
};

inline Dim bind(int64_t& slot) { return {&slot, 0, 0}; }
inline Dim bind_nonempty(int64_t& slot) { return {&slot, 0, 1}; }
inline Dim bind_indptr(int64_t& slot) { return {&slot, 1, 0}; }

template <class View>
int64_t nnz(const View& view) {
    return view.indptr[view.n_rows];
}

// indptr[rows] of an optional indptr, 0 when it is absent.
inline int64_t indptr_end(const int64_t* indptr, int64_t rows) { return indptr ? indptr[rows] : 0; }

struct ArrayRule {
    std::vector<Dim> dims;
    bool optional = false;
    bool enabled = true;
};

struct When {
    bool enabled;
};
inline When when(bool enabled) { return {enabled}; }

struct ValueRule {
    enum Kind { any, at_least, in_range, finite_at_least, raised_to } kind = any;
    double lo = 0, hi = 0;
};

inline ValueRule make_rule() { return {}; }
inline ValueRule make_rule(ValueRule rule) { return rule; }
inline ArrayRule make_rule(ArrayRule rule) { return rule; }
template <class... D>
ArrayRule make_rule(D... dims) {
    return {{Dim(dims)...}, false, true};
}
template <class... D>
ArrayRule make_rule(When condition, D... dims) {
    ArrayRule rule = make_rule(dims...);
    rule.enabled = condition.enabled;
    return rule;
}
template <class... D>
ArrayRule optional(D... dims) {
    ArrayRule rule = make_rule(dims...);
    rule.optional = true;
    return rule;
}

inline ValueRule at_least(double lo) { return {ValueRule::at_least, lo, 0}; }
inline ValueRule in_range(double lo, double hi) { return {ValueRule::in_range, lo, hi}; }
inline ValueRule finite_at_least(double lo) { return {ValueRule::finite_at_least, lo, 0}; }
inline ValueRule raised_to(double lo) { return {ValueRule::raised_to, lo, 0}; }

template <class V>
std::string text(V value) {
    std::ostringstream out;
    out.precision(17);
    out << value;
    return out.str();
}

template <class T>
[[noreturn]] void shape_error(const carray<T>& a, const char* name, const std::vector<Dim>& dims) {
    auto extent = [](const Dim& d) {
        if (d.slot == nullptr) return text(d.value);
        return d.offset + d.min > 0 ? ">= " + text(d.offset + d.min) : std::string("*");
    };
    std::string expected;
    if (dims.size() == 1) {
        expected = "a 1-D array";
        if (dims[0].slot == nullptr || dims[0].offset + dims[0].min > 0)
            expected += " of length " + extent(dims[0]);
    } else {
        bool any = true;
        for (const Dim& d : dims) any &= d.slot != nullptr && d.offset + d.min == 0;
        if (any) {
            expected = "a " + text(dims.size()) + "-D array";
        } else {
            expected = "shape (";
            for (std::size_t i = 0; i < dims.size(); ++i) expected += (i ? ", " : "") + extent(dims[i]);
            expected += ")";
        }
    }
    std::string got = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) got += (i ? ", " : "") + text(a.shape(i));
    got += a.ndim() == 1 ? ",)" : ")";
    throw py::value_error(std::string(name) + ": expected " + expected + ", got shape " + got);
}

template <class T>
void check_shape(const carray<T>& a, const char* name, const std::vector<Dim>& dims) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(dims.size());
    for (std::size_t i = 0; ok && i < dims.size(); ++i) {
        const int64_t extent = a.shape(i);
        ok = dims[i].slot ? extent >= dims[i].offset + dims[i].min : extent == dims[i].value;
    }
    if (!ok) shape_error(a, name, dims);
    for (std::size_t i = 0; i < dims.size(); ++i)
        if (dims[i].slot) *dims[i].slot = a.shape(i) - dims[i].offset;
}

template <class V>
V check_value(V value, const char* name, const ValueRule& rule) {
    const double v = static_cast<double>(value);
    const std::string n = name;
    switch (rule.kind) {
        case ValueRule::any: break;
        case ValueRule::at_least:
            if (!(v >= rule.lo))
                throw py::value_error(n + " must be >= " + text(rule.lo) + ", got " + text(value));
            break;
        case ValueRule::in_range:
            if (!(v >= rule.lo && v <= rule.hi))
                throw py::value_error(n + ": expected " + text(rule.lo) + " <= " + n +
                                      " <= " + text(rule.hi) + ", got " + text(value));
            break;
        case ValueRule::finite_at_least:
            if (!(v >= rule.lo) || !std::isfinite(v))
                throw py::value_error(n + " must be finite and >= " + text(rule.lo) + ", got " + text(value));
            break;
        case ValueRule::raised_to:
            if (!(v >= rule.lo)) return static_cast<V>(rule.lo);
            break;
    }
    return value;
}

template <class Role, class Param, class Target, class Rule>
void unpack(const char* name, Param& param, Target&& target, const Rule& rule) {
    if constexpr (Role::array) {
        static_assert(std::is_same_v<Rule, ArrayRule>, "an array field needs an array rule");
        if (!rule.enabled || (rule.optional && param.ndim() == 1 && param.shape(0) == 0)) {
            target = nullptr;
            return;
        }
        check_shape(param, name, rule.dims);
        if constexpr (Role::writes)
            target = param.mutable_data();
        else
            target = param.data();
    } else {
        static_assert(std::is_same_v<Rule, ValueRule>, "a value field needs a value rule");
        target = check_value(param, name, rule);
    }
}

}  // namespace fastrec::bindings

#define FASTREC_FIELD_PARAM_(name, type, role, target, rule) \
    , ::fastrec::bindings::param_t<type, ::fastrec::bindings::role_##role> name
#define FASTREC_FIELD_PYARG_(name, type, role, target, rule) \
    , ::fastrec::bindings::make_arg<::fastrec::bindings::role_##role>(#name)
#define FASTREC_FIELD_UNPACK_(name, type, role, target, rule)                          \
    ::fastrec::bindings::unpack<::fastrec::bindings::role_##role>(#name, name, target, \
                                                                  ::fastrec::bindings::make_rule rule);
#define FASTREC_DROP_FIRST_(first, ...) __VA_ARGS__
#define FASTREC_DROP_FIRST(...) FASTREC_DROP_FIRST_(__VA_ARGS__)

// The parameter list of a binding function taking the fields of table FIELDS.
#define FASTREC_PARAMS(FIELDS) FASTREC_DROP_FIRST(FIELDS(FASTREC_FIELD_PARAM_, _))
// The pybind11 py::arg list of table FIELDS, for m.def.
#define FASTREC_PYARGS(FIELDS) FASTREC_DROP_FIRST(FIELDS(FASTREC_FIELD_PYARG_, _))
// Checks every field of table FIELDS and stores it into the argument struct `args`.
#define FASTREC_UNPACK(FIELDS, args) FIELDS(FASTREC_FIELD_UNPACK_, args)
