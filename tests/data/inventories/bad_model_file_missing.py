"""model_file that does not exist on the controller."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master', 'model_url': None, 'model_file': '/nonexistent/model.gguf'}),
    ('board', {'ssh_hostname': '198.18.0.31', 'model_url': None, 'model_file': '/nonexistent/model.gguf'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21', 'model_url': None, 'model_file': '/nonexistent/model.gguf'}),
        ('phone2', {'ssh_hostname': '198.18.0.22', 'model_url': None, 'model_file': '/nonexistent/model.gguf'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
