"""The room relay: Hub, brokers and the WebSocket / swergio-TCP endpoints."""

from swergio_al.relay.broker import Broker, Envelope, MemoryBroker, create_broker
from swergio_al.relay.connection import Connection
from swergio_al.relay.hub import Hub, RoomService

__all__ = ["Broker", "Connection", "Envelope", "Hub", "MemoryBroker", "RoomService",
           "create_broker"]
