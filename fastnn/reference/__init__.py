"""The plain-NumPy reference of every op: the test oracle and the benchmark's NumPy baseline.

Obvious code (broadcasting, einsum, sliding windows), never a copy of the fast paths' tricks.
"""
