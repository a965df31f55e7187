"""`binwrn-bench`: step time, throughput and startup of binwrn's training path against a plain
PyTorch loop, for fp32 and 1-bit WRNs (`make bench`; results in docs/benchmarks.md)."""
