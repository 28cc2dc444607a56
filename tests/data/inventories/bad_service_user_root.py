"""Services as root without the explicit opt-in (service_user_allow_root)."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master'}),
    ('board', {'ssh_hostname': '198.18.0.31', 'service_user': 'root'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
