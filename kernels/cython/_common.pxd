# Shared Cython declarations for the kernels.
ctypedef fused real:
    float
    double
