#!/usr/bin/python3
"""A time-stamping authority for the tests, which signfs did not write:
OpenSSL's `openssl ts -reply` behind http.server. What it does with each
request is read from DIR/mode at that moment:

  ok         answer with a fresh token
  untrusted  answer with a token from a TSA under another CA
  wrongeku   answer with a fresh token re-signed (openssl cms, with the
             ESS signingCertificateV2 attribute) by a certificate under the
             trusted CA whose extended key usage is codeSigning, not
             timeStamping
  replay     answer with the previous reply (wrong nonce and imprint)
  error      HTTP 500
  slow       wait 5 s, then answer
  hangup     close the connection without an answer

Usage: tsa_server.py DIR [keepalive]; writes the port it listens on to
DIR/port. With keepalive it speaks HTTP/1.1 and keeps connections open, as
most TSAs do."""
import http.server
import os
import socketserver
import subprocess
import sys
import tempfile
import time

DIR = sys.argv[1]
last = {"reply": None}


def der_sequence(body):
    n = len(body)
    length = bytes([n]) if n < 128 else bytes([0x82, n >> 8, n & 0xff])
    return b"\x30" + length + body


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def resign(reply, tmp):
    """The reply's TSTInfo in a token signed by the wrong-EKU certificate."""
    r, tok, tst, bad = (os.path.join(tmp, n) for n in ("r2", "tok", "tst", "bad"))
    open(r, "wb").write(reply)
    openssl("ts", "-reply", "-in", r, "-token_out", "-out", tok)
    openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", tok, "-binary", "-out", tst)
    openssl("cms", "-sign", "-binary", "-nodetach", "-cades", "-md", "sha256", "-nosmimecap",
            "-econtent_type", "id-smime-ct-TSTInfo", "-in", tst,
            "-signer", os.path.join(DIR, "wrongeku.pem"), "-inkey", os.path.join(DIR, "wrongeku.key"),
            "-outform", "DER", "-out", bad)
    return der_sequence(b"\x30\x03\x02\x01\x00" + open(bad, "rb").read())


class TSA(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        query = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(os.path.join(DIR, "requests"), "a") as f:
            f.write(self.headers.get("Content-Type", "") + "\n")
        mode = open(os.path.join(DIR, "mode")).read().strip()
        if mode == "hangup":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if mode == "error":
            self.send_error(500, "the TSA is broken")
            return
        if mode == "slow":
            time.sleep(5)
        if mode == "replay" and last["reply"]:
            reply = last["reply"]
        else:
            conf = "other.cnf" if mode == "untrusted" else "tsa.cnf"
            with tempfile.TemporaryDirectory() as tmp:
                q, r = os.path.join(tmp, "q"), os.path.join(tmp, "r")
                open(q, "wb").write(query)
                subprocess.run(["openssl", "ts", "-reply", "-config", os.path.join(DIR, conf),
                                "-queryfile", q, "-out", r], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                reply = open(r, "rb").read()
                if mode == "wrongeku":
                    reply = resign(reply, tmp)
            last["reply"] = reply
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


if sys.argv[2:] == ["keepalive"]:
    TSA.protocol_version = "HTTP/1.1"
server = Server(("127.0.0.1", 0), TSA)
open(os.path.join(DIR, "port"), "w").write(str(server.server_address[1]))
server.serve_forever()
