// pybind11 module `sparseforge._cuda`: the CUDA kernels on raw device pointers, and the CUDA
// build and runtime facts. Python (sparseforge/_cuda_dispatch.py) validates the arrays and
// names the arguments; the checks here are a backstop (every pointer must be device memory
// on `device`, sizes consistent). Pointers and the stream are integers: torch's data_ptr()
// and cuda_stream, CuPy's __cuda_array_interface__. Importing this module never fails for
// lack of a GPU, and nothing here synchronises the device.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../cuda/cuda_check.hpp"
#include "../cuda/launch.hpp"

namespace py = pybind11;
using sparseforge::index_t;
namespace sfc = sparseforge::cuda;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

// The pointer `value` as P*, checked to be device memory on `device` (0 = null is allowed
// only when not `required`).
template <class P>
P* device_ptr(std::uintptr_t value, int device, const char* name, bool required = true) {
  if (value == 0) {
    if (required) fail(std::string("`") + name + "` is required (got a null pointer)");
    return nullptr;
  }
  P* ptr = reinterpret_cast<P*>(value);
  const int where = sfc::pointer_device(ptr);
  if (where != device) {
    fail(std::string("`") + name + "` is not device memory on cuda:" + std::to_string(device) +
         (where < 0 ? " (it is host or unknown memory)" : " (it is on cuda:" +
                                                             std::to_string(where) + ")"));
  }
  return ptr;
}

void require(bool ok, const std::string& msg) {
  if (!ok) fail(msg);
}

bool is_double(const std::string& dtype) {
  if (dtype == "float64") return true;
  if (dtype == "float32") return false;
  fail("`dtype` must be 'float32' or 'float64', got '" + dtype + "'");
}

cudaStream_t as_stream(std::uintptr_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

// Runs f(T{}) with T the element type `dtype` names, on `device` (the arrays' GPU).
template <class F>
void on_device_typed(const std::string& dtype, int device, F&& f) {
  const bool dbl = is_double(dtype);
  sfc::DeviceGuard guard(device);
  if (dbl) {
    f(double{});
  } else {
    f(float{});
  }
}

template <class T>
void omp_batch_typed(int device, std::uintptr_t stream, const py::dict& p) {
  auto ptr = [&](const char* key) { return p[key].cast<std::uintptr_t>(); };
  auto num = [&](const char* key) { return p[key].cast<index_t>(); };
  sparseforge::OmpBatchArgs<T> a;
  a.n_atoms = num("n_atoms");
  a.n_signals = num("n_signals");
  a.n_features = num("n_features");
  a.max_atoms = p["max_atoms"].cast<int>();
  require(a.n_atoms >= 1 && a.n_signals >= 0, "`n_atoms` must be >= 1 and `n_signals` >= 0");
  require(a.max_atoms >= 1 && a.max_atoms <= a.n_atoms,
          "`max_atoms` must be in [1, n_atoms=" + std::to_string(a.n_atoms) + "]");
  a.use_tol = !p["tol"].is_none();
  if (a.use_tol) {
    a.tol = p["tol"].cast<T>();
    require(a.tol >= T(0), "`tol` must be non-negative");
  }
  const bool masked = ptr("mask") != 0;
  if (masked) {
    a.mask = device_ptr<const unsigned char>(ptr("mask"), device, "mask");
    a.ldm = num("ldm");
    a.x = device_ptr<const T>(ptr("x"), device, "x");
    a.ldx = num("ldx");
    a.dt = device_ptr<const T>(ptr("dt"), device, "dt");
    require(a.n_features >= 1, "`n_features` must be >= 1 with a mask");
  } else {
    a.gram = device_ptr<const T>(ptr("gram"), device, "gram");
    a.cov = device_ptr<const T>(ptr("cov"), device, "cov");
    a.cov_stride_signal = num("cov_stride_signal");
    a.cov_stride_atom = num("cov_stride_atom");
    a.norms_sq = device_ptr<const T>(ptr("norms_sq"), device, "norms_sq", a.use_tol);
  }
  a.out_index = device_ptr<int>(ptr("out_index"), device, "out_index");
  a.out_value = device_ptr<T>(ptr("out_value"), device, "out_value");
  a.out_count = device_ptr<int>(ptr("out_count"), device, "out_count");
  a.out_status = device_ptr<std::int8_t>(ptr("out_status"), device, "out_status");
  a.out_dense = device_ptr<T>(ptr("out_dense"), device, "out_dense", false);
  a.dense_stride = num("dense_stride");
  sfc::OmpWorkspaceBuffers<T> ws;
  ws.scalars = device_ptr<T>(ptr("ws_scalars"), device, "ws_scalars");
  ws.ints = device_ptr<int>(ptr("ws_ints"), device, "ws_ints");
  ws.scalar_stride = num("ws_scalar_stride");
  ws.int_stride = num("ws_int_stride");
  ws.n_warps = num("n_warps");
  const sfc::WorkspaceSize need =
      sfc::omp_workspace_size<T>(a.n_atoms, a.max_atoms, a.n_features, masked);
  require(ws.n_warps >= 1 && ws.scalar_stride >= need.scalars && ws.int_stride >= need.ints,
          "the workspace is smaller than omp_workspace() requires");
  py::gil_scoped_release release;
  sfc::omp_batch(a, ws, as_stream(stream));
}

void omp_batch(const std::string& dtype, int device, std::uintptr_t stream, const py::dict& p) {
  on_device_typed(dtype, device, [&](auto zero) {
    omp_batch_typed<decltype(zero)>(device, stream, p);
  });
}

py::tuple omp_workspace(const std::string& dtype, index_t K, index_t M, index_t n_features,
                        bool masked) {
  const sfc::WorkspaceSize s =
      is_double(dtype) ? sfc::omp_workspace_size<double>(K, M, n_features, masked)
                       : sfc::omp_workspace_size<float>(K, M, n_features, masked);
  return py::make_tuple(s.scalars, s.ints);
}

index_t omp_resident_warps(const std::string& dtype, int device) {
  index_t warps = 0;
  on_device_typed(dtype, device, [&](auto zero) {
    warps = sfc::omp_resident_warps(sizeof(zero) == sizeof(double));
  });
  return warps;
}

template <class T>
void ksvd_typed(int device, std::uintptr_t stream, const py::dict& p) {
  auto ptr = [&](const char* key) { return p[key].cast<std::uintptr_t>(); };
  auto num = [&](const char* key) { return p[key].cast<index_t>(); };
  sparseforge::KsvdSweepView<T> v{};
  sparseforge::KsvdAtomArgs<T>& c = v.common;
  c.n_features = num("n_features");
  c.values_ld = num("max_atoms");
  const index_t n_atoms = num("n_atoms");
  require(c.n_features >= 1 && c.values_ld >= 1 && n_atoms >= 1,
          "`n_features`, `max_atoms` and `n_atoms` must be positive");
  v.dictionary = device_ptr<T>(ptr("dictionary"), device, "dictionary");
  c.values = device_ptr<T>(ptr("values"), device, "values");
  c.residual = device_ptr<T>(ptr("residual"), device, "residual");
  v.user_start = device_ptr<const index_t>(ptr("user_start"), device, "user_start");
  v.user_signal = device_ptr<const int>(ptr("user_signal"), device, "user_signal", false);
  v.user_slot = device_ptr<const int>(ptr("user_slot"), device, "user_slot", false);
  c.rows = device_ptr<T>(ptr("rows"), device, "rows", false);
  c.g = device_ptr<T>(ptr("g"), device, "g", false);
  c.h = device_ptr<T>(ptr("h"), device, "h", false);
  c.d = device_ptr<T>(ptr("d"), device, "d");
  c.e = device_ptr<T>(ptr("e"), device, "e");
  c.exact = p["exact"].cast<bool>();
  c.max_power_iter = p["max_power_iter"].cast<int>();
  c.power_tol = p["power_tol"].cast<T>();
  py::gil_scoped_release release;
  sfc::ksvd_update_atoms(v, n_atoms, as_stream(stream));
}

void ksvd_update_atoms(const std::string& dtype, int device, std::uintptr_t stream,
                       const py::dict& p) {
  on_device_typed(dtype, device, [&](auto zero) {
    ksvd_typed<decltype(zero)>(device, stream, p);
  });
}

template <class T>
void patches_typed(bool extract, int device, std::uintptr_t stream, const py::dict& p) {
  auto ptr = [&](const char* key) { return p[key].cast<std::uintptr_t>(); };
  auto num = [&](const char* key) { return p[key].cast<index_t>(); };
  const index_t H = num("H"), W = num("W"), C = num("C"), ph = num("ph"), pw = num("pw");
  require(H >= 1 && W >= 1 && C >= 1 && ph >= 1 && pw >= 1 && ph <= H && pw <= W,
          "inconsistent patch geometry");
  T* out = device_ptr<T>(ptr("out"), device, "out");
  if (extract) {
    const T* image = device_ptr<const T>(ptr("image"), device, "image");
    const auto* positions = device_ptr<const long long>(ptr("positions"), device, "positions");
    const index_t n = num("n_patches");
    py::gil_scoped_release release;
    sfc::extract_patches(image, W, C, ph, pw, positions, n, out, as_stream(stream));
    return;
  }
  const index_t step = num("step");
  require(step >= 1, "`step` must be positive");
  const T* patches = device_ptr<const T>(ptr("patches"), device, "patches");
  const T* weights = device_ptr<const T>(ptr("weights"), device, "weights", false);
  const bool normalise = p["normalise"].cast<bool>();
  py::gil_scoped_release release;
  sfc::aggregate_patches(patches, weights, H, W, C, ph, pw, step, normalise, out,
                         as_stream(stream));
}

void patches(bool extract, const std::string& dtype, int device, std::uintptr_t stream,
             const py::dict& p) {
  on_device_typed(dtype, device, [&](auto zero) {
    patches_typed<decltype(zero)>(extract, device, stream, p);
  });
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
        "holds the device pointers (integers; 0 = none) and sizes: n_atoms, n_signals, "
        "n_features, max_atoms, tol, gram, cov, cov_stride_signal, cov_stride_atom, "
        "norms_sq, x, ldx, mask, ldm, dt (the transposed dictionary, n_features x K), "
        "out_index, out_value, out_count, out_status, out_dense, dense_stride, ws_scalars, "
        "ws_ints, ws_scalar_stride, "
        "ws_int_stride, n_warps.");
  m.def("ksvd_update_atoms", &ksvd_update_atoms, py::arg("dtype"), py::arg("device"),
        py::arg("stream"), py::arg("args"),
        "Sequential K-SVD update of every atom (one warp), in place, enqueued on `stream`.");
  m.def("extract_patches", [](const std::string& dtype, int device, std::uintptr_t stream,
                              const py::dict& args) { patches(true, dtype, device, stream, args); },
        py::arg("dtype"), py::arg("device"), py::arg("stream"), py::arg("args"),
        "Patches at `positions` of an (H, W, C) image, one thread per element.");
  m.def("aggregate_patches", [](const std::string& dtype, int device, std::uintptr_t stream,
                                const py::dict& args) {
          patches(false, dtype, device, stream, args);
        },
        py::arg("dtype"), py::arg("device"), py::arg("stream"), py::arg("args"),
        "Gather-form aggregation of grid patches, one thread per output value.");
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
