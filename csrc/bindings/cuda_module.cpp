// pybind11 module `sparseforge._cuda`: for now the CUDA build and runtime facts (the kernels
// arrive with the CUDA issue). Importing it never fails for lack of a GPU.
#include <pybind11/pybind11.h>

namespace sparseforge {
namespace cuda {
int runtime_version();
int driver_version();
int device_count();
}  // namespace cuda
}  // namespace sparseforge

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "sparseforge CUDA module (build and runtime information).";
  m.def("device_count", &sparseforge::cuda::device_count,
        "Number of CUDA devices visible to the runtime (0 without a driver or GPU).");
  m.def("build_info", []() {
    py::dict info;
    info["version"] = SF_VERSION;
    info["cuda_compiler_version"] = SF_CUDA_COMPILER_VERSION;
    info["cuda_architectures"] = SF_CUDA_ARCHITECTURES;
    const int rt = sparseforge::cuda::runtime_version();
    const int drv = sparseforge::cuda::driver_version();
    info["cuda_runtime_version"] = rt < 0 ? py::object(py::none()) : py::object(py::int_(rt));
    info["cuda_driver_version"] = drv <= 0 ? py::object(py::none()) : py::object(py::int_(drv));
    info["device_count"] = sparseforge::cuda::device_count();
    return info;
  });
}
