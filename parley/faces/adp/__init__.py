"""Tencent Cloud ADP application dialogue API (v1)."""
