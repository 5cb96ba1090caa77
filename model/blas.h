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
 * for; the daemon sets the variable and re-executes itself (daemon/main.c).
 *
 * Guarantees: no allocation; thread-safe (reads CPUID through the
 * compiler's cpu-feature cache and the library's constant core name).
 */
#ifndef NX_BLAS_H
#define NX_BLAS_H

/* OpenBLAS's name of the kernel set in use, e.g. "Haswell". */
const char *nx_blas_core(void);

/* The kernel set to request through OPENBLAS_CORETYPE, or NULL when the
 * library's own choice stands: it is not the Prescott fallback, or the CPU
 * (with the OS saving its vector state) offers nothing better. AVX-512
 * F/BW/DQ/VL gives "SkylakeX", AVX2 + FMA "Haswell", AVX "Sandybridge". */
const char *nx_blas_better_core(void);

#endif /* NX_BLAS_H */
