/* What every C helper of the Cython kernels shares: the one ISA dispatch and the one fast-math
 * policy.
 *
 * ISA dispatch: a function marked FNN_CLONES is compiled for x86-64-v4 (AVX-512), x86-64-v3
 * (AVX2 + FMA) and baseline x86-64, and the loader picks the best at run time, so a portable build
 * still runs 16 floats per instruction where the CPU has AVX-512. target_clones needs gcc >= 11
 * (x86-64-vN names) and ifunc support (glibc); elsewhere the code is built for the compiler's
 * default target.
 *
 * Fast math: none (-ffast-math would drop the NaN/inf semantics the kernels keep, and at link
 * time set flush-to-zero for the whole process). Loops are compiled without -ftrapping-math
 * (FNN_BEGIN_LOOPS ... FNN_END_LOOPS around them): otherwise gcc will not evaluate both sides of a
 * select, and only AVX-512 (masked lanes) vectorizes them; AVX2 and SSE2 loops stay scalar and
 * branchy, 10-40x slower. Results, NaN and inf included, do not change: only the floating-point
 * exception flags, which nothing reads. Every extension is also built without errno semantics
 * (setup.py's -fno-math-errno; gcc ignores it in an optimize pragma): a sqrt that may set errno
 * stays a scalar call, and nothing reads errno either. Reductions that may be reordered say so with
 * FNN_SIMD_REDUCTION(...) (an OpenMP simd reduction) where they sum.
 */
#ifndef FASTNN_SIMD_H
#define FASTNN_SIMD_H

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) \
    && defined(__linux__) && defined(__GLIBC__)
#define FNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FNN_CLONES
#endif

/* 16 lanes of float32 / int32 (GCC vector extensions): one AVX-512 register, two AVX2 ones or four
 * SSE ones, whichever FNN_CLONES picked; loads and stores go through memcpy (no alignment assumed). */
typedef float fnn_v16 __attribute__((vector_size(64)));
typedef int fnn_i16 __attribute__((vector_size(64)));

#if defined(__GNUC__) && !defined(__clang__)
#define FNN_BEGIN_LOOPS _Pragma("GCC push_options") _Pragma("GCC optimize(\"no-trapping-math\")")
#define FNN_END_LOOPS _Pragma("GCC pop_options")
#define FNN_IVDEP _Pragma("GCC ivdep")
#else
#define FNN_BEGIN_LOOPS
#define FNN_END_LOOPS
#define FNN_IVDEP
#endif

#endif
