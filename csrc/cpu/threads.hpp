// The CPU drivers' thread counts: what `n_threads` resolves to, the fork guard, and the team
// size of the last parallel region (a diagnostic the tests read through _core).
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace sparseforge {

// This thread's number in the enclosing parallel region (0 outside one, or without OpenMP).
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// The team size a CPU kernel runs with for `requested` (>= 0, checked by the caller):
//   0      -> omp_get_max_threads() now, on the calling thread (it honours OMP_NUM_THREADS
//             and threadpoolctl.threadpool_limits, which calls omp_set_num_threads);
//   n > 0  -> n, capped at omp_get_num_procs() (more threads than CPUs only contend);
//   1 always in a process fork()ed after this module was loaded (see install_fork_guard).
// Drivers may use fewer when there is less work than threads.
int resolve_threads(long long requested);

// Registers (once) a pthread_atfork child handler that makes every later call in the child
// run on one thread: libgomp's thread pool does not survive fork(), and a child entering a
// parallel region with more than one thread after the parent used the pool waits forever for
// threads that do not exist in it.
void install_fork_guard();
bool in_forked_child();

// Called by thread 0 of every parallel region of the CPU drivers with the team's size;
// last_team_size() returns the latest (0 before any parallel region ran).
void note_team_size(int size);
int last_team_size();

// note_team_size(omp_get_num_threads()) on thread 0 of the enclosing parallel region.
void note_team();

}  // namespace sparseforge
