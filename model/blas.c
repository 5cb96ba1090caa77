/* blas.c: OpenBLAS kernel set in use and the one to ask for (see blas.h). */
#include "blas.h"

#include <cblas.h>
#include <string.h>

const char *nx_blas_core(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

const char *nx_blas_better_core(void) {
    /* Only the fallback is second-guessed: any other name is a decision
     * the library made knowing the CPU. */
    if (strcmp(nx_blas_core(), "Prescott") != 0)
        return NULL;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* libgcc reports AVX and AVX-512 only when the OS saves their
     * registers (XCR0), so the kernels would not fault. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    if (__builtin_cpu_supports("avx"))
        return "Sandybridge";
#endif
    return NULL;
}
