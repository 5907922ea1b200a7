#!/usr/bin/python3
# matmul.py: the Sulis seed's numpy loop (random matrices, matmul, sum), cut
# down and made deterministic: iteration i draws its matrices from
# np.random.default_rng(i), so every run prints the same checksums.
#   matmul.py [ITERATIONS=10] [MATRIX_SIZE=1000]
# OpenBLAS threads follow OPENBLAS_NUM_THREADS (compare runs with the same value).
import sys
import time

import numpy as np

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 10
matrix_size = int(sys.argv[2]) if len(sys.argv) > 2 else 1000

print('Code started', flush=True)
for i in range(iterations):
    rng = np.random.default_rng(i)
    a = rng.random((matrix_size, matrix_size))
    b = rng.random((matrix_size, matrix_size))
    c = np.matmul(a, b).sum()
    print('iter {:4d} checksum {!r}'.format(i, float(c)), flush=True)
print('done', flush=True)
