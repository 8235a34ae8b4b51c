"""Servers and mail for tests, the demo and benchmarks (a private Dovecot, a scripted POP3 server, sample messages)."""
