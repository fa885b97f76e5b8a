// pybind11 module `sparseforge._cuda`: the CUDA kernels on raw device pointers, and the CUDA
// build and runtime facts. Every launcher takes (dtype, device, stream, args) where `args` is
// a dict keyed by the fields of the same C++ argument struct `_core` fills (the shared
// vocabulary, sparseforge/args_check.hpp): array fields are integer device pointers (0 or
// None = none), strides are in elements and default to the C-contiguous ones. Unknown keys
// are an error. Python (sparseforge/backends/cuda) validates and names the arguments; the
// checks here are a backstop: the shared check_args on the filled struct, then every pointer
// must be device memory on `device`. Pointers and the stream are integers: torch's
// data_ptr() and cuda_stream, CuPy's __cuda_array_interface__. Importing this module never
// fails for lack of a GPU, and nothing here synchronises the device.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../cuda/cuda_check.hpp"
#include "../cuda/launch.hpp"
#include "args_dict.hpp"
#include "sparseforge/args_check.hpp"
#include "sparseforge/ksvd_args.hpp"
#include "sparseforge/patch_args.hpp"

namespace py = pybind11;
namespace sf = sparseforge;
using sparseforge::index_t;
namespace sfc = sparseforge::cuda;

namespace {

using namespace sparseforge::bindings;

// A pointer field: an integer address, 0 / None / absent = none.
template <class P>
P* pointer(const py::dict& d, const char* key) {
  const index_t value = integer(d, key);
  if (value < 0) fail(quoted(key) + " must be a device pointer (a non-negative integer)");
  return reinterpret_cast<P*>(static_cast<std::uintptr_t>(value));
}

// A stride field: absent -> the C-contiguous stride `dflt`.
index_t stride(const py::dict& d, const char* key, index_t dflt) {
  return integer(d, key, dflt);
}

// Every non-null pointer must be device memory on `device` (run after the DeviceGuard).
void on_device(const void* ptr, int device, const char* name) {
  if (ptr == nullptr) return;
  const int where = sfc::pointer_device(ptr);
  if (where != device) {
    fail(quoted(name) + " is not device memory on cuda:" + std::to_string(device) +
         (where < 0 ? " (it is host or unknown memory)"
                    : " (it is on cuda:" + std::to_string(where) + ")"));
  }
}

bool is_double(const std::string& dtype) {
  if (dtype == "float64") return true;
  if (dtype == "float32") return false;
  fail("`dtype` must be 'float32' or 'float64', got '" + dtype + "'");
}

cudaStream_t as_stream(std::uintptr_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

// Runs f(T{}) with T the element type `dtype` names.
template <class F>
void typed(const std::string& dtype, F&& f) {
  if (is_double(dtype)) {
    f(double{});
  } else {
    f(float{});
  }
}

// ---- omp_batch ----------------------------------------------------------------------------

template <class T>
void omp_batch_typed(int device, std::uintptr_t stream, const py::dict& p) {
  sf::OmpBatchArgs<T> a;
  a.n_atoms = integer(p, "n_atoms");
  a.n_signals = integer(p, "n_signals");
  a.n_features = integer(p, "n_features");
  a.max_atoms = int_field(p, "max_atoms");
  a.use_tol = !get(p, "tol").is_none();
  if (a.use_tol) a.tol = static_cast<T>(real(p, "tol"));
  a.gram = pointer<const T>(p, "gram");
  a.cov = pointer<const T>(p, "cov");
  a.cov_stride_signal = stride(p, "cov_stride_signal", a.n_atoms);
  a.cov_stride_atom = stride(p, "cov_stride_atom", 1);
  a.norms_sq = pointer<const T>(p, "norms_sq");
  a.x = pointer<const T>(p, "x");
  a.ldx = stride(p, "ldx", a.n_features);
  a.mask = pointer<const unsigned char>(p, "mask");
  a.ldm = stride(p, "ldm", a.n_features);
  a.dt = pointer<const T>(p, "dt");
  a.out_index = pointer<int>(p, "out_index");
  a.out_value = pointer<T>(p, "out_value");
  a.out_count = pointer<int>(p, "out_count");
  a.out_status = pointer<std::int8_t>(p, "out_status");
  a.out_dense = pointer<T>(p, "out_dense");
  a.dense_stride = stride(p, "dense_stride", a.n_atoms);
  sf::check_args(a, sf::Backend::kCuda);

  // The per-warp workspace (CUDA only).
  sfc::OmpWorkspaceBuffers<T> ws;
  ws.scalars = pointer<T>(p, "ws_scalars");
  ws.ints = pointer<int>(p, "ws_ints");
  ws.scalar_stride = integer(p, "ws_scalar_stride");
  ws.int_stride = integer(p, "ws_int_stride");
  ws.n_warps = integer(p, "n_warps");
  const bool masked = a.mask != nullptr;
  const sfc::WorkspaceSize need =
      sfc::omp_workspace_size<T>(a.n_atoms, a.max_atoms, a.n_features, masked);
  namespace cd = sf::check_detail;
  cd::at_least(ws.n_warps, 1, "n_warps");
  cd::at_least(ws.scalar_stride, need.scalars, "ws_scalar_stride");
  cd::at_least(ws.int_stride, need.ints, "ws_int_stride");
  cd::product(ws.n_warps, ws.scalar_stride, "n_warps * ws_scalar_stride");
  cd::product(ws.n_warps, ws.int_stride, "n_warps * ws_int_stride");
  cd::pointer(ws.scalars, true, "ws_scalars");
  cd::pointer(ws.ints, true, "ws_ints");
  if (masked) {
    // The masked scratch keeps 64-bit feature indices in the int workspace (MaskedScratch).
    cd::pointer(reinterpret_cast<const index_t*>(ws.ints), true, "ws_ints");
    cd::require(ws.int_stride % 2 == 0, "`ws_int_stride` must be even with `mask`");
  }

  sfc::DeviceGuard guard(device);
  on_device(a.gram, device, "gram");
  on_device(a.cov, device, "cov");
  on_device(a.norms_sq, device, "norms_sq");
  on_device(a.x, device, "x");
  on_device(a.mask, device, "mask");
  on_device(a.dt, device, "dt");
  on_device(a.out_index, device, "out_index");
  on_device(a.out_value, device, "out_value");
  on_device(a.out_count, device, "out_count");
  on_device(a.out_status, device, "out_status");
  on_device(a.out_dense, device, "out_dense");
  on_device(ws.scalars, device, "ws_scalars");
  on_device(ws.ints, device, "ws_ints");
  py::gil_scoped_release release;
  sfc::omp_batch(a, ws, as_stream(stream));
}

void omp_batch(const std::string& dtype, int device, std::uintptr_t stream, const py::dict& p) {
  reject_unknown(p, "omp_batch",
                 {SF_FIELDS(sf::fields::kOmpBatch), SF_FIELDS(sf::fields::kOmpBatchCuda)});
  typed(dtype, [&](auto zero) { omp_batch_typed<decltype(zero)>(device, stream, p); });
}

py::tuple omp_workspace(const std::string& dtype, index_t K, index_t M, index_t n_features,
                        bool masked) {
  const sfc::WorkspaceSize s =
      is_double(dtype) ? sfc::omp_workspace_size<double>(K, M, n_features, masked)
                       : sfc::omp_workspace_size<float>(K, M, n_features, masked);
  return py::make_tuple(s.scalars, s.ints);
}

index_t omp_resident_warps(const std::string& dtype, int device) {
  const bool dbl = is_double(dtype);
  sfc::DeviceGuard guard(device);
  return sfc::omp_resident_warps(dbl);
}

// ---- K-SVD --------------------------------------------------------------------------------

template <class T>
void ksvd_typed(int device, std::uintptr_t stream, const py::dict& p) {
  sf::KsvdUpdateArgs<T> a;
  a.n_features = integer(p, "n_features");
  a.n_atoms = integer(p, "n_atoms");
  a.max_atoms = integer(p, "max_atoms");
  a.dictionary = pointer<T>(p, "dictionary");
  a.values = pointer<T>(p, "values");
  a.residual = pointer<T>(p, "residual");
  a.user_start = pointer<const index_t>(p, "user_start");
  a.user_signal = pointer<const int>(p, "user_signal");
  a.user_slot = pointer<const int>(p, "user_slot");
  a.rows = pointer<T>(p, "rows");
  a.g = pointer<T>(p, "g");
  a.h = pointer<T>(p, "h");
  a.d = pointer<T>(p, "d");
  a.e = pointer<T>(p, "e");
  a.exact = flag(p, "exact");
  a.max_power_iter = int_field(p, "max_power_iter");
  a.power_tol = static_cast<T>(real(p, "power_tol"));
  sf::check_args(a);

  sfc::DeviceGuard guard(device);
  on_device(a.dictionary, device, "dictionary");
  on_device(a.values, device, "values");
  on_device(a.residual, device, "residual");
  on_device(a.user_start, device, "user_start");
  on_device(a.user_signal, device, "user_signal");
  on_device(a.user_slot, device, "user_slot");
  on_device(a.rows, device, "rows");
  on_device(a.g, device, "g");
  on_device(a.h, device, "h");
  on_device(a.d, device, "d");
  on_device(a.e, device, "e");
  sf::KsvdSweepView<T> v{};
  sf::KsvdAtomArgs<T>& c = v.common;
  c.n_features = a.n_features;
  c.values = a.values;
  c.values_ld = a.max_atoms;
  c.residual = a.residual;
  c.rows = a.rows;
  c.g = a.g;
  c.h = a.h;
  c.d = a.d;
  c.e = a.e;
  c.exact = a.exact;
  c.max_power_iter = a.max_power_iter;
  c.power_tol = a.power_tol;
  v.dictionary = a.dictionary;
  v.user_start = a.user_start;
  v.user_signal = a.user_signal;
  v.user_slot = a.user_slot;
  py::gil_scoped_release release;
  sfc::ksvd_update_atoms(v, a.n_atoms, as_stream(stream));
}

void ksvd_update_atoms(const std::string& dtype, int device, std::uintptr_t stream,
                       const py::dict& p) {
  reject_unknown(p, "ksvd_update_atoms", {SF_FIELDS(sf::fields::kKsvdUpdate)});
  typed(dtype, [&](auto zero) { ksvd_typed<decltype(zero)>(device, stream, p); });
}

// ---- patches ------------------------------------------------------------------------------

template <class T>
void extract_typed(int device, std::uintptr_t stream, const py::dict& p) {
  sf::PatchExtractArgs<T> a;
  a.H = integer(p, "H");
  a.W = integer(p, "W");
  a.C = integer(p, "C");
  a.ph = integer(p, "ph");
  a.pw = integer(p, "pw");
  a.image = pointer<const T>(p, "image");
  a.positions = pointer<const long long>(p, "positions");
  a.n_patches = integer(p, "n_patches");
  a.out = pointer<T>(p, "out");
  // The positions live on the device: Python computed them and checked them on the host.
  sf::check_args(a, sf::Backend::kCuda);

  sfc::DeviceGuard guard(device);
  on_device(a.image, device, "image");
  on_device(a.positions, device, "positions");
  on_device(a.out, device, "out");
  py::gil_scoped_release release;
  sfc::extract_patches(a, as_stream(stream));
}

template <class T>
void aggregate_typed(int device, std::uintptr_t stream, const py::dict& p) {
  sf::PatchAggregateArgs<T> a;
  a.H = integer(p, "H");
  a.W = integer(p, "W");
  a.C = integer(p, "C");
  a.ph = integer(p, "ph");
  a.pw = integer(p, "pw");
  a.step = integer(p, "step");
  a.patches = pointer<const T>(p, "patches");
  a.weights = pointer<const T>(p, "weights");
  a.normalise = flag(p, "normalise");
  a.out = pointer<T>(p, "out");
  sf::check_args(a, sf::Backend::kCuda);

  sfc::DeviceGuard guard(device);
  on_device(a.patches, device, "patches");
  on_device(a.weights, device, "weights");
  on_device(a.out, device, "out");
  py::gil_scoped_release release;
  sfc::aggregate_patches(a, as_stream(stream));
}

void extract_patches(const std::string& dtype, int device, std::uintptr_t stream,
                     const py::dict& p) {
  reject_unknown(p, "extract_patches", {SF_FIELDS(sf::fields::kPatchExtract)});
  typed(dtype, [&](auto zero) { extract_typed<decltype(zero)>(device, stream, p); });
}

void aggregate_patches(const std::string& dtype, int device, std::uintptr_t stream,
                       const py::dict& p) {
  reject_unknown(p, "aggregate_patches", {SF_FIELDS(sf::fields::kPatchAggregate)});
  typed(dtype, [&](auto zero) { aggregate_typed<decltype(zero)>(device, stream, p); });
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "sparseforge CUDA kernels on raw device pointers. Use the functions in sparseforge.";
  m.def("device_count", &sfc::device_count,
        "Number of CUDA devices visible to the runtime (0 without a driver or GPU).");
  m.def("pointer_device", [](std::uintptr_t ptr) {
    return sfc::pointer_device(reinterpret_cast<const void*>(ptr));
  }, py::arg("ptr"), "Device index of a device (or managed) pointer; -1 for host memory.");
  m.def("omp_workspace", &omp_workspace, py::arg("dtype"), py::arg("n_atoms"),
        py::arg("max_atoms"), py::arg("n_features"), py::arg("masked"),
        "(scalars, ints) of scratch one warp of the OMP kernel needs.");
  m.def("omp_resident_warps", &omp_resident_warps, py::arg("dtype"), py::arg("device"),
        "Warps of the OMP kernel resident at once on `device` (a good workspace count).");
  m.def("omp_batch", &omp_batch, py::arg("dtype"), py::arg("device"), py::arg("stream"),
        py::arg("args"),
        "Batch-OMP on the GPU, one warp per signal, enqueued on `stream` (no sync). `args` "
        "keys (OmpBatchArgs fields; device pointers as integers, 0 = none; strides in "
        "elements, C-contiguous when absent): n_atoms, n_signals, n_features, max_atoms, tol, "
        "gram, cov, cov_stride_signal, cov_stride_atom, norms_sq, x, ldx, mask, ldm, dt (the "
        "transposed dictionary, n_features x K), out_index, out_value, out_count, out_status, "
        "out_dense, dense_stride, and the workspace ws_scalars, ws_ints, ws_scalar_stride, "
        "ws_int_stride, n_warps (see omp_workspace). `x` needs `mask` here.");
  m.def("ksvd_update_atoms", &ksvd_update_atoms, py::arg("dtype"), py::arg("device"),
        py::arg("stream"), py::arg("args"),
        "Sequential K-SVD update of every atom (one warp), in place, enqueued on `stream`. "
        "`args` keys: n_features, n_atoms, max_atoms, dictionary, values, residual, "
        "user_start (int64), user_signal, user_slot (int32), rows, g, h, d, e, exact, "
        "max_power_iter, power_tol.");
  m.def("extract_patches", &extract_patches, py::arg("dtype"), py::arg("device"),
        py::arg("stream"), py::arg("args"),
        "Patches at `positions` of an (H, W, C) image, one thread per element. `args` keys: "
        "H, W, C, ph, pw, image, positions (int64, n_patches x 2), n_patches, out.");
  m.def("aggregate_patches", &aggregate_patches, py::arg("dtype"), py::arg("device"),
        py::arg("stream"), py::arg("args"),
        "Gather-form aggregation of grid patches, one thread per output value. `args` keys: "
        "H, W, C, ph, pw, step, patches, weights, normalise, out.");
  m.def("build_info", []() {
    py::dict info;
    info["version"] = SF_VERSION;
    info["cuda_compiler_version"] = SF_CUDA_COMPILER_VERSION;
    info["cuda_architectures"] = SF_CUDA_ARCHITECTURES;
    const int rt = sfc::runtime_version();
    const int drv = sfc::driver_version();
    info["cuda_runtime_version"] = rt < 0 ? py::object(py::none()) : py::object(py::int_(rt));
    info["cuda_driver_version"] = drv <= 0 ? py::object(py::none()) : py::object(py::int_(drv));
    info["device_count"] = sfc::device_count();
    return info;
  });
}
