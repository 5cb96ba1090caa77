/* quant.c: 8-bit linear codes of clipped vectors (see quant.h). */
#include "quant.h"

#include <math.h>

void nx_quant_encode(const float *x, int8_t *q, size_t n, float clip) {
    const float s = 127.0f / clip;
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * s;
        /* clamp first: lrintf of a value out of long's range is undefined;
         * the comparisons send NaN to 0 */
        v = v > 127.0f ? 127.0f : v;
        v = v >= -127.0f ? v : (v != v ? 0.0f : -127.0f);
        q[i] = (int8_t)lrintf(v);
    }
}

void nx_quant_decode(const int8_t *q, float *x, size_t n, float clip) {
    const float d = clip / 127.0f;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)q[i] * d;
}
