// The `args` dicts of both extension modules (csrc/bindings/*_module.cpp): unknown keys
// rejected, absent keys read as their neutral default, values type-checked with the field
// named. Errors: std::invalid_argument (ValueError) for bad values, py::type_error for bad
// types.
#pragma once

#include <pybind11/pybind11.h>

#include <climits>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <stdexcept>
#include <string>

#include "sparseforge/config.hpp"

namespace sparseforge {
namespace bindings {

namespace py = pybind11;

[[noreturn]] inline void fail(const std::string& msg) { throw std::invalid_argument(msg); }
[[noreturn]] inline void type_fail(const std::string& msg) { throw py::type_error(msg); }

inline std::string quoted(const char* name) { return std::string("`") + name + "`"; }

inline std::string type_name(const py::handle& obj) {
  return py::str(py::type::handle_of(obj).attr("__name__"));
}

// ---- the args dict ------------------------------------------------------------------------

struct FieldList {
  const char* const* names;
  std::size_t size;
};
#define SF_FIELDS(list) FieldList{list, std::size(list)}

inline void reject_unknown(const py::dict& d, const char* entry,
                           std::initializer_list<FieldList> lists) {
  for (auto item : d) {
    if (!py::isinstance<py::str>(item.first)) {
      type_fail(std::string(entry) + ": `args` keys must be strings, got " +
                type_name(item.first));
    }
    const std::string key = py::str(item.first);
    bool known = false;
    for (const FieldList& list : lists) {
      for (std::size_t i = 0; i < list.size && !known; ++i) known = key == list.names[i];
    }
    if (!known) {
      std::string expected;
      for (const FieldList& list : lists) {
        for (std::size_t i = 0; i < list.size; ++i) {
          expected += (expected.empty() ? "" : ", ") + std::string(list.names[i]);
        }
      }
      fail(std::string(entry) + ": unknown key `" + key + "` in `args` (expected some of: " +
           expected + ")");
    }
  }
}

// The value of `key`, None when absent.
inline py::object get(const py::dict& d, const char* key) {
  return d.contains(key) ? py::reinterpret_borrow<py::object>(d[key]) : py::none();
}

// An integer field (Python int, numpy integer or anything with __index__); absent -> `dflt`.
// `saturate` clamps huge values instead of failing (n_threads = 10**30 just means "all").
inline index_t integer(const py::dict& d, const char* key, index_t dflt = 0,
                       bool saturate = false) {
  const py::object obj = get(d, key);
  if (obj.is_none()) return dflt;
  PyObject* index = PyNumber_Index(obj.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    type_fail(quoted(key) + " must be an integer, got " + type_name(obj));
  }
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow != 0) {
    if (saturate) return overflow > 0 ? LLONG_MAX : LLONG_MIN;
    fail(quoted(key) + " does not fit a 64-bit integer");
  }
  return value;
}

// An int-typed struct field: values outside int are rejected here, naming the field, rather
// than wrapped into a different value that the shared check might accept.
inline int int_field(const py::dict& d, const char* key, int dflt = 0) {
  const index_t v = integer(d, key, dflt);
  if (v < INT_MIN || v > INT_MAX) {
    fail(quoted(key) + " is out of range, got " + std::to_string(v));
  }
  return static_cast<int>(v);
}

inline double real(const py::dict& d, const char* key, double dflt = 0.0) {
  const py::object obj = get(d, key);
  if (obj.is_none()) return dflt;
  if (!PyFloat_Check(obj.ptr()) && !PyLong_Check(obj.ptr()) &&
      !PyObject_HasAttrString(obj.ptr(), "__float__")) {
    type_fail(quoted(key) + " must be a number, got " + type_name(obj));
  }
  const double v = PyFloat_AsDouble(obj.ptr());
  if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

inline bool flag(const py::dict& d, const char* key) {
  const py::object obj = get(d, key);
  if (obj.is_none()) return false;
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  PyObject* index = PyNumber_Index(obj.ptr());  // 0 / 1 and numpy integers
  if (index == nullptr) {
    PyErr_Clear();
    const std::string type = type_name(obj);
    if (type == "bool" || type == "bool_") return PyObject_IsTrue(obj.ptr()) == 1;  // numpy
    type_fail(quoted(key) + " must be a bool, got " + type);
  }
  const bool v = PyObject_IsTrue(index) == 1;
  Py_DECREF(index);
  return v;
}

}  // namespace bindings
}  // namespace sparseforge
