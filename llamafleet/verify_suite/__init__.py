"""The testinfra suite `llamafleet verify INVENTORY` runs against a deployed cluster."""
