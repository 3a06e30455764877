"""Escapers, one module per output format. Every string from an inventory, a capture or a
flows file is attacker-chosen (pod names, labels, owner names, DNS names): it reaches an
output only through the escaper of that output's format."""
