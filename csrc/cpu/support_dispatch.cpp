// Runtime dispatch of the support kernels to the instruction set Batch-OMP uses.
#include <string>

#include "omp_batch.hpp"
#include "support_kernels.hpp"

namespace sparseforge {
namespace {

enum class Build { kGeneric, kAvx2, kAvx512 };

Build build() {
  static const Build which = [] {
    const std::string isa = active_isa();
#ifdef SF_HAVE_AVX512
    if (isa == "avx512") return Build::kAvx512;
#endif
#ifdef SF_HAVE_AVX2
    if (isa == "avx2") return Build::kAvx2;
#endif
    return Build::kGeneric;
  }();
  return which;
}

#ifdef SF_HAVE_AVX512
#define SF_CASE_AVX512(call) \
  case Build::kAvx512: avx512::call; return;
#else
#define SF_CASE_AVX512(call)
#endif
#ifdef SF_HAVE_AVX2
#define SF_CASE_AVX2(call) \
  case Build::kAvx2: avx2::call; return;
#else
#define SF_CASE_AVX2(call)
#endif
#define SF_DISPATCH(call)             \
  switch (build()) {                  \
    SF_CASE_AVX512(call)              \
    SF_CASE_AVX2(call)                \
    default: generic::call; return;   \
  }

}  // namespace

void support_lstsq(const SupportLstsqArgs<float>& args) { SF_DISPATCH(support_lstsq(args)) }
void support_lstsq(const SupportLstsqArgs<double>& args) { SF_DISPATCH(support_lstsq(args)) }
void support_lstsq_backward(const SupportLstsqBackwardArgs<float>& args) {
  SF_DISPATCH(support_lstsq_backward(args))
}
void support_lstsq_backward(const SupportLstsqBackwardArgs<double>& args) {
  SF_DISPATCH(support_lstsq_backward(args))
}
void sparse_synthesis(const SparseSynthesisArgs<float>& args) {
  SF_DISPATCH(sparse_synthesis(args))
}
void sparse_synthesis(const SparseSynthesisArgs<double>& args) {
  SF_DISPATCH(sparse_synthesis(args))
}
void sparse_synthesis_backward(const SparseSynthesisBackwardArgs<float>& args) {
  SF_DISPATCH(sparse_synthesis_backward(args))
}
void sparse_synthesis_backward(const SparseSynthesisBackwardArgs<double>& args) {
  SF_DISPATCH(sparse_synthesis_backward(args))
}

}  // namespace sparseforge
