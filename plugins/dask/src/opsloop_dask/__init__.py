"""opsloop-dask: batch scoring and reference profiles on a Dask cluster."""
