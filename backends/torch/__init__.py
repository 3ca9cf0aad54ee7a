"""PyTorch adapters: `ce.py`, the torch backend and its plain CE variants; `linear.py`, its
linear-CE variants; the optional linear-CE kernels built on torch, `cce.py` (cut-cross-entropy) and
`liger_linear.py` (Liger-Kernel), with `io.py` (their NumPy <-> torch plumbing) and
`triton_interpret.py` (Triton kernels on the CPU interpreter). Nothing here imports torch at
module import."""
