"""Networks: bridges, addresses, firewall rules, published ports."""
