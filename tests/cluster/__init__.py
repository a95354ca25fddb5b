"""Tests of the KV service's operations side: config, admin HTTP, local clusters, cluster CLI."""
