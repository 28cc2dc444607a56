"""Cluster-wide settings shared by the test inventories in this folder.

pyinfra loads `<inventory folder>/group_data/*.py` after the deploy's group_data/, key by key,
so these add to the defaults in group_data/all.py. A case overrides them in host data.
"""

llama_cpp_ref = "b6500"
model_url = "https://example.invalid/models/tiny-Q8_0.gguf"
model_sha256 = "a" * 64
model_size_mb = 1200
