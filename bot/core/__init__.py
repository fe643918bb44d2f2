"""Channel-independent dialogue core: messages in, replies out, state in the database."""
