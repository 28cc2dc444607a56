"""Phones without _temp_dir: pyinfra would write to /tmp, which Android denies an app."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master'}),
    ('board', {'ssh_hostname': '198.18.0.31'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201'},
)
