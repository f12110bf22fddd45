"""The Python client against a server that misbehaves.

A scripted ROUTER socket on a thread plays the server: it answers with
texts that are not UTF-8, late malformed replies, an endless flood of stale
results, results nested past any ensemble, and malformed HEALTH replies.
Each call must end with its own answer or a clear error in time, and a
reply meant for nobody must fail no other call.

Run by ctest as mpb.clients.python_faults, or by hand:
/usr/bin/python3 tests/clients/python_client_faults_test.py
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("MPB_SOURCE_DIR", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_DIR / "clients" / "python"))

try:
    import msgpack
    import zmq

    from mpbatch_client import Client, ItemError, ProtocolError
except ImportError as e:
    sys.exit(f"{e}: needs Debian's python3-zmq and python3-msgpack (scripts/install-deps)")

CALL, RESULTS, HEALTH, HEALTH_REPLY = 1, 2, 3, 4


class ScriptedServer:
    """A ROUTER on an ipc endpoint; ``on_frame(server, identity, message)``
    answers each frame, ``on_tick(server)`` runs between polls."""

    def __init__(self, on_frame, on_tick=None):
        self.on_frame = on_frame
        self.on_tick = on_tick
        self.identity = None
        self.directory = tempfile.TemporaryDirectory(prefix="mpb-pyfaults-")
        self.endpoint = f"ipc://{self.directory.name}/server.ipc"
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(self.endpoint)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            if self.socket.poll(5):
                identity, frame = self.socket.recv_multipart()
                self.identity = identity
                self.on_frame(self, identity, msgpack.unpackb(frame, raw=False))
            if self.on_tick is not None and self.identity is not None:
                self.on_tick(self)

    def send(self, identity, frame_bytes):
        self.socket.send_multipart([identity, frame_bytes])

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.socket.close()
        self.context.term()
        self.directory.cleanup()


def call_ids(message):
    assert message[0] == CALL
    return [entry[0] for entry in message[1]]


class FaultTestCase(unittest.TestCase):
    def serve(self, on_frame, on_tick=None):
        server = ScriptedServer(on_frame, on_tick)
        self.addCleanup(server.stop)
        client = Client(server.endpoint, timeout=5.0)
        self.addCleanup(client.close)
        return server, client


class TextTest(FaultTestCase):
    def test_an_error_text_cut_inside_a_character_is_read(self):
        # use_bin_type=False packs bytes as msgpack str: here, not UTF-8
        def on_frame(server, identity, message):
            call_ids(message)
            entries = [
                [entry[0], 1, b"ValueError", b"rejected 'bad\xc3", b"models/b", b"b-0", 7]
                if entry[1] == b"bad"
                else [entry[0], 0, b"fine"]
                for entry in message[1]
            ]
            server.send(identity, msgpack.packb([RESULTS, entries], use_bin_type=False))

        server, client = self.serve(on_frame)
        results = list(client.map([b"bad", b"good"], return_exceptions=True, window=2, batch=2))
        self.assertEqual(len(results), 2)
        self.assertIsInstance(results[0], ItemError)
        self.assertEqual(results[0].type, "ValueError")
        self.assertEqual(results[0].message, "rejected 'bad\ufffd")
        self.assertEqual(results[1], b"fine")


class StaleTest(FaultTestCase):
    def test_a_late_malformed_reply_fails_no_other_call(self):
        seen = []

        def on_frame(server, identity, message):
            ids = call_ids(message)
            seen.extend(ids)
            if len(seen) == 1:
                return  # the first call never gets its answer
            if len(seen) == 2:
                # late garbage for the first call, before the second's answer
                server.send(identity, msgpack.packb([RESULTS, [[seen[0], None]]]))
                server.send(identity, b"\xc1")
            server.send(identity, msgpack.packb([RESULTS, [[ids[0], 0, message[1][0][1]]]]))

        server, client = self.serve(on_frame)
        with self.assertRaises(TimeoutError):
            client.call(b"first", timeout=0.3)
        self.assertEqual(client.call(b"second"), b"second")
        self.assertEqual(client.call(b"third"), b"third")

    def test_unreadable_replies_are_told_when_a_wait_times_out(self):
        def on_frame(server, identity, message):
            server.send(identity, b"\xc1")

        server, client = self.serve(on_frame)
        with self.assertRaises(TimeoutError) as caught:
            client.call(b"x", timeout=0.3)
        self.assertIn("unreadable", str(caught.exception))

    def test_a_flood_of_stale_results_does_not_hold_a_call_past_its_timeout(self):
        # the flood comes from another process, so it outruns the client
        directory = tempfile.TemporaryDirectory(prefix="mpb-pyfaults-")
        self.addCleanup(directory.cleanup)
        endpoint = f"ipc://{directory.name}/flood.ipc"
        flooder = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, endpoint, "4"])
        self.addCleanup(flooder.wait)
        self.addCleanup(flooder.kill)
        client = Client(endpoint, timeout=5.0)
        self.addCleanup(client.close)
        self.assertEqual(client.call(b"hello"), b"hello")  # the flooder is up
        start = time.monotonic()
        with self.assertRaises(TimeoutError):
            client.call(b"x", timeout=0.5)
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.5)
        self.assertLess(elapsed, 2.5)  # not as long as the flood lasts (4 s)


# argv: endpoint, seconds. Answers the first call, ignores the others, and
# sends stale results (ids nobody waits for) as fast as it can meanwhile.
FLOOD_SCRIPT = """
import sys, time, msgpack, zmq
context = zmq.Context()
socket = context.socket(zmq.ROUTER)
socket.setsockopt(zmq.LINGER, 0)
socket.setsockopt(zmq.SNDHWM, 0)
socket.bind(sys.argv[1])
identity, frame = socket.recv_multipart()
call = msgpack.unpackb(frame)
socket.send_multipart([identity, msgpack.packb([2, [[call[1][0][0], 0, call[1][0][1]]]])])
stale = msgpack.packb([2, [[10**9 + i, 0, b"v"] for i in range(2000)]])
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    socket.send_multipart([identity, stale])
"""


class ShapeTest(FaultTestCase):
    def test_a_result_nested_past_any_ensemble_is_a_protocol_error(self):
        value = b"v"
        for _ in range(100):  # ensembles nest at most 32 deep
            value = [value]

        def on_frame(server, identity, message):
            ids = call_ids(message)
            reply = value if len(ids) and ids[0] == 1 else b"next"
            server.send(identity, msgpack.packb([RESULTS, [[ids[0], 0, reply]]]))

        server, client = self.serve(on_frame)
        with self.assertRaises(ProtocolError) as caught:
            client.call(b"deep")
        self.assertIn("nested", str(caught.exception))
        self.assertEqual(client.call(b"next"), b"next")

    def test_a_malformed_health_reply_is_a_protocol_error_at_once(self):
        def on_frame(server, identity, message):
            self.assertEqual(message[0], HEALTH)
            server.send(identity, msgpack.packb([HEALTH_REPLY, message[1], True]))

        server, client = self.serve(on_frame)
        start = time.monotonic()
        with self.assertRaises(ProtocolError):
            client.health(timeout=5.0)
        self.assertLess(time.monotonic() - start, 2.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
