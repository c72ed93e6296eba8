"""Cross-cutting pieces: errors, auth, pagination, idempotency, time, audit."""
