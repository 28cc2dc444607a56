"""Options shared by the test tree: none today. The testinfra suite that checks a deployed
cluster ships in the package (llamafleet/verify_suite, run by `llamafleet verify INVENTORY`);
the integration test runs it against the lab."""
