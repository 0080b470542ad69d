"""A swergio 0.0.2 component, unchanged but for its port: docs/swergio-compat.md.
Run `swergio-al serve --swergio-port 8081` first."""

import os

from swergio.client import Client, Trigger
from swergio.messageType import MESSAGE_TYPE

PORT = int(os.environ.get("SWERGIO_PORT", "8081"))


def double(message):
    return {"DATA": message["DATA"] * 2}


client = Client("legacy_model", "127.0.0.1", PORT)   # sends REGISTER and joins _command
client.add_eventHandler(double, MESSAGE_TYPE.DATA.GRADIENT, responseRooms="training",
                        trigger=Trigger(MESSAGE_TYPE.DATA.FORWARD, "training"))
client.listen()   # blocks; a swergio_al Component in "training" sends DATA/FORWARD here
