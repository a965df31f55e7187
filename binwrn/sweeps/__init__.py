"""Sweeps: a paper table or ablation as a tracked, resumable set of jobs (binwrn-sweep), and the
table of jobs a `binwrn-run -m` ends with (`job_table`, a Hydra callback)."""
