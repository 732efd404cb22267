"""What the manifest asks for: resources, their dependency graph and their content digests."""
