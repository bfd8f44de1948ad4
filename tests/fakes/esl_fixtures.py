"""Fixtures for the Event Socket tests: a fake FreeSWITCH on a free port and clients for it."""

import gevent
import pytest

from fsctl.freeswitch.esl import EventSocket
from tests.fakes.fake_freeswitch import FakeFreeSWITCH


@pytest.fixture
def fake_fs():
    """A started FakeFreeSWITCH on 127.0.0.1 (free port), stopped after the test."""
    fake = FakeFreeSWITCH().start()
    try:
        yield fake
    finally:
        fake.stop()
    assert not fake.errors, fake.errors


@pytest.fixture
def make_esl(fake_fs):
    """Factory for EventSocket clients of the fake (small timeouts); closed after the test."""
    clients = []

    def make(**kwargs):
        kwargs.setdefault("timeout", 0.5)
        kwargs.setdefault("backoff", (0.02, 0.1))
        client = EventSocket(fake_fs.host, fake_fs.port, kwargs.pop("password", "ClueCon"), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def esl(make_esl):
    """A connected EventSocket (default events) on the fake."""
    client = make_esl()
    client.connect()
    return client


@pytest.fixture
def hang_guard():
    """Fail a test that blocks the main greenlet for more than 15 s instead of hanging the run."""
    guard = gevent.Timeout(15, AssertionError("test blocked for 15 s: something waits without a timeout"))
    guard.start()
    try:
        yield
    finally:
        guard.close()
