"""POP3 collection: the protocol client and the lose-nothing collection pass."""
