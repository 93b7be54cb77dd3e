#!/usr/bin/env python3
"""A real SMTP server for the tests (aiosmtpd): stores every accepted message as a JSON file.

Usage: smtp_sink.py --port N --dir DIR [--mode plain|starttls|tls --cert C --key K]
                    [--user U --password P] [--reject CODE]

Each message becomes DIR/<n>.json with the envelope, the decoded headers and the decoded text
body, written atomically (temporary file, then rename). Prints READY when listening.
"""
import argparse
import email
import email.policy
import json
import os
import signal
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory, reject):
        self.directory = directory
        self.reject = reject
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, conn, envelope):
        if self.reject:
            return f"{self.reject} Mailbox unavailable (test rejection)"
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "authenticated": bool(conn.authenticated),
            # STARTTLS sets conn.ssl; implicit TLS shows in the transport.
            "tls": conn.ssl is not None or (
                server.transport is not None
                and server.transport.get_extra_info("sslcontext") is not None),
            "headers": {k: str(v) for k, v in msg.items()},
            "body": body.get_content() if body is not None else "",
        }
        with self.lock:
            self.count += 1
            n = self.count
        name = f"{time.time_ns()}-{n:04d}.json"
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 OK stored"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", default="plain", choices=["plain", "starttls", "tls"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--reject")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)

    kwargs = {}
    ctx = None
    if a.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
    if a.mode == "starttls":
        kwargs["tls_context"] = ctx
        kwargs["require_starttls"] = True
    if a.user:
        def authenticator(server, conn, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == a.user
                  and auth_data.password.decode() == a.password)
            return AuthResult(success=ok)
        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        # With implicit TLS aiosmtpd does not know the connection is encrypted; it is.
        kwargs["auth_require_tls"] = a.mode == "starttls"
    controller = Controller(Sink(a.dir, a.reject), hostname="127.0.0.1", port=a.port,
                            ssl_context=ctx if a.mode == "tls" else None, **kwargs)
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    sys.exit(main())
