"""RAM given for every host (ram_mb), too little for the model: 3 workers × (1000 × 0.7 − 500) = 600 MB usable for 1200 MB."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master', 'ram_mb': 1000}),
    ('board', {'ssh_hostname': '198.18.0.31', 'ram_mb': 1000}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp', 'ram_mb': 1000},
)
