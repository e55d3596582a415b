"""Retrieval benchmark: ingestion throughput, search latency and recall at 10k-1M segments."""
