"""Group data in group_data/pixl7.py for a group the inventory calls `pixel7`.

In its own folder: pyinfra loads every file in an inventory folder's group_data/, so the typo
would otherwise reach the other inventories here.
"""

pixel7 = ['phone1']
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
