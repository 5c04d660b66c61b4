"""The Flask service: ingestion API, read API and auditor portal.

Arrives with issue #4; nothing here yet.
"""
