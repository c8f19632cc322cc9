"""A real SMTP server (aiosmtpd) that keeps what it receives, for faultline's mail tests.

    python smtp_sink.py PORT OUTFILE

Listens on 127.0.0.1:PORT without TLS or authentication and appends one JSON line per message
to OUTFILE: the envelope sender, the recipients and the message text. Prints "ready" once it
listens, and runs until it is killed.
"""

import json
import sys
import time

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
            }) + "\n")
        return "250 OK"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Keep(path), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
