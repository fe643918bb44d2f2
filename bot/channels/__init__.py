"""Thin channel adapters around the dialogue core (terminal, Telegram)."""
