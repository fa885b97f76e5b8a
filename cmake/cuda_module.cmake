# The optional `_cuda` module. AUTO builds it when nvcc is found AND our CUDA sources compile
# (probed at configure time, so a broken toolchain falls back to a CPU-only build instead of
# failing `pip install`); ON makes either failure fatal.
set(SF_CUDA_SOURCES
  ${PROJECT_SOURCE_DIR}/csrc/cuda/runtime_info.cu
  ${PROJECT_SOURCE_DIR}/csrc/cuda/omp_kernels.cu
  ${PROJECT_SOURCE_DIR}/csrc/cuda/ksvd_kernels.cu
  ${PROJECT_SOURCE_DIR}/csrc/cuda/patch_kernels.cu)
set(SF_CUDA_BUILT OFF)

function(sf_cuda_unavailable reason)
  if(SPARSEFORGE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SPARSEFORGE_CUDA=ON but ${reason}")
  endif()
  message(STATUS "sparseforge: building without CUDA (${reason})")
endfunction()

if(SPARSEFORGE_CUDA STREQUAL "OFF")
  message(STATUS "sparseforge: CUDA disabled (SPARSEFORGE_CUDA=OFF)")
else()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    sf_cuda_unavailable("no working CUDA compiler (nvcc) was found")
  else()
    include(${PROJECT_SOURCE_DIR}/cmake/cuda_architectures.cmake)
    enable_language(CUDA)
    find_package(CUDAToolkit)
    set(SF_CUDA_FLAGS -Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Werror)
    set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
    try_compile(SF_CUDA_PROBE_OK ${CMAKE_BINARY_DIR}/cuda_probe
      SOURCES ${SF_CUDA_SOURCES}
      CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${PROJECT_SOURCE_DIR}/csrc/include"
                  "-DCMAKE_CUDA_ARCHITECTURES=${CMAKE_CUDA_ARCHITECTURES}"
      COMPILE_DEFINITIONS ${SF_CUDA_FLAGS}
      CUDA_STANDARD 17
      OUTPUT_VARIABLE SF_CUDA_PROBE_LOG)
    unset(CMAKE_TRY_COMPILE_TARGET_TYPE)
    if(NOT TARGET CUDA::cudart)
      sf_cuda_unavailable("the CUDA runtime library (cudart) was not found")
    elseif(NOT SF_CUDA_PROBE_OK)
      message(STATUS "CUDA probe log:\n${SF_CUDA_PROBE_LOG}")
      sf_cuda_unavailable("the CUDA sources failed to compile with ${CMAKE_CUDA_COMPILER}")
    else()
      set(SF_CUDA_BUILT ON)
    endif()
  endif()
endif()

if(SF_CUDA_BUILT)
  set(CMAKE_CUDA_STANDARD 17)
  add_library(sf_cuda_kernels STATIC ${SF_CUDA_SOURCES})
  target_include_directories(sf_cuda_kernels PUBLIC ${PROJECT_SOURCE_DIR}/csrc/include)
  target_compile_options(sf_cuda_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${SF_CUDA_FLAGS}>)
  set_target_properties(sf_cuda_kernels PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(sf_cuda_kernels PUBLIC CUDA::cudart)

  pybind11_add_module(_cuda MODULE csrc/bindings/cuda_module.cpp)
  target_link_libraries(_cuda PRIVATE sf_cuda_kernels)
  # The bindings include the kernel headers only for their structs and workspace sizes; their
  # OpenMP pragmas are for the CPU drivers, which this target does not compile.
  target_compile_options(_cuda PRIVATE -Wall -Wextra -Werror -Wno-unknown-pragmas)
  string(REPLACE ";" "," SF_CUDA_ARCH_LIST "${CMAKE_CUDA_ARCHITECTURES}")
  target_compile_definitions(_cuda PRIVATE
    SF_VERSION="${SKBUILD_PROJECT_VERSION}"
    SF_CUDA_ARCHITECTURES="${SF_CUDA_ARCH_LIST}"
    SF_CUDA_COMPILER_VERSION="${CMAKE_CUDA_COMPILER_VERSION}")
  install(TARGETS _cuda LIBRARY DESTINATION sparseforge)
  message(STATUS "sparseforge: building _cuda for architectures ${CMAKE_CUDA_ARCHITECTURES}")
endif()
