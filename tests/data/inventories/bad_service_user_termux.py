"""A service user for a phone, whose only user is the app's."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master'}),
    ('board', {'ssh_hostname': '198.18.0.31'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21', 'service_user': 'llm'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
