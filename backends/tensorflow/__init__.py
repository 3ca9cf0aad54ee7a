"""TensorFlow adapters: `ce.py`, the tensorflow backend and its plain CE variants; `linear.py`, its
linear-CE variants."""
