"""Service types, availability, slots, bookings and their lifecycle."""
