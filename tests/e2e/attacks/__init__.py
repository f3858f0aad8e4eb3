"""Attack tests: each performs one attack from the security review against real processes on
127.0.0.1 (`kit serve ...`, a fake upstream, an attacker's listener) and shows it refused.

Each test failed on the code before its fix; SECURITY.md lists them next to the defaults they
prove."""
