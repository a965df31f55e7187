"""Sweeps: a paper table or ablation as a tracked, resumable set of jobs (binwrn-sweep)."""
