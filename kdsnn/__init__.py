"""kdsnn: ANN-to-SNN knowledge distillation and neuromorphic deployment."""
import os

# OpenMP worker threads that run out of work spin for a while before sleeping (libgomp's default).
# On a machine shared with other jobs a spinning thread takes the core the thread it waits for
# needs: a 2-thread training step of mnist_cnn took 1.33 s instead of 0.44 s with passive waiting
# (bench/train_throughput.py, "Threads"). libgomp reads this once, when torch loads, so it is set
# here, before any kdsnn module imports torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
