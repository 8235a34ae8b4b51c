"""Putting raw messages into the archive and reading them back byte-exact."""
