"""A device-class group declared before `termux`: termux's rpc_transport (group_data/termux.py) wins over it."""

# Declared first: pyinfra lets the later group (termux) win.
pixel7 = (['phone1'], {'rpc_transport': 'direct', 'rpc_allow_insecure': True})

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master'}),
    ('board', {'ssh_hostname': '198.18.0.31'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
