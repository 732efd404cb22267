"""desired x observed -> actions: diff, ownership, drift vs edit, saved plans and how a plan reads."""
