"""Example inventory: two Android phones (Termux), a Raspberry Pi logged into as an ordinary user
with sudo, and one Linux box that runs llama-server.

Copy it, put your own addresses in, then:

    llamafleet check inventory/example.py      # offline: catches mistakes before any host is touched
    llamafleet plan inventory/example.py       # connects, reads CPU/RAM, shows who holds what
    pyinfra inventory/example.py deploy.py     # builds and starts the cluster

Every key is documented once, with its default, in group_data/all.py.

Groups matter: a host in the `termux` group is a phone (port 8022, no root, no firewall), which
is how `llamafleet check` knows without connecting. Phones default to an SSH tunnel for RPC
(the RPC protocol has no authentication, and a phone cannot firewall); Linux hosts listen on
their own cluster address and get firewall rules.
"""

# Settings for the whole cluster, as a group of every host. Not `all = (hosts, {...})`: pyinfra
# loads group_data/all.py over the inventory's `all` data, so values there are silently replaced
# by the defaults (`llamafleet check` reports it). Groups defined later (termux, linux) win over
# this one, and host data wins over every group.
cluster = (
    ["homeserver", "pixel7", "galaxy-s21", "raspberrypi"],
    {
        # One llama.cpp ref for every node: RPC needs the same protocol version everywhere.
        "llama_cpp_ref": "b6500",
        # The model every node downloads and checks. Put the file's real sha256 here (shown on the
        # model's page, or `sha256sum FILE`): `llamafleet check` refuses this placeholder.
        "model_url": "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF/resolve/main/"
        "qwen2.5-1.5b-instruct-q4_k_m.gguf",
        "model_sha256": "0" * 64,
        # Used by `llamafleet plan` to size the split before anything is downloaded.
        "model_size_mb": 1066,
        # Let the laptop you deploy from use the API.
        "api_allowed_sources": ["192.168.1.0/24"],
    },
)

# The Termux phones. sshd runs on 8022 (`sshd` in Termux); the user is the app's Android user
# (`whoami` in Termux). pyinfra's default temp dir /tmp is not writable on Android, hence _temp_dir.
termux = (
    [
        ("pixel7", {"ssh_hostname": "192.168.1.21"}),
        ("galaxy-s21", {"ssh_hostname": "192.168.1.22", "ssh_user": "u0_a245"}),
    ],
    {
        "ssh_port": 8022,
        "ssh_user": "u0_a201",
        "_temp_dir": "/data/data/com.termux/files/usr/tmp",
    },
)

# The Linux hosts. The master (rank 0) runs llama-server and talks to the workers' RPC servers.
# The Pi is logged into as `alice`: `_sudo` makes pyinfra run every command there through sudo
# (packages, /etc, firewall), and `llamafleet status` and `verify` do the same. They never type a
# password, so alice needs sudo without one (`alice ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/).
# `llamafleet check` warns about a non-root ssh_user without `_sudo`.
linux = [
    ("homeserver", {"ssh_hostname": "192.168.1.10", "ssh_user": "root", "llama_role": "master"}),
    ("raspberrypi", {"ssh_hostname": "192.168.1.30", "ssh_user": "alice", "_sudo": True}),
]
