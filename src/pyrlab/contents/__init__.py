"""Knowing what is inside an image: the collector's output read into typed inventories,
the pyrlab.lock file, diffs between inventories, SBOMs and tables for people."""
