"""mis.broker: after one failed publish the process skips the broker for a while (an upload's
commit with several jobs pays the connection timeout once); the sweeper's forced send tries."""

from kombu.exceptions import OperationalError

from mis import broker


class Unreachable:
    """A task whose publish fails the way kombu fails against a refused port."""

    def __init__(self):
        self.tries = 0

    def apply_async(self, args, retry):
        assert retry is False
        self.tries += 1
        raise OperationalError("Error 111 connecting. Connection refused.")


class Reachable:
    def __init__(self):
        self.sent = []

    def apply_async(self, args, retry):
        self.sent.append(args)


def test_a_failed_publish_makes_the_next_ones_skip_the_broker(settings):
    settings.CELERY_BROKER_DOWN_SECONDS = 60
    down, up = Unreachable(), Reachable()
    assert broker.send_quietly(down, [1], what="first") is False
    assert broker.send_quietly(down, [2], what="second") is False
    assert down.tries == 1  # the second did not try
    assert broker.send_quietly(up, [3], what="skipped") is False and up.sent == []
    assert broker.send_quietly(up, [4], what="forced", force=True) is True
    assert up.sent == [[4]]
    assert broker.send_quietly(up, [5], what="after recovery") is True  # back to normal


def test_the_skip_ends_after_its_time(settings):
    settings.CELERY_BROKER_DOWN_SECONDS = 0
    down, up = Unreachable(), Reachable()
    broker.send_quietly(down, [1], what="first")
    assert broker.send_quietly(up, [2], what="second") is True
