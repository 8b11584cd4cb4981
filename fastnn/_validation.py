"""Argument checks shared by every public op: the errors ../shared/API.md promises, in one place."""
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_arrays(op, contiguous=True, **arrays):
    """Convert each named array-like to a float32/float64 ndarray sharing one dtype.

    None passes through (optional inputs). With `contiguous`, arrays come back C-contiguous (a
    copy only when needed; the caller's array is never modified).
    """
    converted = []
    first = None
    for name, value in arrays.items():
        if value is None:
            converted.append(None)
            continue
        a = np.asarray(value)
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: {name} must be float32 or float64, got {a.dtype}")
        if first is None:
            first = (name, a.dtype)
        elif a.dtype != first[1]:
            raise TypeError(
                f"{op}: {name} is {a.dtype} but {first[0]} is {first[1]}; float inputs must share one dtype"
            )
        converted.append(np.asarray(a, order="C") if contiguous else a)  # keeps 0-d arrays 0-d
    return converted[0] if len(converted) == 1 else tuple(converted)


def check_out(op, out, shape, dtype):
    """Validate a user `out=` buffer: TypeError for a wrong dtype, ValueError for a wrong shape."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: out has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if out.shape != tuple(shape):
        raise ValueError(f"{op}: out has shape {out.shape}, expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError(f"{op}: out is read-only")
    return out


def check_same_shape(op, name, a, ref_name, ref):
    if a.shape != ref.shape:
        raise ValueError(f"{op}: {name} has shape {a.shape}, expected {ref.shape} (the shape of {ref_name})")


def check_ndim(op, name, a, ndims):
    ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if a.ndim not in ndims:
        expected = " or ".join(f"{d}-d" for d in ndims)
        raise ValueError(f"{op}: {name} must be {expected}, got shape {a.shape}")


def integer(op, name, value, minimum=None):
    """An int parameter (bools and floats refused) that is >= minimum."""
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{op}: {name} must be an integer, got {value!r}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return value


def pair(op, name, value, minimum=None):
    """An int or an (h, w) pair of ints, as a tuple of two ints each >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or an (h, w) pair, got {value!r}")
        return tuple(integer(op, name, v, minimum) for v in value)
    v = integer(op, name, value, minimum)
    return (v, v)


def real(op, name, value, minimum=None, maximum=None, strict_minimum=False):
    """A finite real scalar parameter within bounds."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{op}: {name} must be finite, got {v}")
    if minimum is not None and (v <= minimum if strict_minimum else v < minimum):
        raise ValueError(f"{op}: {name} must be {'>' if strict_minimum else '>='} {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{op}: {name} must be <= {maximum}, got {v}")
    return v


def labels(op, name, value, n, num_classes):
    """Integer class labels of shape (n,), each in [0, num_classes)."""
    y = np.asarray(value)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be integers, got {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{op}: {name} has shape {y.shape}, expected ({n},)")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{op}: {name} must be in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    return np.asarray(y, dtype=np.intp, order="C")


def conv_output_size(op, size, kernel, stride, padding, dilation, what="input"):
    """PyTorch's output size; a size < 1 is a ValueError."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(
            f"{op}: output size would be {out} (< 1) for {what} size {size}, kernel {kernel}, "
            f"stride {stride}, padding {padding}, dilation {dilation}"
        )
    return out
