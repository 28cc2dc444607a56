"""A phone as master with llama-server on every network (a phone cannot firewall)."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10'}),
    ('board', {'ssh_hostname': '198.18.0.31'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21', 'llama_role': 'master', 'llama_server_host': '0.0.0.0'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
