// pybind11 module `sparseforge._core`: the CPU kernels. Every kernel takes ONE dict `args`
// whose keys are the fields of its C++ argument struct (the vocabulary shared with `_cuda`,
// sparseforge/args_check.hpp); unknown keys are an error, absent keys take the neutral
// default (None / 0 / false; lane "serial"). Array fields are numpy arrays, taken as they are:
// no dtype conversion, no copies (a silent copy would hide a caller's mistake and cost
// memory). Stride fields are in elements; when absent they are read off the array.
//
// Python validates and names arguments first; the checks here are a backstop, so that a
// direct call with a wrong array can never read or write out of bounds. In order:
//   1. every array's type, dtype and rank (independent of the scalar fields);
//   2. the struct is filled;
//   3. check_args, the consistency check both modules run (sizes, modes, strides against row
//      extents, required and aligned pointers);
//   4. every array's shape, element strides and writeability against the struct's fields;
// then the thread count is resolved and the kernel runs with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../cpu/array_checks.hpp"
#include "../cpu/ksvd_sweep.hpp"
#include "../cpu/omp_batch.hpp"
#include "../cpu/patches.hpp"
#include "../cpu/support_kernels.hpp"
#include "../cpu/threads.hpp"
#include "args_dict.hpp"
#include "sparseforge/args_check.hpp"
#include "sparseforge/patches.hpp"

namespace py = pybind11;
namespace sf = sparseforge;
using sparseforge::index_t;

namespace {

using namespace sparseforge::bindings;

// n_threads: absent = 0 (the OpenMP default); huge values saturate (resolve_threads caps them
// at the CPU count); negative ones reach check_args, which names them.
int threads_field(const py::dict& d) {
  const index_t v = integer(d, "n_threads", 0, true);
  return static_cast<int>(v > INT_MAX ? INT_MAX : (v < 0 ? -1 : v));
}

sf::LaneKind lane_field(const py::dict& d) {
  const py::object obj = get(d, "lane");
  if (obj.is_none()) return sf::LaneKind::kSerial;
  if (!py::isinstance<py::str>(obj)) type_fail("`lane` must be a string, got " + type_name(obj));
  const std::string lane = py::str(obj);
  if (lane == "serial") return sf::LaneKind::kSerial;
  if (lane == "emulated_warp") return sf::LaneKind::kEmulatedWarp;
  fail("`lane` must be 'serial' or 'emulated_warp', got '" + lane + "'");
}

sf::QPrecision q_precision_field(const py::dict& d) {
  const py::object obj = get(d, "q_precision");
  if (obj.is_none()) return sf::QPrecision::kAuto;
  if (!py::isinstance<py::str>(obj)) {
    type_fail("`q_precision` must be a string, got " + type_name(obj));
  }
  const std::string q = py::str(obj);
  if (q == "auto") return sf::QPrecision::kAuto;
  if (q == "native") return sf::QPrecision::kNative;
  if (q == "float32") return sf::QPrecision::kFloat32;
  fail("`q_precision` must be 'auto', 'native' or 'float32', got '" + q + "'");
}

// An array field: a numpy array, or a null handle when absent / None (py::array() would be
// an empty array, not "none").
py::array array(const py::dict& d, const char* key) {
  const py::object obj = get(d, key);
  if (obj.is_none()) return py::reinterpret_steal<py::array>(py::handle());
  if (!py::isinstance<py::array>(obj)) {
    type_fail(quoted(key) + " must be a numpy array (or None), got " + type_name(obj));
  }
  return py::reinterpret_borrow<py::array>(obj);
}

bool present(const py::array& a) { return a.ptr() != nullptr; }

// ---- array checks -------------------------------------------------------------------------

// numpy's own equivalence test: an unpickled array carries an equal but distinct dtype
// object (so identity would fail), and a byte-swapped dtype is not equivalent.
bool equivalent(const py::dtype& a, const py::dtype& b) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr()) != 0;
}

void require_ndim(const py::array& a, const char* name, int ndim) {
  if (a.ndim() != ndim) {
    fail(quoted(name) + " must have " + std::to_string(ndim) + " dimension" +
         (ndim == 1 ? "" : "s") + ", got " + std::to_string(a.ndim()));
  }
}

// Phase 1: dtype E and rank `ndim` (when present).
template <class E>
void typed(const py::array& a, const char* name, int ndim) {
  if (!present(a)) return;
  if (!equivalent(py::dtype::of<E>(), a.dtype())) {
    fail(quoted(name) + " has dtype " + std::string(py::str(a.dtype())) + "; expected " +
         std::string(py::str(py::dtype::of<E>())));
  }
  require_ndim(a, name, ndim);
}

void typed_mask(const py::array& a, const char* name, int ndim) {
  if (!present(a)) return;
  if (a.itemsize() != 1 || (a.dtype().kind() != 'b' && a.dtype().kind() != 'u')) {
    fail(quoted(name) + " must be a boolean (or uint8) array, got dtype " +
         std::string(py::str(a.dtype())));
  }
  require_ndim(a, name, ndim);
}

template <class P>
P* data(const py::array& a) {
  return present(a) ? static_cast<P*>(const_cast<void*>(a.data())) : nullptr;
}

void require_shape(const py::array& a, const char* name, std::initializer_list<index_t> shape) {
  int d = 0;
  for (index_t s : shape) {
    if (a.shape(d) != s) {
      fail(quoted(name) + " has shape[" + std::to_string(d) + "] = " + std::to_string(a.shape(d)) +
           "; expected " + std::to_string(s));
    }
    ++d;
  }
}

void require_c_contiguous(const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style)) fail(quoted(name) + " must be C-contiguous");
}

void require_writeable(const py::array& a, const char* name) {
  if (!a.writeable()) fail(quoted(name) + " must be writeable");
}

// Element stride of dimension `dim`; byte strides that are not a multiple of the item size
// cannot be expressed in elements (and would misalign every element after the first).
index_t element_stride(const py::array& a, int dim, const char* name) {
  const index_t bytes = a.strides(dim);
  const index_t item = static_cast<index_t>(a.itemsize());
  if (bytes % item != 0) {
    fail(quoted(name) + " has a stride of " + std::to_string(bytes) +
         " bytes, not a multiple of its item size " + std::to_string(item));
  }
  return bytes / item;
}

// A stride field: the dict's value when given, else the array's own element stride of `dim`
// (else `dflt`: no array, or a dimension of extent <= 1 whose stride numpy leaves arbitrary).
index_t stride_field(const py::dict& d, const char* key, const py::array& a, int dim,
                     int ndim, index_t dflt) {
  if (!get(d, key).is_none()) return integer(d, key);
  if (!present(a) || a.ndim() != ndim || a.shape(dim) <= 1) return dflt;
  const index_t item = static_cast<index_t>(a.itemsize());
  return a.strides(dim) % item == 0 ? a.strides(dim) / item : dflt;
}

// Phase 4 for strided arrays: dimension `dim` (extent > 1) has element stride `field_value`.
void require_stride(const py::array& a, const char* name, int dim, index_t want,
                    const char* field) {
  if (a.shape(dim) <= 1) return;
  const index_t got = element_stride(a, dim, name);
  if (got != want) {
    fail(quoted(field) + " is " + std::to_string(want) + " but " + quoted(name) + " has a " +
         (dim == 0 ? "row" : "column") + " stride of " + std::to_string(got) + " elements");
  }
}

// A row-strided 2-D array whose rows are contiguous (unit element stride along dim 1).
void require_unit_rows(const py::array& a, const char* name) {
  if (a.shape(1) > 1 && element_stride(a, 1, name) != 1) {
    fail(quoted(name) + " must have contiguous rows (unit stride along its second dimension)");
  }
}

// The float dtype T of a call, from the first present of `candidates` (`missing` when none is).
template <class F>
void dispatch_float(std::initializer_list<std::pair<const py::array*, const char*>> candidates,
                    const std::string& missing, F&& f) {
  for (const auto& [arr, name] : candidates) {
    if (!present(*arr)) continue;
    if (equivalent(py::dtype::of<float>(), arr->dtype())) return f(float{});
    if (equivalent(py::dtype::of<double>(), arr->dtype())) return f(double{});
    fail(quoted(name) + " has dtype " + std::string(py::str(arr->dtype())) +
         "; expected float32 or float64");
  }
  fail(missing);
}

// ---- omp_batch ----------------------------------------------------------------------------

struct OmpArrays {
  py::array gram, cov, norms_sq, x, mask, dt, out_index, out_value, out_count, out_status,
      out_dense, profile, gram_f32;
};

template <class T>
void omp_batch_typed(const py::dict& d, const OmpArrays& r) {
  // 1. types, dtypes and ranks.
  typed<T>(r.gram, "gram", 2);
  typed<T>(r.cov, "cov", 2);
  typed<T>(r.norms_sq, "norms_sq", 1);
  typed<T>(r.x, "x", 2);
  typed_mask(r.mask, "mask", 2);
  typed<T>(r.dt, "dt", 2);
  typed<std::int32_t>(r.out_index, "out_index", 2);
  typed<T>(r.out_value, "out_value", 2);
  typed<std::int32_t>(r.out_count, "out_count", 1);
  typed<std::int8_t>(r.out_status, "out_status", 1);
  typed<T>(r.out_dense, "out_dense", 2);
  typed<std::int64_t>(r.profile, "profile", 2);
  typed<float>(r.gram_f32, "gram_f32", 2);
  // Rows with a unit element stride (the row stride is a field, checked below).
  if (present(r.x)) require_unit_rows(r.x, "x");
  if (present(r.mask)) require_unit_rows(r.mask, "mask");
  if (present(r.out_dense)) require_unit_rows(r.out_dense, "out_dense");

  // 2. the struct.
  sf::OmpBatchArgs<T> a;
  a.n_atoms = integer(d, "n_atoms");
  a.n_signals = integer(d, "n_signals");
  a.n_features = integer(d, "n_features");
  a.max_atoms = int_field(d, "max_atoms");
  const py::object tol = get(d, "tol");
  a.use_tol = !tol.is_none();
  if (a.use_tol) a.tol = static_cast<T>(real(d, "tol"));
  a.gram = data<const T>(r.gram);
  a.cov = data<const T>(r.cov);
  a.cov_stride_signal = stride_field(d, "cov_stride_signal", r.cov, 0, 2, a.n_atoms);
  a.cov_stride_atom = stride_field(d, "cov_stride_atom", r.cov, 1, 2, 1);
  a.norms_sq = data<const T>(r.norms_sq);
  a.x = data<const T>(r.x);
  a.ldx = stride_field(d, "ldx", r.x, 0, 2, a.n_features);
  a.mask = data<const unsigned char>(r.mask);
  a.ldm = stride_field(d, "ldm", r.mask, 0, 2, a.n_features);
  a.dt = data<const T>(r.dt);
  a.out_index = data<int>(r.out_index);
  a.out_value = data<T>(r.out_value);
  a.out_count = data<int>(r.out_count);
  a.out_status = data<std::int8_t>(r.out_status);
  a.out_dense = data<T>(r.out_dense);
  a.dense_stride = stride_field(d, "dense_stride", r.out_dense, 0, 2, a.n_atoms);
  a.n_threads = threads_field(d);
  a.lane = lane_field(d);
  a.q_precision = q_precision_field(d);
  if (a.q_precision == sf::QPrecision::kFloat32 &&
      (present(r.mask) || a.lane != sf::LaneKind::kSerial)) {
    fail("`q_precision` 'float32' is available for unmasked signals on the serial lane only");
  }
  if (present(r.gram_f32)) {
    if (!std::is_same_v<T, double>) fail("`gram_f32` is for float64 signals only");
    a.gram_f32 = data<const float>(r.gram_f32);
  }

  // 3. the shared check.
  sf::check_args(a, sf::Backend::kCpu);

  // 4. the arrays against the fields.
  const index_t N = a.n_signals, K = a.n_atoms, F = a.n_features, M = a.max_atoms;
  if (present(r.gram)) {
    require_shape(r.gram, "gram", {K, K});
    require_c_contiguous(r.gram, "gram");
  }
  if (present(r.gram_f32)) {
    require_shape(r.gram_f32, "gram_f32", {K, K});
    require_c_contiguous(r.gram_f32, "gram_f32");
  }
  if (present(r.cov)) {
    require_shape(r.cov, "cov", {N, K});
    require_stride(r.cov, "cov", 0, a.cov_stride_signal, "cov_stride_signal");
    require_stride(r.cov, "cov", 1, a.cov_stride_atom, "cov_stride_atom");
  }
  if (present(r.norms_sq)) {
    require_shape(r.norms_sq, "norms_sq", {N});
    require_c_contiguous(r.norms_sq, "norms_sq");
  }
  if (present(r.x)) {
    require_shape(r.x, "x", {N, F});
    require_stride(r.x, "x", 0, a.ldx, "ldx");
  }
  if (present(r.mask)) {
    require_shape(r.mask, "mask", {N, F});
    require_stride(r.mask, "mask", 0, a.ldm, "ldm");
  }
  if (present(r.dt)) {
    require_shape(r.dt, "dt", {F, K});
    require_c_contiguous(r.dt, "dt");
  }
  for (const auto& [arr, name, rows, cols] :
       {std::tuple<const py::array*, const char*, index_t, index_t>{&r.out_index, "out_index",
                                                                    N, M},
        {&r.out_value, "out_value", N, M}, {&r.out_count, "out_count", N, -1},
        {&r.out_status, "out_status", N, -1}}) {
    if (cols < 0) {
      require_shape(*arr, name, {rows});
    } else {
      require_shape(*arr, name, {rows, cols});
    }
    require_c_contiguous(*arr, name);
    require_writeable(*arr, name);
  }
  if (present(r.out_dense)) {
    require_shape(r.out_dense, "out_dense", {N, K});
    require_stride(r.out_dense, "out_dense", 0, a.dense_stride, "dense_stride");
    require_writeable(r.out_dense, "out_dense");
  }

  a.n_threads = sf::resolve_threads(a.n_threads);
  if (present(r.profile)) {
    if (present(r.mask) || a.lane != sf::LaneKind::kSerial) {
      fail("`profile` (the phase counters) is available for unmasked signals on the serial "
           "lane only");
    }
    require_shape(r.profile, "profile", {static_cast<index_t>(a.n_threads), sf::kOmpProfilePhases});
    require_c_contiguous(r.profile, "profile");
    require_writeable(r.profile, "profile");
    a.profile = data<std::int64_t>(r.profile);
  }
  py::gil_scoped_release release;
  sf::omp_batch(a);
}

void omp_batch(const py::dict& d) {
  reject_unknown(d, "omp_batch",
                 {SF_FIELDS(sf::fields::kOmpBatch), SF_FIELDS(sf::fields::kOmpBatchCpu)});
  OmpArrays r{array(d, "gram"),      array(d, "cov"),       array(d, "norms_sq"),
              array(d, "x"),         array(d, "mask"),      array(d, "dt"),
              array(d, "out_index"), array(d, "out_value"), array(d, "out_count"),
              array(d, "out_status"), array(d, "out_dense"), array(d, "profile"),
              array(d, "gram_f32")};
  // The dtype of the inputs; the outputs must match it.
  dispatch_float({{&r.gram, "gram"}, {&r.cov, "cov"}, {&r.x, "x"}, {&r.out_value, "out_value"}},
                 "pass exactly one of `cov` and `x`",
                 [&](auto zero) { omp_batch_typed<decltype(zero)>(d, r); });
}

// ---- gram ---------------------------------------------------------------------------------

template <class T>
py::array gram_typed(const py::array& d, int n_threads) {
  require_c_contiguous(d, "dictionary");
  const index_t K = d.shape(0), n = d.shape(1);
  py::array_t<T> out({K, K});
  const T* src = static_cast<const T*>(d.data());
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    sf::gram_matrix(src, K, n, dst, n_threads);
  }
  return std::move(out);
}

py::array gram(const py::array& d, long long n_threads) {
  if (d.ndim() != 2) fail("`dictionary` must have 2 dimensions");
  if (n_threads < 0) fail("`n_threads` must be >= 0, got " + std::to_string(n_threads));
  const int team = sf::resolve_threads(n_threads > INT_MAX ? INT_MAX : n_threads);
  if (equivalent(py::dtype::of<float>(), d.dtype())) return gram_typed<float>(d, team);
  if (equivalent(py::dtype::of<double>(), d.dtype())) return gram_typed<double>(d, team);
  fail("`dictionary` has dtype " + std::string(py::str(d.dtype())) +
       "; expected float32 or float64");
}

// ---- array checks -------------------------------------------------------------------------

// The array's bytes as one run: C- or Fortran-contiguous (or empty); else a ValueError (the
// Python callers fall back to numpy for strided arrays).
const void* contiguous_data(const py::array& a, const char* name) {
  if (a.size() > 0 && !(a.flags() & (py::array::c_style | py::array::f_style))) {
    fail(quoted(name) + " must be contiguous");
  }
  return a.data();
}

template <class T>
bool all_finite_typed(const py::array& a) {
  const T* p = static_cast<const T*>(contiguous_data(a, "array"));
  const auto n = static_cast<std::size_t>(a.size());
  py::gil_scoped_release release;
  return sf::all_finite(p, n);
}

bool all_finite(const py::array& a) {
  if (equivalent(py::dtype::of<float>(), a.dtype())) return all_finite_typed<float>(a);
  if (equivalent(py::dtype::of<double>(), a.dtype())) return all_finite_typed<double>(a);
  fail("`array` has dtype " + std::string(py::str(a.dtype())) + "; expected float32 or float64");
}

bool same_bytes(const py::array& a, const py::array& b) {
  const void* pa = contiguous_data(a, "a");
  const void* pb = contiguous_data(b, "b");
  if (a.nbytes() != b.nbytes()) return false;
  const auto n = static_cast<std::size_t>(a.nbytes());
  py::gil_scoped_release release;
  return sf::same_bytes(pa, pb, n);
}

// ---- ksvd_sweep ---------------------------------------------------------------------------

template <class T>
py::tuple ksvd_sweep_typed(const py::dict& d, const py::array& x, const py::array& dictionary,
                           const py::array& indices, const py::array& values,
                           const py::array& residual) {
  typed<T>(x, "x", 2);
  typed<T>(dictionary, "dictionary", 2);
  typed<std::int32_t>(indices, "indices", 2);
  typed<T>(values, "values", 2);
  typed<T>(residual, "residual", 2);

  sf::KsvdSweepArgs<T> a;
  a.n_signals = integer(d, "n_signals");
  a.n_features = integer(d, "n_features");
  a.n_atoms = integer(d, "n_atoms");
  a.max_atoms = integer(d, "max_atoms");
  a.x = data<const T>(x);
  a.dictionary = data<T>(dictionary);
  a.indices = data<const int>(indices);
  a.values = data<T>(values);
  a.residual = data<T>(residual);
  a.exact = flag(d, "exact");
  a.max_power_iter = int_field(d, "max_power_iter");
  a.power_tol = static_cast<T>(real(d, "power_tol"));
  a.n_threads = threads_field(d);
  a.lane = lane_field(d);
  // The outputs the binding owns, allocated once the sizes are checked (the check sees a
  // placeholder for `usage`).
  std::int64_t placeholder = 0;
  double coded_error = 0.0;
  a.usage = &placeholder;
  a.coded_error = &coded_error;

  sf::check_args(a);
  const index_t K = a.n_atoms;
  py::array_t<std::int64_t> usage(K);
  a.usage = usage.mutable_data();

  const index_t N = a.n_signals, n = a.n_features, M = a.max_atoms;
  require_shape(x, "x", {N, n});
  require_c_contiguous(x, "x");
  require_shape(dictionary, "dictionary", {K, n});
  require_shape(indices, "indices", {N, M});
  require_c_contiguous(indices, "indices");
  require_shape(values, "values", {N, M});
  require_shape(residual, "residual", {N, n});
  for (const auto& [arr, name] : {std::pair<const py::array*, const char*>{&dictionary,
                                                                           "dictionary"},
                                  {&values, "values"}, {&residual, "residual"}}) {
    require_c_contiguous(*arr, name);
    require_writeable(*arr, name);
  }
  const int* idx = a.indices;
  for (index_t i = 0; i < N * M; ++i) {
    if (idx[i] < -1 || idx[i] >= K) {
      fail("`indices` holds " + std::to_string(idx[i]) + " at flat position " +
           std::to_string(i) + ", outside [-1, K) = [-1, n_atoms=" + std::to_string(K) + ")");
    }
  }
  a.n_threads = sf::resolve_threads(a.n_threads);
  {
    py::gil_scoped_release release;
    sf::ksvd_sweep(a);
  }
  return py::make_tuple(usage, coded_error);
}

py::tuple ksvd_sweep(const py::dict& d) {
  reject_unknown(d, "ksvd_sweep", {SF_FIELDS(sf::fields::kKsvdSweep)});
  const py::array x = array(d, "x"), dictionary = array(d, "dictionary"),
                  indices = array(d, "indices"), values = array(d, "values"),
                  residual = array(d, "residual");
  for (const auto& [arr, name] : {std::pair<const py::array*, const char*>{&x, "x"},
                                  {&dictionary, "dictionary"}, {&indices, "indices"},
                                  {&values, "values"}, {&residual, "residual"}}) {
    if (!present(*arr)) fail(quoted(name) + " is required");
  }
  py::tuple out;
  dispatch_float({{&dictionary, "dictionary"}}, "`dictionary` is required", [&](auto zero) {
    out = ksvd_sweep_typed<decltype(zero)>(d, x, dictionary, indices, values, residual);
  });
  return out;
}

// ---- patches ------------------------------------------------------------------------------

template <class T>
void extract_typed(const py::dict& d, const py::array& image, const py::array& positions,
                   const py::array& out) {
  typed<T>(image, "image", 3);
  typed<long long>(positions, "positions", 2);
  typed<T>(out, "out", 4);

  sf::PatchExtractArgs<T> a;
  a.H = integer(d, "H");
  a.W = integer(d, "W");
  a.C = integer(d, "C");
  a.ph = integer(d, "ph");
  a.pw = integer(d, "pw");
  a.image = data<const T>(image);
  a.positions = data<const long long>(positions);
  a.n_patches = integer(d, "n_patches");
  a.out = data<T>(out);
  a.n_threads = threads_field(d);
  a.per_element = flag(d, "per_element");

  sf::check_args(a, sf::Backend::kCpu);

  require_shape(image, "image", {a.H, a.W, a.C});
  require_c_contiguous(image, "image");
  require_shape(positions, "positions", {a.n_patches, 2});
  require_c_contiguous(positions, "positions");
  require_shape(out, "out", {a.n_patches, a.ph, a.pw, a.C});
  require_c_contiguous(out, "out");
  require_writeable(out, "out");
  sf::check_patch_positions(a.positions, a.n_patches, a.H, a.W, a.ph, a.pw);

  a.n_threads = sf::resolve_threads(a.n_threads);
  py::gil_scoped_release release;
  sf::extract_patches(a);
}

void extract_patches(const py::dict& d) {
  reject_unknown(d, "extract_patches",
                 {SF_FIELDS(sf::fields::kPatchExtract), SF_FIELDS(sf::fields::kPatchCpu)});
  const py::array image = array(d, "image"), positions = array(d, "positions"),
                  out = array(d, "out");
  dispatch_float({{&image, "image"}, {&out, "out"}}, "`image` is required",
                 [&](auto zero) { extract_typed<decltype(zero)>(d, image, positions, out); });
}

template <class T>
void aggregate_typed(const py::dict& d, const py::array& patches, const py::array& weights,
                     const py::array& out) {
  typed<T>(patches, "patches", 4);
  typed<T>(weights, "weights", 1);
  typed<T>(out, "out", 3);

  sf::PatchAggregateArgs<T> a;
  a.H = integer(d, "H");
  a.W = integer(d, "W");
  a.C = integer(d, "C");
  a.ph = integer(d, "ph");
  a.pw = integer(d, "pw");
  a.step = integer(d, "step");
  a.patches = data<const T>(patches);
  a.weights = data<const T>(weights);
  a.normalise = flag(d, "normalise");
  a.out = data<T>(out);
  a.n_threads = threads_field(d);
  a.per_element = flag(d, "per_element");

  sf::check_args(a, sf::Backend::kCpu);

  const index_t n = sf::grid_count(a.H, a.ph, a.step) * sf::grid_count(a.W, a.pw, a.step);
  require_shape(patches, "patches", {n, a.ph, a.pw, a.C});
  require_c_contiguous(patches, "patches");
  if (present(weights)) {
    require_shape(weights, "weights", {n});
    require_c_contiguous(weights, "weights");
  }
  require_shape(out, "out", {a.H, a.W, a.C});
  require_c_contiguous(out, "out");
  require_writeable(out, "out");

  a.n_threads = sf::resolve_threads(a.n_threads);
  py::gil_scoped_release release;
  sf::aggregate_patches(a);
}

void aggregate_patches(const py::dict& d) {
  reject_unknown(d, "aggregate_patches",
                 {SF_FIELDS(sf::fields::kPatchAggregate), SF_FIELDS(sf::fields::kPatchCpu)});
  const py::array patches = array(d, "patches"), weights = array(d, "weights"),
                  out = array(d, "out");
  dispatch_float({{&patches, "patches"}, {&out, "out"}}, "`patches` is required",
                 [&](auto zero) {
    aggregate_typed<decltype(zero)>(d, patches, weights, out);
  });
}

// ---- kernels on a given support ----------------------------------------------------------

// Phase 4 for the support kernels, whose arrays are all C-contiguous (no stride fields).
void require_dense(const py::array& a, const char* name, std::initializer_list<index_t> shape,
                   bool output) {
  if (!present(a)) return;
  require_shape(a, name, shape);
  require_c_contiguous(a, name);
  if (output) require_writeable(a, name);
}

// The fields both least-squares directions share (phase 2).
template <class T, class A>
void fill_lstsq_common(const py::dict& d, A& a, const py::array& x, const py::array& dictionary,
                       const py::array& weights, const py::array& gram,
                       const py::array& indices) {
  a.n_signals = integer(d, "n_signals");
  a.n_features = integer(d, "n_features");
  a.n_atoms = integer(d, "n_atoms");
  a.max_atoms = integer(d, "max_atoms");
  a.x = data<const T>(x);
  a.dictionary = data<const T>(dictionary);
  a.weights = data<const T>(weights);
  a.gram = data<const T>(gram);
  a.indices = data<const long long>(indices);
  a.n_threads = threads_field(d);
}

struct LstsqArrays {
  py::array x, dictionary, weights, gram, indices, coefs, grad, out, out_dx, out_dd;
};

// The null handle of an array field the entry point does not have (py::array() would be an
// empty array, which `present` takes for a given one).
py::array no_array() { return py::reinterpret_steal<py::array>(py::handle()); }

LstsqArrays lstsq_arrays(const py::dict& d, bool backward) {
  LstsqArrays r{array(d, "x"),       array(d, "dictionary"), array(d, "weights"),
                array(d, "gram"),    array(d, "indices"),    no_array(),
                no_array(),          no_array(),             no_array(),
                no_array()};
  if (backward) {
    r.coefs = array(d, "coefs");
    r.grad = array(d, "grad");
    r.out_dx = array(d, "out_dx");
    r.out_dd = array(d, "out_dd");
  } else {
    r.out = array(d, "out");
  }
  return r;
}

// Phase 1 of the inputs both directions share.
template <class T>
void typed_lstsq_inputs(const LstsqArrays& r) {
  typed<T>(r.x, "x", 2);
  typed<T>(r.dictionary, "dictionary", 2);
  typed<T>(r.weights, "weights", 2);
  typed<T>(r.gram, "gram", 2);
  typed<long long>(r.indices, "indices", 2);
}

// Phase 4 of the inputs both directions share.
template <class A>
void require_lstsq_inputs(const LstsqArrays& r, const A& a) {
  const index_t N = a.n_signals, n = a.n_features, K = a.n_atoms, L = a.max_atoms;
  require_dense(r.x, "x", {N, n}, false);
  require_dense(r.dictionary, "dictionary", {K, n}, false);
  require_dense(r.weights, "weights", {N, n}, false);
  require_dense(r.gram, "gram", {K, K}, false);
  require_dense(r.indices, "indices", {N, L}, false);
}

template <class T>
void support_lstsq_typed(const py::dict& d, const LstsqArrays& r) {
  typed_lstsq_inputs<T>(r);
  typed<T>(r.out, "out", 2);

  sf::SupportLstsqArgs<T> a;
  fill_lstsq_common<T>(d, a, r.x, r.dictionary, r.weights, r.gram, r.indices);
  a.out = data<T>(r.out);

  sf::check_args(a);

  require_lstsq_inputs(r, a);
  require_dense(r.out, "out", {a.n_signals, a.max_atoms}, true);

  a.n_threads = sf::resolve_threads(a.n_threads);
  // The last check reads every index (megabytes): without the GIL, like the kernel.
  py::gil_scoped_release release;
  sf::check_support_indices(a.indices, a.n_signals * a.max_atoms, a.n_atoms, a.max_atoms);
  sf::support_lstsq(a);
}

void support_lstsq(const py::dict& d) {
  reject_unknown(d, "support_lstsq", {SF_FIELDS(sf::fields::kSupportLstsq)});
  const LstsqArrays r = lstsq_arrays(d, false);
  dispatch_float({{&r.dictionary, "dictionary"}, {&r.x, "x"}, {&r.out, "out"}},
                 "`dictionary` is required",
                 [&](auto zero) { support_lstsq_typed<decltype(zero)>(d, r); });
}

template <class T>
void support_lstsq_backward_typed(const py::dict& d, const LstsqArrays& r) {
  typed_lstsq_inputs<T>(r);
  typed<T>(r.coefs, "coefs", 2);
  typed<T>(r.grad, "grad", 2);
  typed<T>(r.out_dx, "out_dx", 2);
  typed<T>(r.out_dd, "out_dd", 2);

  sf::SupportLstsqBackwardArgs<T> a;
  fill_lstsq_common<T>(d, a, r.x, r.dictionary, r.weights, r.gram, r.indices);
  a.coefs = data<const T>(r.coefs);
  a.grad = data<const T>(r.grad);
  a.grad_stride_signal = stride_field(d, "grad_stride_signal", r.grad, 0, 2, a.max_atoms);
  a.grad_stride_slot = stride_field(d, "grad_stride_slot", r.grad, 1, 2, 1);
  a.out_dx = data<T>(r.out_dx);
  a.out_dd = data<T>(r.out_dd);

  sf::check_args(a);

  const index_t N = a.n_signals, n = a.n_features, K = a.n_atoms, L = a.max_atoms;
  require_lstsq_inputs(r, a);
  require_dense(r.coefs, "coefs", {N, L}, false);
  if (present(r.grad)) {
    require_shape(r.grad, "grad", {N, L});
    require_stride(r.grad, "grad", 0, a.grad_stride_signal, "grad_stride_signal");
    require_stride(r.grad, "grad", 1, a.grad_stride_slot, "grad_stride_slot");
  }
  require_dense(r.out_dx, "out_dx", {N, n}, true);
  require_dense(r.out_dd, "out_dd", {K, n}, true);

  a.n_threads = sf::resolve_threads(a.n_threads);
  py::gil_scoped_release release;
  sf::check_support_indices(a.indices, N * L, K, L);
  sf::support_lstsq_backward(a);
}

void support_lstsq_backward(const py::dict& d) {
  reject_unknown(d, "support_lstsq_backward", {SF_FIELDS(sf::fields::kSupportLstsqBackward)});
  const LstsqArrays r = lstsq_arrays(d, true);
  dispatch_float({{&r.dictionary, "dictionary"}, {&r.x, "x"}, {&r.coefs, "coefs"}},
                 "`dictionary` is required",
                 [&](auto zero) { support_lstsq_backward_typed<decltype(zero)>(d, r); });
}

struct SynthesisArrays {
  py::array indices, coefs, weight, grad, out, out_dcoefs, out_dweight;
};

template <class T, class A>
void fill_synthesis_common(const py::dict& d, A& a, const SynthesisArrays& r) {
  typed<long long>(r.indices, "indices", 2);
  typed<T>(r.coefs, "coefs", 2);
  typed<T>(r.weight, "weight", 2);
  a.n_signals = integer(d, "n_signals");
  a.n_features = integer(d, "n_features");
  a.n_atoms = integer(d, "n_atoms");
  a.max_atoms = integer(d, "max_atoms");
  a.indices = data<const long long>(r.indices);
  a.coefs = data<const T>(r.coefs);
  a.weight = data<const T>(r.weight);
  a.n_threads = threads_field(d);
}

template <class A>
void require_synthesis_inputs(const SynthesisArrays& r, const A& a) {
  require_dense(r.indices, "indices", {a.n_signals, a.max_atoms}, false);
  require_dense(r.coefs, "coefs", {a.n_signals, a.max_atoms}, false);
  require_dense(r.weight, "weight", {a.n_atoms, a.n_features}, false);
}

template <class T>
void sparse_synthesis_typed(const py::dict& d, const SynthesisArrays& r) {
  typed<T>(r.out, "out", 2);
  sf::SparseSynthesisArgs<T> a;
  fill_synthesis_common<T>(d, a, r);
  a.out = data<T>(r.out);

  sf::check_args(a);

  require_synthesis_inputs(r, a);
  require_dense(r.out, "out", {a.n_signals, a.n_features}, true);

  a.n_threads = sf::resolve_threads(a.n_threads);
  py::gil_scoped_release release;
  sf::check_support_indices(a.indices, a.n_signals * a.max_atoms, a.n_atoms, a.max_atoms);
  sf::sparse_synthesis(a);
}

void sparse_synthesis(const py::dict& d) {
  reject_unknown(d, "sparse_synthesis", {SF_FIELDS(sf::fields::kSparseSynthesis)});
  const SynthesisArrays r{array(d, "indices"), array(d, "coefs"), array(d, "weight"),
                          no_array(),          array(d, "out"),   no_array(),
                          no_array()};
  dispatch_float({{&r.weight, "weight"}, {&r.coefs, "coefs"}, {&r.out, "out"}},
                 "`weight` is required",
                 [&](auto zero) { sparse_synthesis_typed<decltype(zero)>(d, r); });
}

template <class T>
void sparse_synthesis_backward_typed(const py::dict& d, const SynthesisArrays& r) {
  typed<T>(r.grad, "grad", 2);
  typed<T>(r.out_dcoefs, "out_dcoefs", 2);
  typed<T>(r.out_dweight, "out_dweight", 2);
  sf::SparseSynthesisBackwardArgs<T> a;
  fill_synthesis_common<T>(d, a, r);
  a.grad = data<const T>(r.grad);
  a.grad_stride_signal = stride_field(d, "grad_stride_signal", r.grad, 0, 2, a.n_features);
  a.grad_stride_feature = stride_field(d, "grad_stride_feature", r.grad, 1, 2, 1);
  a.out_dcoefs = data<T>(r.out_dcoefs);
  a.out_dweight = data<T>(r.out_dweight);

  sf::check_args(a);

  require_synthesis_inputs(r, a);
  if (present(r.grad)) {
    require_shape(r.grad, "grad", {a.n_signals, a.n_features});
    require_stride(r.grad, "grad", 0, a.grad_stride_signal, "grad_stride_signal");
    require_stride(r.grad, "grad", 1, a.grad_stride_feature, "grad_stride_feature");
  }
  require_dense(r.out_dcoefs, "out_dcoefs", {a.n_signals, a.max_atoms}, true);
  require_dense(r.out_dweight, "out_dweight", {a.n_atoms, a.n_features}, true);

  a.n_threads = sf::resolve_threads(a.n_threads);
  py::gil_scoped_release release;
  sf::check_support_indices(a.indices, a.n_signals * a.max_atoms, a.n_atoms, a.max_atoms);
  sf::sparse_synthesis_backward(a);
}

void sparse_synthesis_backward(const py::dict& d) {
  reject_unknown(d, "sparse_synthesis_backward",
                 {SF_FIELDS(sf::fields::kSparseSynthesisBackward)});
  const SynthesisArrays r{array(d, "indices"), array(d, "coefs"),      array(d, "weight"),
                          array(d, "grad"),    no_array(),             array(d, "out_dcoefs"),
                          array(d, "out_dweight")};
  dispatch_float({{&r.weight, "weight"}, {&r.coefs, "coefs"}, {&r.grad, "grad"}},
                 "`weight` is required",
                 [&](auto zero) { sparse_synthesis_backward_typed<decltype(zero)>(d, r); });
}

// ---- facts --------------------------------------------------------------------------------

py::dict build_info() {
  py::dict info;
  info["version"] = SF_VERSION;
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
#ifdef _OPENMP
  info["openmp"] = true;
  info["openmp_version"] = _OPENMP;
  info["openmp_max_threads"] = omp_get_max_threads();
  info["openmp_num_procs"] = omp_get_num_procs();
#else
  info["openmp"] = false;
  info["openmp_version"] = py::none();
  info["openmp_max_threads"] = 1;
  info["openmp_num_procs"] = 1;
#endif
  info["simd_compiled"] = sf::compiled_isas();
  info["simd"] = sf::active_isa();
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  sf::install_fork_guard();
  m.doc() = "sparseforge CPU kernels (C++/OpenMP). Use the functions in sparseforge instead.";
  m.def("omp_batch", &omp_batch, py::arg("args"),
        "Batch-OMP. `args` (a dict, keys = OmpBatchArgs fields): n_atoms, n_signals, "
        "n_features, max_atoms, tol (None = fixed sparsity), gram (K, K), either cov "
        "(n_signals, K; strides cov_stride_signal, cov_stride_atom) or x (n_signals, "
        "n_features; row stride ldx) with dt = dictionary.T (n_features, K), optionally mask "
        "(bool/uint8 like x; row stride ldm), norms_sq (n_signals,; tol with cov), outputs "
        "out_index int32 (N, max_atoms), out_value (N, max_atoms), out_count int32 (N,), "
        "out_status int8 (N,), out_dense (N, K; row stride dense_stride; optional), "
        "n_threads (0 = the OpenMP default), lane ('serial' | 'emulated_warp'), profile "
        "(optional int64 (resolve_threads(n_threads), omp_phases) array: per-thread clock "
        "ticks of each phase, overwritten; see sparseforge._profile), q_precision ('auto' | "
        "'native' | 'float32': the float64 pursuit's Q workspace storage, by default chosen "
        "by size; the same atoms and codes up to float64 round-off), gram_f32 (optional float32 "
        "(K, K) copy of gram for float32 Q, which must equal gram rounded to float32 (the exact "
        "selection relies on it); else converted per call). Strides are in elements "
        "and default to the array's own. Releases the GIL.");
  m.def("gram", &gram, py::arg("dictionary"), py::arg("n_threads") = 0,
        "dictionary @ dictionary.T for a C-contiguous (K, n) dictionary, exactly symmetric, "
        "the upper triangle's tiles shared by an OpenMP team of `n_threads` (0 = the OpenMP "
        "default; no BLAS thread pool; the same bits for any count). Releases the GIL.");
  m.def("ksvd_sweep", &ksvd_sweep, py::arg("args"),
        "One K-SVD dictionary-update sweep over all atoms in order, in place. `args` keys: "
        "n_signals, n_features, n_atoms, max_atoms, x (N, n), dictionary (K, n, updated), "
        "indices int32 (N, M), values (N, M, updated), residual (N, n, filled with "
        "X - codes @ D), exact, max_power_iter, power_tol, n_threads, lane. Returns (users "
        "per atom int64 (K,), squared Frobenius error of the codes before the sweep). "
        "Releases the GIL.");
  m.def("extract_patches", &extract_patches, py::arg("args"),
        "Copy the ph x pw patches at `positions` int64 (n_patches, 2) of `image` (H, W, C) "
        "into `out` (n_patches, ph, pw, C). Other keys: H, W, C, ph, pw, n_patches, "
        "n_threads, per_element (run the CUDA kernel's per-element body). Releases the GIL.");
  m.def("aggregate_patches", &aggregate_patches, py::arg("args"),
        "Gather-form aggregation of grid patches (n, ph, pw, C) into `out` (H, W, C). Keys: "
        "H, W, C, ph, pw, step, patches, weights (optional, (n,)), normalise, out, "
        "n_threads, per_element (run the CUDA kernel's per-pixel body). Releases the GIL.");
  m.def("support_lstsq", &support_lstsq, py::arg("args"),
        "Least-squares coefficients of each signal on its support. `args` keys: n_signals, "
        "n_features, n_atoms, max_atoms, x (N, n), dictionary (K, n), weights (N, n; "
        "optional, None = all ones), gram (K, K = dictionary @ dictionary.T; optional, only "
        "without weights; computed when absent), indices int64 (N, max_atoms; -1 = padded), "
        "out (N, max_atoms), n_threads. out[i] = G_i^-1 b_i with G_i = A_i W_i A_i^T, b_i = "
        "A_i W_i x_i (A_i = the rows of dictionary at indices[i]); 0 in padded slots and in "
        "slots whose Cholesky pivot is <= 64 eps max_l G_i[l, l] (dropped). C-contiguous "
        "arrays, float32 or float64. Releases the GIL.");
  m.def("support_lstsq_backward", &support_lstsq_backward, py::arg("args"),
        "Backward of support_lstsq. The same keys (without out) plus coefs (N, max_atoms; the "
        "forward's out), grad (N, max_atoms; any strides grad_stride_signal, "
        "grad_stride_slot, read off the array when absent) and the optional outputs out_dx "
        "(N, n) and "
        "out_dd (K, n), overwritten: u = G^-1 grad, s = W sum_l u_l A_l, out_dx = s, r = "
        "W (x - sum_l c_l A_l), out_dd[indices[i, l]] += u_l r - c_l s (padded and dropped "
        "slots skipped). Deterministic for a given n_threads. Releases the GIL.");
  m.def("sparse_synthesis", &sparse_synthesis, py::arg("args"),
        "out[i] = sum_l coefs[i, l] * weight[indices[i, l]]. `args` keys: n_signals, "
        "n_features (F), n_atoms (A), max_atoms (L), indices int64 (N, L; -1 = padded), "
        "coefs (N, L), weight (A, F), out (N, F), n_threads. Releases the GIL.");
  m.def("sparse_synthesis_backward", &sparse_synthesis_backward, py::arg("args"),
        "Backward of sparse_synthesis: the same keys (without out) plus grad (N, F; any "
        "strides grad_stride_signal, grad_stride_feature, read off the array when absent) "
        "and the optional outputs out_dcoefs (N, L; grad[i] . weight[indices[i, l]], 0 in padded "
        "slots) and out_dweight (A, F; sum of coefs[i, l] grad[i] over the slots using each "
        "row), overwritten. Deterministic for a given n_threads. Releases the GIL.");
  m.attr("omp_phases") = py::int_(static_cast<int>(sf::kOmpProfilePhases));
  m.def("all_finite", &all_finite, py::arg("array"),
        "No NaN or infinity in a contiguous float32 or float64 array: one streaming pass, "
        "no temporary, stopping at the first non-finite chunk. Releases the GIL.");
  m.def("same_bytes", &same_bytes, py::arg("a"), py::arg("b"),
        "Whether two contiguous arrays hold the same bytes (memcmp; shapes and dtypes are the "
        "caller's to compare). Releases the GIL.");
  m.def("clock_ticks", [] {
    return sf::omp_clock_ticks();
  }, "The phase counters' clock now (time-stamp counter ticks on x86, else nanoseconds).");
  m.def("float32_q_by_size", &sf::float32_q_by_size, py::arg("n_atoms"), py::arg("max_atoms"),
        "Whether q_precision 'auto' ranks a float64 pursuit of this size in float32 (K >= 512 "
        "and its Q workspace would take 32 KiB or more): then omp_batch can use a cached "
        "gram_f32.");
  m.def("build_info", &build_info, "Compiler, OpenMP and SIMD facts of this build.");
  m.def("resolve_threads", [](long long n) {
    if (n < 0) fail("`n_threads` must be >= 0 (0 = the OpenMP default)");
    return sf::resolve_threads(n);
  }, py::arg("n_threads"),
        "The team size a kernel call with this n_threads runs with at most, now: 0 = "
        "omp_get_max_threads() (OMP_NUM_THREADS, threadpoolctl), capped at the CPU count, "
        "1 in a fork()ed child.");
  m.def("last_team_size", &sf::last_team_size,
        "OpenMP team size of the last parallel region a CPU kernel ran (0 before any): a "
        "diagnostic for thread limits.");
  m.def("in_forked_child", &sf::in_forked_child,
        "Whether this process was fork()ed after _core was loaded (then kernels run on one "
        "thread: libgomp's thread pool does not survive fork).");
}
