"""Queries, transactions and responders: what chatstore does, independent of HTTP."""
