"""swergio_al: WebSocket rooms for ML components, with people in the loop."""

__version__ = "0.1.0"
