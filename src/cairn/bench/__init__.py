"""Workloads behind `cairn bench`; each returns its figures as a dict."""
