/* blas.c: OpenBLAS kernel set in use and the one to ask for (see blas.h). */
#include "blas.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int nx_blas_reexec(char **argv, void (*announce)(const char *from, const char *to), char *errstr,
                   size_t errstr_size) {
    const char *core = nx_blas_better_core();
    if (getenv("OPENBLAS_CORETYPE") || !core)
        return 0;
    char self[4096]; /* PATH_MAX */
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        snprintf(errstr, errstr_size, "readlink /proc/self/exe: %s", strerror(errno));
        return -1;
    }
    self[len] = '\0';
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) {
        snprintf(errstr, errstr_size, "setenv OPENBLAS_CORETYPE: %s", strerror(errno));
        return -1;
    }
    if (announce)
        announce(nx_blas_core(), core);
    execv(self, argv);
    snprintf(errstr, errstr_size, "exec %s: %s", self, strerror(errno));
    unsetenv("OPENBLAS_CORETYPE");
    return -1;
}
