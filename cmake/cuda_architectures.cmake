# Default CUDA architectures when the user sets none (CMAKE_CUDA_ARCHITECTURES or the
# SPARSEFORGE_CUDA_ARCHITECTURES environment variable). Never "native": it fails on build
# machines without a visible GPU (such as CI). sm_80 (A100) and sm_90 (H100) as real code,
# plus PTX of sm_90 so newer GPUs JIT-compile it. Kept short to keep builds fast.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  if(DEFINED ENV{SPARSEFORGE_CUDA_ARCHITECTURES} AND NOT "$ENV{SPARSEFORGE_CUDA_ARCHITECTURES}" STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "$ENV{SPARSEFORGE_CUDA_ARCHITECTURES}")
  else()
    set(CMAKE_CUDA_ARCHITECTURES "80-real;90")
  endif()
endif()
if(CMAKE_CUDA_ARCHITECTURES MATCHES "native|all")
  message(FATAL_ERROR "CMAKE_CUDA_ARCHITECTURES='${CMAKE_CUDA_ARCHITECTURES}': name explicit architectures (e.g. 80;90); 'native' fails without a visible GPU")
endif()
