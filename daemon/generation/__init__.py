"""Writing the reminder text: the template (always there) and the character model (optional)."""
