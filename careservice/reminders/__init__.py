"""SMS reminders: the outbox, message texts, quiet hours, backends, dispatch and webhooks."""
