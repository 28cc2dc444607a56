"""Deploy one llama.cpp RPC cluster: Termux phones and Linux hosts, one model.

Usage:
    llamafleet check inventory/mine.py        # offline: is the data sound?
    pyinfra inventory/mine.py deploy.py       # converge every host
    llamafleet verify inventory/mine.py       # prove it with testinfra
    llamafleet remove inventory/mine.py       # undo it all (remove.py)

Each task file goes install -> configure -> activate for one component. Reading this list top to
bottom is reading the pipeline.
"""

from pyinfra import local

# Refuse bad data and impossible plans before any host is touched.
local.include("tasks/validate.py")

# Toolchain and tools: `pkg` on Termux, apt on Linux.
local.include("tasks/packages.py")

# llamafleet's own directory, marked as made by it: `llamafleet remove` deletes only a marked one.
local.include("tasks/base.py")

# llama.cpp at the cluster's one ref: git clone or an uploaded archive.
local.include("tasks/source.py")

# Compile what each role needs (workers: ggml-rpc-server; master: llama-server), once per class.
local.include("tasks/build.py")

# The model on every device that loads it, sha256-checked, never re-sent.
local.include("tasks/model.py")

# Linux network settings: sysctl drop-in and firewall rules (skipped on Termux: no root).
local.include("tasks/network.py")

# Each worker's RPC port, recorded on it: adding or removing a device moves no other worker.
local.include("tasks/ports.py")

# The unprivileged system user the services run as on Linux (a phone has only the app's).
local.include("tasks/account.py")

# Supervised rpc-server workers and their boot scripts.
local.include("tasks/workers.py")

# Every host waits here: workers restart on a new build before the master does (RPC versions).
local.include("tasks/workers_first.py")

# The master: tunnels to Termux workers, then llama-server with --rpc and -ts from the plan.
local.include("tasks/master.py")

# What an upgrade replaced: releases before the previous one, unused trees, old downloaded models.
local.include("tasks/prune.py")
