// pybind11 module `sparseforge._core`: the CPU kernels. Python validates and names arguments
// first (python/sparseforge/_validation.py); the checks here are a backstop so that a direct
// call with a wrong array can never read or write out of bounds. Arrays are taken as they are:
// no dtype conversion, no copies (pybind11's default forcecast would copy silently).
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../cpu/ksvd_sweep.hpp"
#include "../cpu/omp_batch.hpp"
#include "../cpu/patches.hpp"
#include "sparseforge/patches.hpp"

namespace py = pybind11;
using sparseforge::index_t;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

// numpy's own equivalence test: an unpickled array carries an equal but distinct dtype
// object (so identity would fail), and a byte-swapped dtype is not equivalent.
bool equivalent(const py::dtype& a, const py::dtype& b) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr()) != 0;
}

template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (!equivalent(py::dtype::of<T>(), a.dtype())) {
    fail(std::string("`") + name + "` has dtype " + std::string(py::str(a.dtype())) +
         "; expected " + std::string(py::str(py::dtype::of<T>())));
  }
}

void require_shape(const py::array& a, const char* name, std::initializer_list<index_t> shape) {
  if (a.ndim() != static_cast<py::ssize_t>(shape.size())) {
    fail(std::string("`") + name + "` must have " + std::to_string(shape.size()) +
         " dimensions, got " + std::to_string(a.ndim()));
  }
  int d = 0;
  for (index_t s : shape) {
    if (a.shape(d) != s) {
      fail(std::string("`") + name + "` has shape[" + std::to_string(d) + "] = " +
           std::to_string(a.shape(d)) + "; expected " + std::to_string(s));
    }
    ++d;
  }
}

void require_c_contiguous(const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style)) fail(std::string("`") + name + "` must be C-contiguous");
}

void require_writeable(const py::array& a, const char* name) {
  if (!a.writeable()) fail(std::string("`") + name + "` must be writeable");
}

sparseforge::LaneKind parse_lane(const std::string& lane) {
  if (lane == "serial") return sparseforge::LaneKind::kSerial;
  if (lane == "emulated_warp") return sparseforge::LaneKind::kEmulatedWarp;
  fail("`lane` must be 'serial' or 'emulated_warp', got '" + lane + "'");
}

index_t element_stride(const py::array& a, int dim, const char* name) {
  const index_t bytes = a.strides(dim);
  if (bytes % static_cast<index_t>(a.itemsize()) != 0) {
    fail(std::string("`") + name + "` has strides that are not a multiple of its item size");
  }
  return bytes / static_cast<index_t>(a.itemsize());
}

template <class T>
void omp_batch_typed(const py::array& gram, const py::object& cov_obj, const py::object& x_obj,
                     const py::object& dt_obj, const py::object& mask_obj,
                     const py::object& norms_sq,
                     int max_atoms, const py::object& tol, int n_threads,
                     py::array out_index, py::array out_value,
                     py::array out_count, py::array out_status,
                     const py::object& out_dense, const std::string& lane) {
  require_dtype<T>(gram, "gram");
  if (gram.ndim() != 2) fail("`gram` must have 2 dimensions");
  const index_t K = gram.shape(0);
  require_shape(gram, "gram", {K, K});
  require_c_contiguous(gram, "gram");
  if (cov_obj.is_none() == x_obj.is_none()) fail("pass exactly one of `cov` and `x`");
  index_t N = 0;
  py::array cov, x, dt;
  py::object keep_alive;  // the mask while the kernel runs
  sparseforge::OmpBatchArgs<T> args;
  if (!cov_obj.is_none()) {
    cov = cov_obj.cast<py::array>();
    require_dtype<T>(cov, "cov");
    if (cov.ndim() != 2) fail("`cov` must have 2 dimensions (n_samples, n_components)");
    N = cov.shape(0);
    require_shape(cov, "cov", {N, K});
    args.cov = static_cast<const T*>(cov.data());
    args.cov_stride_signal = element_stride(cov, 0, "cov");
    args.cov_stride_atom = element_stride(cov, 1, "cov");
  } else {
    x = x_obj.cast<py::array>();
    require_dtype<T>(x, "x");
    if (x.ndim() != 2) fail("`x` must have 2 dimensions (n_samples, n_features)");
    N = x.shape(0);
    const index_t F = x.shape(1);
    if (F > 1 && x.strides(1) != static_cast<py::ssize_t>(sizeof(T))) {
      fail("`x` must have contiguous rows (features with unit stride)");
    }
    if (dt_obj.is_none()) fail("`dt` (the transposed dictionary) is required with `x`");
    dt = dt_obj.cast<py::array>();
    require_dtype<T>(dt, "dt");
    require_shape(dt, "dt", {F, K});
    require_c_contiguous(dt, "dt");
    args.x = static_cast<const T*>(x.data());
    args.ldx = element_stride(x, 0, "x");
    args.dt = static_cast<const T*>(dt.data());
    args.n_features = F;
    if (!mask_obj.is_none()) {
      const py::array mask = mask_obj.cast<py::array>();
      if (mask.itemsize() != 1 || (mask.dtype().kind() != 'b' && mask.dtype().kind() != 'u')) {
        fail("`mask` must be a boolean (or uint8) array");
      }
      require_shape(mask, "mask", {N, F});
      if (F > 1 && mask.strides(1) != 1) fail("`mask` must have contiguous rows");
      args.mask = static_cast<const unsigned char*>(mask.data());
      args.ldm = mask.strides(0);
      keep_alive = mask;
    }
  }
  if (max_atoms < 1 || max_atoms > K) {
    fail("`max_atoms` must be in [1, n_components=" + std::to_string(K) + "], got " +
         std::to_string(max_atoms));
  }
  const index_t M = max_atoms;
  require_dtype<std::int32_t>(out_index, "out_index");
  require_shape(out_index, "out_index", {N, M});
  require_dtype<T>(out_value, "out_value");
  require_shape(out_value, "out_value", {N, M});
  require_dtype<std::int32_t>(out_count, "out_count");
  require_shape(out_count, "out_count", {N});
  require_dtype<std::int8_t>(out_status, "out_status");
  require_shape(out_status, "out_status", {N});
  auto require_output = [](const py::array& arr, const char* name) {
    require_c_contiguous(arr, name);
    require_writeable(arr, name);
  };
  require_output(out_index, "out_index");
  require_output(out_value, "out_value");
  require_output(out_count, "out_count");
  require_output(out_status, "out_status");

  args.gram = static_cast<const T*>(gram.data());
  args.n_atoms = K;
  args.n_signals = N;
  args.max_atoms = max_atoms;
  args.use_tol = !tol.is_none();
  if (args.use_tol) {
    args.tol = tol.cast<T>();
    if (!(args.tol >= T(0))) fail("`tol` must be non-negative");
    if (norms_sq.is_none() && args.x == nullptr) {
      fail("`norms_sq` is required when `tol` is given with `cov`");
    }
  }
  py::array norms;
  if (!norms_sq.is_none()) {
    norms = norms_sq.cast<py::array>();
    require_dtype<T>(norms, "norms_sq");
    require_shape(norms, "norms_sq", {N});
    require_c_contiguous(norms, "norms_sq");
    args.norms_sq = static_cast<const T*>(norms.data());
  }
  args.out_index = static_cast<int*>(out_index.mutable_data());
  args.out_value = static_cast<T*>(out_value.mutable_data());
  args.out_count = static_cast<int*>(out_count.mutable_data());
  args.out_status = static_cast<std::int8_t*>(out_status.mutable_data());
  py::array dense;
  if (!out_dense.is_none()) {
    dense = out_dense.cast<py::array>();
    require_dtype<T>(dense, "out_dense");
    require_shape(dense, "out_dense", {N, K});
    require_writeable(dense, "out_dense");
    if (K > 1 && dense.strides(1) != static_cast<py::ssize_t>(sizeof(T))) {
      fail("`out_dense` rows must be contiguous");
    }
    args.out_dense = static_cast<T*>(dense.mutable_data());
    args.dense_stride = element_stride(dense, 0, "out_dense");
  }
  args.n_threads = n_threads < 1 ? 1 : n_threads;
  args.lane = parse_lane(lane);

  py::gil_scoped_release release;
  sparseforge::omp_batch(args);
}

void omp_batch(const py::array& gram, const py::object& cov, const py::object& norms_sq,
               int max_atoms, const py::object& tol, int n_threads, py::array out_index,
               py::array out_value, py::array out_count, py::array out_status,
               const py::object& out_dense, const std::string& lane, const py::object& x,
               const py::object& dt, const py::object& mask) {
  if (equivalent(py::dtype::of<float>(), gram.dtype())) {
    omp_batch_typed<float>(gram, cov, x, dt, mask, norms_sq, max_atoms, tol,
                           n_threads, out_index, out_value, out_count, out_status, out_dense,
                           lane);
  } else if (equivalent(py::dtype::of<double>(), gram.dtype())) {
    omp_batch_typed<double>(gram, cov, x, dt, mask, norms_sq, max_atoms, tol,
                            n_threads, out_index, out_value, out_count, out_status, out_dense,
                            lane);
  } else {
    fail("`gram` has dtype " + std::string(py::str(gram.dtype())) +
         "; expected float32 or float64");
  }
}

template <class T>
py::array gram_typed(const py::array& d) {
  require_c_contiguous(d, "dictionary");
  const index_t K = d.shape(0), n = d.shape(1);
  py::array_t<T> out({K, K});
  const T* src = static_cast<const T*>(d.data());
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    sparseforge::gram_matrix(src, K, n, dst);
  }
  return std::move(out);
}

py::array gram(const py::array& d) {
  if (d.ndim() != 2) fail("`dictionary` must have 2 dimensions");
  if (equivalent(py::dtype::of<float>(), d.dtype())) return gram_typed<float>(d);
  if (equivalent(py::dtype::of<double>(), d.dtype())) return gram_typed<double>(d);
  fail("`dictionary` has dtype " + std::string(py::str(d.dtype())) +
       "; expected float32 or float64");
}

template <class T>
py::tuple ksvd_sweep_typed(const py::array& x, py::array dictionary, const py::array& indices,
                           py::array values, py::array residual, bool exact, int max_power_iter,
                           double power_tol, int n_threads, const std::string& lane) {
  require_dtype<T>(dictionary, "dictionary");
  if (dictionary.ndim() != 2) fail("`dictionary` must have 2 dimensions");
  const index_t K = dictionary.shape(0), n = dictionary.shape(1);
  require_dtype<std::int32_t>(indices, "indices");
  if (indices.ndim() != 2) fail("`indices` must have 2 dimensions");
  const index_t N = indices.shape(0), M = indices.shape(1);
  require_dtype<T>(values, "values");
  require_shape(values, "values", {N, M});
  require_dtype<T>(residual, "residual");
  require_shape(residual, "residual", {N, n});
  require_dtype<T>(x, "X");
  require_shape(x, "X", {N, n});
  require_c_contiguous(x, "X");
  for (auto [arr, name] : {std::pair<py::array*, const char*>{&dictionary, "dictionary"},
                           {&values, "values"}, {&residual, "residual"}}) {
    require_c_contiguous(*arr, name);
    require_writeable(*arr, name);
  }
  require_c_contiguous(indices, "indices");
  const int* idx = static_cast<const int*>(indices.data());
  for (index_t i = 0; i < N * M; ++i) {
    if (idx[i] < -1 || idx[i] >= K) fail("`indices` holds an atom index outside [-1, K)");
  }
  py::array_t<std::int64_t> usage(K);
  sparseforge::KsvdSweepArgs<T> args;
  args.n_signals = N;
  args.n_features = n;
  args.n_atoms = K;
  args.max_atoms = M;
  args.dictionary = static_cast<T*>(dictionary.mutable_data());
  args.indices = idx;
  args.values = static_cast<T*>(values.mutable_data());
  args.x = static_cast<const T*>(x.data());
  args.residual = static_cast<T*>(residual.mutable_data());
  args.usage = usage.mutable_data();
  args.exact = exact;
  args.max_power_iter = max_power_iter;
  args.power_tol = static_cast<T>(power_tol);
  args.n_threads = n_threads < 1 ? 1 : n_threads;
  args.lane = parse_lane(lane);
  double coded_error = 0.0;
  args.coded_error = &coded_error;
  {
    py::gil_scoped_release release;
    sparseforge::ksvd_sweep(args);
  }
  return py::make_tuple(usage, coded_error);
}

py::tuple ksvd_sweep(const py::array& x, py::array dictionary, const py::array& indices,
                     py::array values, py::array residual, bool exact, int max_power_iter,
                     double power_tol, int n_threads, const std::string& lane) {
  if (equivalent(py::dtype::of<float>(), dictionary.dtype())) {
    return ksvd_sweep_typed<float>(x, dictionary, indices, values, residual, exact,
                                   max_power_iter, power_tol, n_threads, lane);
  }
  return ksvd_sweep_typed<double>(x, dictionary, indices, values, residual, exact,
                                  max_power_iter, power_tol, n_threads, lane);
}

template <class T>
void extract_typed(const py::array& image, int ph, int pw, const py::array& positions,
                   py::array out, int n_threads, bool per_element) {
  require_dtype<T>(image, "image");
  if (image.ndim() != 3) fail("`image` must be (H, W, C)");
  require_c_contiguous(image, "image");
  const index_t H = image.shape(0), W = image.shape(1), C = image.shape(2);
  require_dtype<long long>(positions, "positions");
  if (positions.ndim() != 2 || positions.shape(1) != 2) fail("`positions` must be (n, 2)");
  require_c_contiguous(positions, "positions");
  const index_t n = positions.shape(0);
  const long long* pos = static_cast<const long long*>(positions.data());
  for (index_t p = 0; p < n; ++p) {
    if (pos[2 * p] < 0 || pos[2 * p] + ph > H || pos[2 * p + 1] < 0 || pos[2 * p + 1] + pw > W) {
      fail("`positions` holds a patch outside the image");
    }
  }
  require_dtype<T>(out, "out");
  require_shape(out, "out", {n, ph, pw, C});
  require_c_contiguous(out, "out");
  require_writeable(out, "out");
  const T* src = static_cast<const T*>(image.data());
  T* dst = static_cast<T*>(out.mutable_data());
  py::gil_scoped_release release;
  sparseforge::extract_patches(src, H, W, C, ph, pw, pos, n, dst, n_threads < 1 ? 1 : n_threads,
                               per_element);
}

void extract(const py::array& image, int ph, int pw, const py::array& positions, py::array out,
             int n_threads, bool per_element) {
  if (equivalent(py::dtype::of<float>(), image.dtype())) {
    return extract_typed<float>(image, ph, pw, positions, out, n_threads, per_element);
  }
  extract_typed<double>(image, ph, pw, positions, out, n_threads, per_element);
}

template <class T>
void aggregate_typed(const py::array& patches, const py::object& weights_obj, int step,
                     bool normalise, py::array out, int n_threads, bool per_element) {
  require_dtype<T>(patches, "patches");
  if (patches.ndim() != 4) fail("`patches` must be (n_patches, ph, pw, C)");
  require_c_contiguous(patches, "patches");
  require_dtype<T>(out, "out");
  if (out.ndim() != 3) fail("`out` must be (H, W, C)");
  require_c_contiguous(out, "out");
  require_writeable(out, "out");
  const index_t H = out.shape(0), W = out.shape(1), C = out.shape(2);
  const index_t ph = patches.shape(1), pw = patches.shape(2);
  if (step < 1 || ph > H || pw > W || patches.shape(3) != C) fail("inconsistent patch geometry");
  const index_t rows = sparseforge::grid_count(H, ph, step),
                cols = sparseforge::grid_count(W, pw, step);
  if (patches.shape(0) != rows * cols) {
    fail("`patches` has " + std::to_string(patches.shape(0)) + " patches; the grid has " +
         std::to_string(rows * cols));
  }
  const T* weights = nullptr;
  py::array w;
  if (!weights_obj.is_none()) {
    w = weights_obj.cast<py::array>();
    require_dtype<T>(w, "weights");
    require_shape(w, "weights", {rows * cols});
    require_c_contiguous(w, "weights");
    weights = static_cast<const T*>(w.data());
  }
  const T* src = static_cast<const T*>(patches.data());
  T* dst = static_cast<T*>(out.mutable_data());
  py::gil_scoped_release release;
  sparseforge::aggregate_patches(src, weights, H, W, C, ph, pw, step, normalise, dst,
                                 n_threads < 1 ? 1 : n_threads, per_element);
}

void aggregate(const py::array& patches, const py::object& weights, int step, bool normalise,
               py::array out, int n_threads, bool per_element) {
  if (equivalent(py::dtype::of<float>(), patches.dtype())) {
    return aggregate_typed<float>(patches, weights, step, normalise, out, n_threads,
                                  per_element);
  }
  aggregate_typed<double>(patches, weights, step, normalise, out, n_threads, per_element);
}

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
#else
  info["openmp"] = false;
  info["openmp_version"] = py::none();
  info["openmp_max_threads"] = 1;
#endif
  info["simd_compiled"] = sparseforge::compiled_isas();
  info["simd"] = sparseforge::active_isa();
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "sparseforge CPU kernels (C++/OpenMP). Use the functions in sparseforge instead.";
  m.def("omp_batch", &omp_batch, py::arg("gram"), py::arg("cov"), py::arg("norms_sq"),
        py::arg("max_atoms"), py::arg("tol"), py::arg("n_threads"), py::arg("out_index"),
        py::arg("out_value"), py::arg("out_count"), py::arg("out_status"),
        py::arg("out_dense") = py::none(), py::arg("lane") = "serial", py::kw_only(),
        py::arg("x") = py::none(), py::arg("dt") = py::none(), py::arg("mask") = py::none(),
        "Batch-OMP with `gram` (K x K) over either precomputed correlations `cov` "
        "(n_samples x K, any strides) or signals `x` (n_samples x n_features, contiguous "
        "rows) and `dt` = dictionary.T, whose correlations are computed block by block in "
        "cache; with `mask` (n_samples x n_features, nonzero = observed) each signal is coded "
        "from its observed entries (`dt` is then all the kernel reads of the dictionary). "
        "Writes selection-ordered indices/values, counts and status codes into the "
        "outputs. Releases the GIL.");
  m.def("gram", &gram, py::arg("dictionary"),
        "dictionary @ dictionary.T for a C-contiguous (K, n) dictionary, exactly symmetric, "
        "computed on the calling thread (no BLAS thread pool). Releases the GIL.");
  m.def("ksvd_sweep", &ksvd_sweep, py::arg("X"), py::arg("dictionary"), py::arg("indices"),
        py::arg("values"),
        py::arg("residual"), py::arg("exact") = false, py::arg("max_power_iter") = 50,
        py::arg("power_tol") = 1e-7, py::arg("n_threads") = 1, py::arg("lane") = "serial",
        "One K-SVD dictionary-update sweep over all atoms in order, in place: `dictionary` "
        "(K, n) and the compact code `values` (N, M) are updated, and `residual` (N, n) is "
        "filled with X - codes @ D, kept consistent. Returns (users per atom, squared "
        "Frobenius error of the codes before the sweep). `lane`='emulated_warp' runs the "
        "CUDA kernel's lane logic on the CPU. Releases the GIL.");
  m.def("extract_patches", &extract, py::arg("image"), py::arg("ph"), py::arg("pw"),
        py::arg("positions"), py::arg("out"), py::arg("n_threads") = 1,
        py::arg("per_element") = false,
        "Copy the ph x pw patches at `positions` (n, 2) of `image` (H, W, C) into `out`. "
        "`per_element` runs the CUDA kernel's per-element body on the CPU.");
  m.def("aggregate_patches", &aggregate, py::arg("patches"), py::arg("weights"),
        py::arg("step"), py::arg("normalise"), py::arg("out"), py::arg("n_threads") = 1,
        py::arg("per_element") = false,
        "Gather-form aggregation of grid patches (n, ph, pw, C) into `out` (H, W, C). "
        "`per_element` runs the CUDA kernel's per-pixel body on the CPU.");
  m.def("build_info", &build_info, "Compiler, OpenMP and SIMD facts of this build.");
}
