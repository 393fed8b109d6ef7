"""Shared foundations: configuration, atomic I/O, errors, the backend registry, caches,
weights, dataset loaders, data checksums, provenance and metrics. Imports nothing else of crowdkit."""
