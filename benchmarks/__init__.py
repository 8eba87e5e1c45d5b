"""Benchmarks: ``wgan``'s trainer against a plain WGAN-GP loop (``make bench``), and time to quality
on the toy mixtures (``make bench-quality``). Not part of the installed package; never timed in tests."""
