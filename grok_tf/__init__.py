"""grok_tf: the grokking paper (Power et al. 2022) in TensorFlow/Keras, with analysis."""

__version__ = "0.1.0"
