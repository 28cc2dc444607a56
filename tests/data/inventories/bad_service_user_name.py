"""A service user no Linux tool accepts as a name."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master'}),
    ('board', {'ssh_hostname': '198.18.0.31', 'service_user': 'Llama Fleet'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
