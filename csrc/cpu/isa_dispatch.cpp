// Picks, once per process, the best instruction set this CPU and this build support.
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "ksvd_sweep.hpp"
#include "omp_batch.hpp"

namespace sparseforge {
namespace {

enum class Isa { kGeneric, kAvx2, kAvx512 };

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default:
      return true;
  }
#else
  return isa == Isa::kGeneric;
#endif
}

bool compiled(Isa isa) {
  switch (isa) {
#ifdef SF_HAVE_AVX512
    case Isa::kAvx512: return true;
#endif
#ifdef SF_HAVE_AVX2
    case Isa::kAvx2: return true;
#endif
    case Isa::kGeneric: return true;
    default: return false;
  }
}

const char* name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

Isa choose() {
  const Isa order[] = {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric};
  // SPARSEFORGE_SIMD forces a lower level (tests use it to run every compiled path); a level
  // this CPU cannot run is ignored rather than crashing with an illegal instruction.
  const char* forced = std::getenv("SPARSEFORGE_SIMD");
  if (forced != nullptr) {
    for (Isa isa : order) {
      if (std::string(forced) == name(isa) && compiled(isa) && cpu_supports(isa)) return isa;
    }
  }
  for (Isa isa : order) {
    if (compiled(isa) && cpu_supports(isa)) return isa;
  }
  return Isa::kGeneric;
}

Isa active() {
  static const Isa isa = choose();
  return isa;
}

template <class T>
void dispatch(const OmpBatchArgs<T>& args) {
  switch (active()) {
#ifdef SF_HAVE_AVX512
    case Isa::kAvx512: avx512::omp_batch(args); return;
#endif
#ifdef SF_HAVE_AVX2
    case Isa::kAvx2: avx2::omp_batch(args); return;
#endif
    default: generic::omp_batch(args); return;
  }
}

template <class T>
void dispatch_gram(const T* d, index_t K, index_t n, T* out, int n_threads) {
  switch (active()) {
#ifdef SF_HAVE_AVX512
    case Isa::kAvx512: avx512::gram_matrix(d, K, n, out, n_threads); return;
#endif
#ifdef SF_HAVE_AVX2
    case Isa::kAvx2: avx2::gram_matrix(d, K, n, out, n_threads); return;
#endif
    default: generic::gram_matrix(d, K, n, out, n_threads); return;
  }
}

template <class T>
void dispatch_ksvd(const KsvdSweepArgs<T>& args) {
  switch (active()) {
#ifdef SF_HAVE_AVX512
    case Isa::kAvx512: avx512::ksvd_sweep(args); return;
#endif
#ifdef SF_HAVE_AVX2
    case Isa::kAvx2: avx2::ksvd_sweep(args); return;
#endif
    default: generic::ksvd_sweep(args); return;
  }
}

}  // namespace

void ksvd_sweep(const KsvdSweepArgs<float>& args) { dispatch_ksvd(args); }
void ksvd_sweep(const KsvdSweepArgs<double>& args) { dispatch_ksvd(args); }

void gram_matrix(const float* d, index_t K, index_t n, float* out, int n_threads) {
  dispatch_gram(d, K, n, out, n_threads);
}
void gram_matrix(const double* d, index_t K, index_t n, double* out, int n_threads) {
  dispatch_gram(d, K, n, out, n_threads);
}

std::int64_t omp_clock_ticks() {  // the same clock as the drivers' (omp_batch.cpp)
#if defined(__x86_64__) || defined(__i386__)
  return static_cast<std::int64_t>(__rdtsc());
#else
  return std::chrono::steady_clock::now().time_since_epoch().count();
#endif
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> out;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (compiled(isa)) out.push_back(name(isa));
  }
  return out;
}

std::string active_isa() { return name(active()); }

void omp_batch(const OmpBatchArgs<float>& args) { dispatch(args); }
void omp_batch(const OmpBatchArgs<double>& args) { dispatch(args); }

}  // namespace sparseforge
