"""Cluster-wide settings of the test inventory in this folder (as in ../group_data/all.py).

pyinfra loads `<inventory folder>/group_data/*.py` after the deploy's group_data/, key by key,
so these add to the defaults in group_data/all.py. A case overrides them in host data.
"""

llama_cpp_ref = "b6500"
model_url = "https://example.invalid/models/tiny-Q8_0.gguf"
# A stand-in of the right shape that no check mistakes for a placeholder: the sha256 of the
# file's name. Nothing is downloaded.
model_sha256 = "3f14bc60af4158657f845e68d262abbd284295c6a7566415a61f559c72e6946e"
model_size_mb = 1200
