"""What scheduling announces to other capabilities, without knowing them.

Receivers run in the sender's unit of work (same session, same transaction),
so whatever they write lands or rolls back with the change itself.
"""

from blinker import Namespace

_signals = Namespace()

# Sessions starting at these instants were recorded or changed status: figures
# of any period holding them (coverage rollups) are no longer current.
# Sent as sessions_changed.send(starts=[...]).
sessions_changed = _signals.signal("sessions-changed")
