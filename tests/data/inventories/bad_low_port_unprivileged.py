"""llama-server on port 80, which its unprivileged service user cannot bind."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master', 'llama_server_port': 80}),
    ('board', {'ssh_hostname': '198.18.0.31'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
