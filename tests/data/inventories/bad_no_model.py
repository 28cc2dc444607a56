"""Neither model_url nor model_file."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master', 'model_url': None}),
    ('board', {'ssh_hostname': '198.18.0.31', 'model_url': None}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21', 'model_url': None}),
        ('phone2', {'ssh_hostname': '198.18.0.22', 'model_url': None}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
