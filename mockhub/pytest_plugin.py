"""The pytest plugin (entry point `pytest11`). The `mockhub` fixture lands with the client issue."""
