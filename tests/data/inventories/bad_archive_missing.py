"""llama_cpp_archive pointing at a file the controller does not have."""

linux = [
    ('box', {'ssh_hostname': '198.18.0.10', 'llama_role': 'master', 'llama_cpp_ref': None, 'llama_cpp_archive': '/nonexistent/llama.cpp.tar.gz'}),
    ('board', {'ssh_hostname': '198.18.0.31', 'llama_cpp_ref': None, 'llama_cpp_archive': '/nonexistent/llama.cpp.tar.gz'}),
]
termux = (
    [
        ('phone1', {'ssh_hostname': '198.18.0.21', 'llama_cpp_ref': None, 'llama_cpp_archive': '/nonexistent/llama.cpp.tar.gz'}),
        ('phone2', {'ssh_hostname': '198.18.0.22', 'llama_cpp_ref': None, 'llama_cpp_archive': '/nonexistent/llama.cpp.tar.gz'}),
    ],
    {'ssh_port': 8022, 'ssh_user': 'u0_a201', '_temp_dir': '/data/data/com.termux/files/usr/tmp'},
)
