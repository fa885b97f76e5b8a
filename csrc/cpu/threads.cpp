// Thread-count policy of the CPU drivers (see threads.hpp).
#include "threads.hpp"

#include <pthread.h>

#include <atomic>
#include <climits>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace sparseforge {
namespace {

std::atomic<bool> g_forked{false};
std::atomic<int> g_last_team{0};

// Runs in the child right after fork(): only a lock-free atomic store (async-signal-safe).
void on_fork_child() { g_forked.store(true, std::memory_order_relaxed); }

}  // namespace

int resolve_threads(long long requested) {
  if (g_forked.load(std::memory_order_relaxed)) return 1;
#ifdef _OPENMP
  if (requested <= 0) return omp_get_max_threads();
  const long long procs = omp_get_num_procs();
  return static_cast<int>(requested < procs ? requested : (procs < 1 ? 1 : procs));
#else
  (void)requested;
  return 1;
#endif
}

void install_fork_guard() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, &on_fork_child); });
}

bool in_forked_child() { return g_forked.load(std::memory_order_relaxed); }

void note_team_size(int size) { g_last_team.store(size, std::memory_order_relaxed); }

int last_team_size() { return g_last_team.load(std::memory_order_relaxed); }

void note_team() {
#ifdef _OPENMP
  if (omp_get_thread_num() == 0) note_team_size(omp_get_num_threads());
#else
  note_team_size(1);
#endif
}

}  // namespace sparseforge
