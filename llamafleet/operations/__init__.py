"""llamafleet's own pyinfra operations (`termux.packages`, `packages.apt_installed`, `source.*`,
`build.*`, `prune.*`, `order.all_hosts_reach`).

pyinfra names an operation after its module, so these read as `termux.packages` etc. in the
deploy output. Pure helpers that the operations share live next to them (`hostdata`, `buildinputs`,
`archive`, `keep`) and never import pyinfra's global host/state.
"""
