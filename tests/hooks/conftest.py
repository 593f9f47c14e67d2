from tests.server.conftest import make_client

__all__ = ["make_client"]
