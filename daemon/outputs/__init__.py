"""Where reminders go: console, desktop notification, speaker, webhook."""
