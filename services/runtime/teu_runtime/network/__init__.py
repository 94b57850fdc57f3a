"""Container networking: bridges, addresses, published ports, the firewall and the DNS responder."""
