"""A llama_cpp_repo that is not an http(s) URL (an scp-like SSH address)."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master', 'llama_cpp_repo': 'git@github.com:ggml-org/llama.cpp'}),
    ('board', {'ssh_hostname': '198.18.0.31'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21'}),
        ('phone2', {'ssh_hostname': '198.18.0.22'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
