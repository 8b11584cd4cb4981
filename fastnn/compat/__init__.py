"""Drop-in replacements for course code: `fastnn.compat.cs231n` (assignment 2's layers, fast
layers and update rules, backed by fastnn kernels)."""
