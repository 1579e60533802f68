"""The cluster timeline: a durable, ordered record of what happened and who did it."""
