"""The lab's four hosts as `llamafleet lab up` makes them (lab/llamafleet_lab/topology.py): linux1
the master, linux2 a direct worker, phone1 and phone2 Termux workers behind SSH tunnels, with
the lab's model (Gemma 3 270M, 253 MB). Phones first, as inventory/lab.py lists them: ranks
phone1 1, phone2 2, linux2 3. Offline: plan it with lab_like.facts.json."""

_model = {"model_size_mb": 253, "model_url": "https://example.invalid/models/gemma-3-270m-q4_k_m.gguf"}
termux = (
    [("phone1", {"ssh_hostname": "198.18.0.101", "cluster_address": "198.18.0.101", **_model}),
     ("phone2", {"ssh_hostname": "198.18.0.102", "cluster_address": "198.18.0.102", **_model})],
    {"ssh_port": 8022, "_temp_dir": "/data/data/com.termux/files/usr/tmp"},
)
linux = [
    ("linux1", {"ssh_hostname": "198.18.0.11", "cluster_address": "198.18.0.11", "llama_role": "master", **_model}),
    ("linux2", {"ssh_hostname": "198.18.0.12", "cluster_address": "198.18.0.12", **_model}),
]
