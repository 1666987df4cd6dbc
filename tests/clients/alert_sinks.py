#!/usr/bin/python3
"""A real SMTP server (aiosmtpd, with AUTH) and an HTTP server on loopback that
record what they receive, one JSON object per line, for the alert tests.

usage: alert_sinks.py SMTP_PORT HTTP_PORT OUTPUT_FILE [CERT_PEM KEY_PEM]
Prints "ready" once both listen. HTTP answers 500 to paths starting with
/fail, so tests can see retries. With a certificate and key, the SMTP server
requires STARTTLS before anything else (and before AUTH).
"""
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

smtp_port, http_port, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()


def record(obj):
    with lock, open(out_path, "a") as f:
        f.write(json.dumps(obj) + "\n")


class Mail:
    async def handle_DATA(self, server, session, envelope):
        record({"sink": "smtp", "from": envelope.mail_from, "to": envelope.rcpt_tos,
                "auth": session.authenticated, "data": envelope.content.decode("utf-8", "replace")})
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"coffer" and auth_data.password == b"s3cret"
    return AuthResult(success=ok)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8", "replace")
        record({"sink": "http", "path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(500 if self.path.startswith("/fail") else 200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


tls = {}
if len(sys.argv) > 5:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[4], sys.argv[5])
    tls = {"tls_context": context, "require_starttls": True}
controller = Controller(Mail(), hostname="127.0.0.1", port=smtp_port, authenticator=authenticator,
                        auth_require_tls=bool(tls), auth_required=False, **tls)
controller.start()
http = ThreadingHTTPServer(("127.0.0.1", http_port), Hook)
print("ready", flush=True)
http.serve_forever()
