# Builds csrc/cpu/omp_batch.cpp and ksvd_sweep.cpp once per instruction set into object libraries, so one binary
# runs everywhere and uses AVX2 or AVX-512 where the CPU has them (runtime dispatch in
# csrc/cpu/isa_dispatch.cpp). SPARSEFORGE_MARCH (e.g. "native") adds -march to every build.
include(CheckCXXCompilerFlag)

set(SF_ISA_OBJECTS "")
set(SF_ISA_DEFINES "")

function(sf_add_isa name)
  set(flags ${ARGN})
  add_library(sf_omp_${name} OBJECT ${PROJECT_SOURCE_DIR}/csrc/cpu/omp_batch.cpp
                                    ${PROJECT_SOURCE_DIR}/csrc/cpu/ksvd_sweep.cpp)
  target_include_directories(sf_omp_${name} PRIVATE ${PROJECT_SOURCE_DIR}/csrc/include)
  target_compile_definitions(sf_omp_${name} PRIVATE SF_ISA_NS=${name})
  target_compile_options(sf_omp_${name} PRIVATE ${SF_KERNEL_FLAGS} ${flags})
  set_target_properties(sf_omp_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON
                                                  CXX_VISIBILITY_PRESET hidden)
  if(TARGET OpenMP::OpenMP_CXX)
    target_link_libraries(sf_omp_${name} PRIVATE OpenMP::OpenMP_CXX)
  endif()
  set(SF_ISA_OBJECTS ${SF_ISA_OBJECTS} $<TARGET_OBJECTS:sf_omp_${name}> PARENT_SCOPE)
endfunction()

# Plain IEEE arithmetic (no -ffast-math): results are compared with reference implementations.
set(SF_KERNEL_FLAGS -O3 -fno-math-errno -fno-trapping-math)
if(SPARSEFORGE_MARCH)
  list(APPEND SF_KERNEL_FLAGS -march=${SPARSEFORGE_MARCH})
endif()

sf_add_isa(generic)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  check_cxx_compiler_flag("-mavx2 -mfma" SF_CXX_HAS_AVX2)
  check_cxx_compiler_flag("-mavx512f -mavx512vl -mavx512bw -mavx512dq" SF_CXX_HAS_AVX512)
  if(SF_CXX_HAS_AVX2)
    sf_add_isa(avx2 -mavx2 -mfma)
    list(APPEND SF_ISA_DEFINES SF_HAVE_AVX2)
  endif()
  if(SF_CXX_HAS_AVX512)
    sf_add_isa(avx512 -mavx512f -mavx512vl -mavx512bw -mavx512dq -mavx2 -mfma
               -mprefer-vector-width=512)
    list(APPEND SF_ISA_DEFINES SF_HAVE_AVX512)
  endif()
endif()
