"""pyftpdlib as the benchmark runs it: anonymous read-only, one virtual user
whose password is checked against an argon2id hash (argon2-cffi) with the
same parameters as ferroftpd's, no connection limits, quiet logging.

Usage: python3 pyftpdlib_server.py PORT ANON_ROOT USER HASH_FILE USER_ROOT [CERT KEY]
With CERT and KEY, AUTH TLS is offered (pyftpdlib's TLS_FTPHandler, pyOpenSSL).
"""

import logging
import sys

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, InvalidHashError
from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


class Argon2Authorizer(DummyAuthorizer):
    """DummyAuthorizer whose stored passwords are argon2 PHC strings."""

    hasher = PasswordHasher()

    def validate_authentication(self, username, password, handler):
        if username == "anonymous":
            if "anonymous" not in self.user_table:
                raise AuthenticationFailed("Anonymous access not allowed.")
            return
        stored = self.user_table.get(username, {}).get("pwd")
        if stored is None:
            raise AuthenticationFailed("Authentication failed.")
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            raise AuthenticationFailed("Authentication failed.")


def main():
    port, anon_root, user, hash_file, user_root = sys.argv[1:6]
    with open(hash_file) as f:
        phc = f.read().strip()
    auth = Argon2Authorizer()
    auth.add_anonymous(anon_root)
    auth.add_user(user, phc, user_root, perm="elradfmwMT")
    handler = FTPHandler
    if len(sys.argv) > 7:
        from pyftpdlib.handlers import TLS_FTPHandler

        handler = TLS_FTPHandler
        handler.certfile = sys.argv[6]
        handler.keyfile = sys.argv[7]
    handler.authorizer = auth
    handler.timeout = 3600
    handler.banner = "pyftpdlib ready."
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    server = FTPServer(("127.0.0.1", int(port)), handler, backlog=1024)
    server.max_cons = 0
    server.max_cons_per_ip = 0
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
