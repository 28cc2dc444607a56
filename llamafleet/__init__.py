"""llamafleet: one llama.cpp RPC cluster across Termux phones and Linux hosts, deployed with pyinfra."""

__version__ = "0.1.0"
