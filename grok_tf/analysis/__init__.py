"""Gradient-outer-product analysis of a run's checkpoint series (`grok-analyze`).

Modules: `spectra` (eigenvalue summaries, matrix square roots, cosines), `circulant`
(circulant deviation, discrete-log reordering), `agop` (input AGOP through the operand
embeddings), `gradients` (parameter-gradient Gram matrices on a probe set), `fourier`
(Nanda et al. progress measures), `runner` (walks the checkpoints, writes `RUN/analysis/`).
"""
