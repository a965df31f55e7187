"""`binwrn-gpucheck` (`make gpu-check`): the GPU path checked on one GPU in one short call.

Sections, each in its own process with its own time limit (profile.py): environment,
the `gpu` tests, speed, accuracy with export. `--cpu` runs the same steps shrunk on the CPU.
"""
