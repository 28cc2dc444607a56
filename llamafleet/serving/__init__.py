"""Running the cluster: model placement, services, network settings and the firewall."""
