"""The chaos-and-gradients study's own code, beside its example `examples/chaos_gradients.py`:
the piecewise-linear RNN (`plrnn`), sparsely forced BPTT (`forcing`) and Lorenz-63 data
(`lorenz`). Nothing in `neuralct` uses them; see the study page "Chaos and gradients"."""
