# Shared Cython declarations for the kernels.
ctypedef fused real:
    float
    double


cdef inline Py_ssize_t chunk_start(Py_ssize_t n, Py_ssize_t c, Py_ssize_t n_chunks) noexcept nogil:
    """Where chunk c starts when n items are split into n_chunks near-equal static chunks (the one
    partition rule: chunk c is [chunk_start(n, c, k), chunk_start(n, c + 1, k)))."""
    return n * c // n_chunks
