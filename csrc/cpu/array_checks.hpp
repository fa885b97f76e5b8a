// Whole-array checks the Python front doors run on every call (the dictionary's finiteness,
// the Gram cache's "same dictionary as last time"), as single streaming passes: numpy's
// `np.isfinite(a).all()` and `(a == b).all()` each write a boolean temporary and read it
// back, which at a (1024, 256) float64 dictionary cost ~100 us a call each, cache-cold after
// a kernel call -- a tenth of a 1,000-signal Batch-OMP call on 2 threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace sparseforge {

// True when none of the n values at p is NaN or infinite (their exponent bits are not all
// ones). Scans in chunks so a non-finite value ends the pass early; each chunk's loop is
// branch-free, so the compiler vectorises it.
template <class T>
bool all_finite(const T* p, std::size_t n) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  using U = std::conditional_t<std::is_same_v<T, double>, std::uint64_t, std::uint32_t>;
  constexpr U kExponent = std::is_same_v<T, double> ? U(0x7ff0000000000000ull) : U(0x7f800000u);
  constexpr std::size_t kChunk = 4096;
  for (std::size_t a = 0; a < n; a += kChunk) {
    const std::size_t b = std::min(n, a + kChunk);
    U bad = 0;
    for (std::size_t i = a; i < b; ++i) {
      U bits;
      std::memcpy(&bits, p + i, sizeof bits);
      bad |= static_cast<U>((bits & kExponent) == kExponent);
    }
    if (bad != 0) return false;
  }
  return true;
}

// True when the n bytes at a and b are identical (memcmp: the C library's vectorised
// comparison, which stops at the first difference).
inline bool same_bytes(const void* a, const void* b, std::size_t n) {
  return n == 0 || std::memcmp(a, b, n) == 0;
}

}  // namespace sparseforge
