"""Test support: real servers and mail for the tests and the benchmarks.

* dovecot: a private Dovecot POP3 server on loopback (plain, STLS, POP3S),
  stopped with the process that started it, however that process ends;
* pop3server: a scripted POP3 server that injects the faults Dovecot will
  not produce on demand;
* corpus: tricky messages for parsers and a byte-exact store, and a
  deterministic benchmark mix.

Not part of the installed package: nothing under archiver/ imports it.
`archiver demo` carries its own sample mail and servers (archiver.demo).
"""
