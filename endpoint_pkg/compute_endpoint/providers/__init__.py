"""Providers: where managers come from (this host for now)."""
