"""Enrichment: addresses resolved to pods, workloads, Services, nodes and names at the time
they were seen, and the workload graph built from the resolved flows."""
