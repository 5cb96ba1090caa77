/*
 * blas.h: which OpenBLAS kernels this process runs, and which it should.
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: at load time it reads the
 * CPU's family and model and picks a kernel set. A CPU newer than the
 * library (0.3.21 in Debian 12) or a hypervisor's generic CPU model is not
 * in its table, and it falls back to "Prescott", SSE3 kernels, although the
 * CPU runs AVX2 or AVX-512: on this project's 2-core VM (a Xeon with
 * AVX-512 reported as a generic model) that made the MLP 1.7-2.2x slower
 * (README, Benchmarks). The choice is made in the library's constructor,
 * before main, from the environment variable OPENBLAS_CORETYPE; a running
 * process cannot change it. nx_blas_better_core says which kernel set to ask
 * for; nx_blas_reexec sets the variable and executes the program again
 * (the daemon's run/demo/replay and bench_model call it first thing).
 *
 * Guarantees: no allocation; nx_blas_core and nx_blas_better_core are
 * thread-safe (CPUID through the compiler's cpu-feature cache, the
 * library's constant core name); nx_blas_reexec is for main, before any
 * thread or file is opened.
 */
#ifndef NX_BLAS_H
#define NX_BLAS_H

#include <stddef.h>

/* OpenBLAS's name of the kernel set in use, e.g. "Haswell". */
const char *nx_blas_core(void);

/* The kernel set to request through OPENBLAS_CORETYPE, or NULL when the
 * library's own choice stands: it is not the Prescott fallback, or the CPU
 * (with the OS saving its vector state) offers nothing better. AVX-512
 * F/BW/DQ/VL gives "SkylakeX", AVX2 + FMA "Haswell", AVX "Sandybridge". */
const char *nx_blas_better_core(void);

/* If nx_blas_better_core names a kernel set and OPENBLAS_CORETYPE is not
 * set (a variable the user set is obeyed: OPENBLAS_CORETYPE=Prescott keeps
 * the fallback), sets the variable and executes this program again with
 * argv: same pid, same environment otherwise (systemd's notify socket and
 * watchdog travel in it), through the binary's own path so the process
 * keeps its name (not "exe"). announce (may be NULL) is called just before
 * the exec with the kernel set in use and the one asked for, for a log
 * line. Returns only when there was nothing to do (0) or the exec failed
 * (-1 + errstr; the process can go on with the kernels it has). */
int nx_blas_reexec(char **argv, void (*announce)(const char *from, const char *to), char *errstr,
                   size_t errstr_size);

#endif /* NX_BLAS_H */
