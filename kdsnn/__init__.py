"""kdsnn: ANN-to-SNN knowledge distillation and neuromorphic deployment."""
__version__ = "0.1.0"
