"""The relayer database's revisions, oldest first by their `down_revision` chain."""
