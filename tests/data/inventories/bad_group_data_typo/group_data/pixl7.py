"""Meant for the group `pixel7` (misspelt): pyinfra applies it to no host, without a word."""

rpc_threads = 4
