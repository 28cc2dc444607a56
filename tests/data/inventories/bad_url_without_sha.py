"""model_url without model_sha256."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master', 'model_sha256': None}),
    ('board', {'ssh_hostname': '198.18.0.31', 'model_sha256': None}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21', 'model_sha256': None}),
        ('phone2', {'ssh_hostname': '198.18.0.22', 'model_sha256': None}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
