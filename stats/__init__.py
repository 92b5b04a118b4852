"""Statistics: anonymous facts per contact (`bot.storage.facts`, written in the same transactions as the
conversation itself), and the numbers coordinators read, computed from those facts only (never
from transcripts), so they survive the retention purge."""
