"""What exists: reading the world, whose it is, and what rtsctl last applied to it."""
