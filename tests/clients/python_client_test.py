"""The Python client (clients/python/mpbatch_client.py) against live `mpb serve`s.

Starts four servers on ipc:// endpoints in a temporary directory, each with
a config written here, and waits for each to say ready:

- echo: a passthrough pool (2 workers) with max_message_bytes 1 MiB;
- tree: an ensemble `models` of a passthrough `a`, a `fail` model `b`
  (items starting with "bad" get a ValueError) and a nested ensemble
  `inner` (errors: in_place) of a passthrough `p` and a `fail` model `f`;
- slow: a `sleep` model taking 0.5 s per item (batch_size 1), at most 4
  calls in flight per client;
- stopping: the same model, for a test that stops it while calls are in
  flight;
- curve: a passthrough pool behind CURVE on tcp://127.0.0.1 (keys from
  `mpb keygen`; only the client key in its clients folder gets in).

Every server is stopped at the end with SIGTERM; each must exit 0 and its
log (the workers' too) must hold no sanitizer report. Should this process
be killed (a ctest timeout), the servers get SIGTERM from the kernel.

Run by ctest as mpb.clients.python (MPB_BUILD_DIR, MPB_SOURCE_DIR set), or
by hand: MPB_BUILD_DIR=build /usr/bin/python3 tests/clients/python_client_test.py
"""

import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("MPB_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD_DIR = Path(os.environ.get("MPB_BUILD_DIR", SOURCE_DIR / "build"))
sys.path.insert(0, str(SOURCE_DIR / "clients" / "python"))

try:
    import msgpack
    import zmq

    from mpbatch_client import Client, ItemError, ItemTimeout, ProtocolError
except ImportError as e:
    sys.exit(
        f"{e}: the Python client needs Debian's python3-zmq and python3-msgpack "
        f"(scripts/install-deps installs them) and an interpreter that sees them "
        f"({sys.executable} does not; try /usr/bin/python3)"
    )

MPB = BUILD_DIR / "bin" / "mpb"
START_TIMEOUT_S = 30.0  # a sanitizer build starts its workers slowly
STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1
SANITIZER_MARKS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "runtime error:",
)

ECHO_CONFIG = """\
servlet:
  plugin: passthrough
  name: echo
  workers: 2
  batch_size: 64
serve:
  max_message_bytes: 1048576
"""

TREE_CONFIG = """\
servlet:
  kind: ensemble
  name: models
  members:
    - {plugin: passthrough, name: a}
    - {plugin: fail, name: b, options: {fail_prefix: bad}}
    - kind: ensemble
      name: inner
      errors: in_place
      members:
        - {plugin: passthrough, name: p}
        - {plugin: fail, name: f, options: {fail_prefix: bad}}
"""

SLOW_CONFIG = """\
servlet:
  plugin: sleep
  name: slow
  batch_size: 1
  options: {batch_cost_us: 500000, item_cost_us: 0}
serve:
  client_max_in_flight: 4
"""


def die_with_this_process():
    """In the child, before exec: SIGTERM when the test process dies."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Server:
    """One `mpb serve` subprocess with its config and log in a directory."""

    def __init__(self, name, config, directory, endpoint=None, client_keys=None):
        self.name = name
        self.endpoint = endpoint or f"ipc://{directory}/{name}.ipc"
        self.client_keys = client_keys or {}  # Client keyword arguments
        self.config_path = directory / f"{name}.yaml"
        self.config_path.write_text(config)
        self.log_path = directory / f"{name}.log"
        self.process = None
        self.exit_status = None

    def start(self):
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [MPB, "serve", "--config", self.config_path, "--bind", self.endpoint],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_this_process,
            )

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, deadline):
        """Asks for health until the server says ready; returns the health."""
        with Client(self.endpoint, timeout=1.0, **self.client_keys) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"mpb serve ({self.name}) exited with {self.process.returncode} "
                        f"before it was ready:\n{self.log()}"
                    )
                try:
                    health = client.health(timeout=0.25)
                    if health["ready"]:
                        return health
                except TimeoutError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mpb serve ({self.name}) not ready in time:\n{self.log()}")
                time.sleep(0.05)

    def signal_stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self):
        """Waits for the exit after SIGTERM (killing it past the timeout)."""
        if self.process is None:
            return None
        try:
            self.exit_status = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.exit_status = f"killed: no exit {STOP_TIMEOUT_S:.0f} s after SIGTERM"
        return self.exit_status


SERVERS = {}
TEMP_DIR = None


def free_tcp_endpoint():
    with zmq.Context() as context, context.socket(zmq.ROUTER) as probe:
        port = probe.bind_to_random_port("tcp://127.0.0.1")
    return f"tcp://127.0.0.1:{port}"


def curve_server(directory):
    """A passthrough server behind CURVE; keys made with `mpb keygen`."""
    (directory / "clients").mkdir()
    for name in ("server", "client", "stranger"):
        subprocess.run([MPB, "keygen", directory / name], check=True, stdout=subprocess.DEVNULL)
    shutil.copy(directory / "client.pub", directory / "clients")
    config = (
        "servlet: {plugin: passthrough, name: locked}\n"
        f"curve: {{secret: {directory}/server.key, clients: {directory}/clients}}\n"
    )
    keys = {"curve_server_key": directory / "server.pub", "curve_key": directory / "client.key"}
    return Server("curve", config, directory, endpoint=free_tcp_endpoint(), client_keys=keys)


def setUpModule():
    global TEMP_DIR
    if not MPB.exists():
        raise RuntimeError(f"{MPB} is missing: build first (cmake --build build)")
    # ipc paths are limited to about 100 bytes: keep the directory short.
    TEMP_DIR = Path(tempfile.mkdtemp(prefix="mpb-py-", dir="/tmp"))
    for name, config in (
        ("echo", ECHO_CONFIG),
        ("tree", TREE_CONFIG),
        ("slow", SLOW_CONFIG),
        ("stopping", SLOW_CONFIG),
    ):
        SERVERS[name] = Server(name, config, TEMP_DIR)
    SERVERS["curve"] = curve_server(TEMP_DIR)
    try:
        for server in SERVERS.values():  # start together: their workers start in parallel
            server.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        for server in SERVERS.values():
            server.wait_ready(deadline)
    except BaseException:
        stop_servers()
        raise


def stop_servers():
    for server in SERVERS.values():
        server.signal_stop()
    for server in SERVERS.values():
        server.wait_stopped()


def tearDownModule():
    stop_servers()
    problems = []
    for server in SERVERS.values():
        log = server.log()
        found = []
        if server.exit_status != 0:
            found.append(f"{server.name}: exit status {server.exit_status} after SIGTERM")
        if any(mark in log for mark in SANITIZER_MARKS):
            found.append(f"{server.name}: sanitizer report in its log")
        if found:
            problems += found + [f"--- {server.name} log ({server.log_path}) ---\n{log}"]
    if not problems:
        shutil.rmtree(TEMP_DIR, ignore_errors=True)
    else:
        raise AssertionError("\n".join(problems))


class ServerTestCase(unittest.TestCase):
    server_name = None

    def setUp(self):
        self.server = SERVERS[self.server_name]
        self.client = Client(self.server.endpoint, timeout=10.0, **self.server.client_keys)
        self.addCleanup(self.client.close)


class EchoTest(ServerTestCase):
    server_name = "echo"

    def test_call_returns_the_echoed_bytes(self):
        self.assertEqual(self.client.call(b"hello"), b"hello")
        self.assertEqual(self.client.call(b""), b"")
        self.assertEqual(self.client.call(bytes(range(256))), bytes(range(256)))

    def test_str_is_sent_as_utf8_and_bytes_as_they_are(self):
        self.assertEqual(self.client.call("héllo"), "héllo".encode("utf-8"))
        self.assertEqual(self.client.call(b"h\xe9llo"), b"h\xe9llo")
        self.assertEqual(self.client.call(bytearray(b"abc")), b"abc")
        with self.assertRaises(TypeError):
            self.client.call(42)

    def test_map_returns_20000_items_in_order(self):
        items = [b"item-%d" % i for i in range(20000)]
        started = time.monotonic()
        results = list(self.client.map(items))
        elapsed = time.monotonic() - started
        self.assertEqual(len(results), len(items))
        self.assertEqual(results, items)  # in order, none lost, none duplicated
        self.assertLess(elapsed, 20.0)

    def test_map_reads_a_lazy_endless_iterator_within_its_window(self):
        window = 32
        pulled = 0

        def numbers():
            nonlocal pulled
            for i in itertools.count():
                pulled += 1
                yield str(i)

        results = self.client.map(numbers(), window=window, batch=8)
        for i, value in enumerate(itertools.islice(results, 3000)):
            self.assertEqual(value, str(i).encode())
            # in flight: pulled but not yet yielded (this one is yielded)
            self.assertLessEqual(pulled - (i + 1), window)
        results.close()  # abandons the calls in flight
        self.assertLess(pulled, 3000 + window + 1)
        # their late replies are dropped, not taken for later calls
        self.assertEqual(self.client.call(b"after"), b"after")
        self.assertEqual(list(self.client.map([b"x", b"y"])), [b"x", b"y"])

    def test_map_with_window_one_and_empty_input(self):
        items = [b"%d" % i for i in range(50)]
        self.assertEqual(list(self.client.map(items, window=1, batch=1)), items)
        self.assertEqual(list(self.client.map([])), [])
        with self.assertRaises(ValueError):
            self.client.map(items, window=0)

    def test_calls_between_the_results_of_a_map(self):
        items = [b"m%d" % i for i in range(500)]
        out = []
        for i, value in enumerate(self.client.map(items, window=64)):
            out.append(value)
            if i % 100 == 0:
                self.assertEqual(self.client.call(b"c%d" % i), b"c%d" % i)
        self.assertEqual(out, items)

    def test_health_says_ready_with_two_workers(self):
        health = self.client.health()
        self.assertEqual(
            {k: health[k] for k in ("live", "ready", "workers", "version")},
            {"live": True, "ready": True, "workers": 2, "version": 1},
        )
        self.assertGreater(health["capacity"], 0)
        self.assertGreaterEqual(health["in_flight"], 0)

    def test_info_lists_the_tree(self):
        self.assertEqual(self.client.info(), [("echo", "pool")])

    def test_message_over_max_message_bytes_raises_protocol_error(self):
        with self.assertRaises(ProtocolError) as caught:
            self.client.call(b"x" * (1536 * 1024))
        self.assertEqual(caught.exception.code, -4011)  # MPB_ELIMIT
        self.assertIn("max_message_bytes", str(caught.exception))
        self.assertEqual(self.client.call(b"still here"), b"still here")

    def test_clients_may_share_a_context(self):
        context = zmq.Context()
        try:
            with Client(self.server.endpoint, context=context) as one, Client(
                self.server.endpoint, context=context
            ) as two:
                self.assertEqual(one.call(b"1"), b"1")
                self.assertEqual(two.call(b"2"), b"2")
            self.assertFalse(context.closed)
        finally:
            context.term()

    def test_a_closed_client_says_so(self):
        client = Client(self.server.endpoint)
        client.close()
        client.close()  # idempotent
        self.assertTrue(client.closed)
        with self.assertRaisesRegex(ValueError, "closed"):
            client.call(b"x")

    def test_garbage_gets_an_error_frame_and_the_server_keeps_serving(self):
        context = zmq.Context()
        raw = context.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        try:
            raw.connect(self.server.endpoint)
            for garbage in (
                b"\xc1 not msgpack",
                msgpack.packb({"not": "an array"}),
                msgpack.packb([1, "calls are not a list"]),
                msgpack.packb([99, 7]),
            ):
                raw.send(garbage)
                self.assertTrue(raw.poll(5000), f"no answer to {garbage!r}")
                reply = msgpack.unpackb(raw.recv(), raw=False)
                self.assertEqual(reply[0], 8, reply)  # ERROR
                self.assertEqual(reply[2], -4001, reply)  # MPB_EPROTO
                self.assertIsInstance(reply[3], str)
            self.assertEqual(reply[1], 7)  # the unknown request's id is echoed
        finally:
            raw.close()
            context.term()
        self.assertEqual(self.client.call(b"fine"), b"fine")
        self.assertTrue(self.client.health()["ready"])


class CurveTest(ServerTestCase):
    server_name = "curve"

    def test_the_known_key_is_served(self):
        self.assertEqual(self.client.call(b"locked"), b"locked")
        self.assertEqual(list(self.client.map([b"a", b"b"])), [b"a", b"b"])

    def test_a_stranger_or_no_key_gets_no_answer(self):
        stranger = {
            "curve_server_key": TEMP_DIR / "server.pub",
            "curve_key": TEMP_DIR / "stranger.key",
        }
        for keys in (stranger, {}):
            with Client(self.server.endpoint, timeout=0.5, **keys) as client:
                with self.assertRaises(TimeoutError):
                    client.call(b"let me in")

    def test_a_public_file_is_not_a_key(self):
        with self.assertRaises(ValueError):
            Client(
                self.server.endpoint,
                curve_server_key=TEMP_DIR / "server.pub",
                curve_key=TEMP_DIR / "client.pub",
            )


class NoServerTest(unittest.TestCase):
    def test_a_server_that_is_not_there_times_out(self):
        with Client(f"ipc://{TEMP_DIR}/nobody.ipc", timeout=0.2) as client:
            started = time.monotonic()
            with self.assertRaises(TimeoutError) as caught:
                client.health(timeout=0.2)
            self.assertNotIsInstance(caught.exception, ItemError)
            with self.assertRaises(TimeoutError):
                client.call(b"x")
            with self.assertRaises(TimeoutError):
                list(client.map([b"x"]))
            self.assertLess(time.monotonic() - started, 5.0)


class TreeTest(ServerTestCase):
    server_name = "tree"

    def test_an_ensemble_result_is_a_list_of_members(self):
        self.assertEqual(self.client.call(b"x"), [b"x", b"x", [b"x", b"x"]])

    def test_an_item_error_raises_item_error(self):
        with self.assertRaises(ItemError) as caught:
            self.client.call(b"bad apple")
        error = caught.exception
        self.assertEqual(error.type, "ValueError")
        self.assertEqual(error.servlet, "models/b")
        self.assertTrue(error.worker.startswith("b-"), error.worker)
        self.assertGreater(error.pid, 0)
        self.assertIn("bad apple", error.message)
        self.assertIn("ValueError", str(error))
        self.assertIn("models/b", str(error))

    def test_an_error_message_cut_inside_a_character_is_read(self):
        # the fail model quotes an item's first 32 bytes: here the cut falls
        # inside an "é"; the rest of the frame must still be read
        item = ("bad" + "\u00e9" * 20).encode("utf-8")
        results = list(
            self.client.map([item, b"fine"], return_exceptions=True, target="models/b")
        )
        self.assertIsInstance(results[0], ItemError)
        self.assertTrue(results[0].message.endswith("\ufffd'"), results[0].message)
        self.assertEqual(results[1], b"fine")

    def test_errors_in_place_are_item_error_members(self):
        value = self.client.call(b"bad pear", target="models/inner")
        self.assertEqual(len(value), 2)
        self.assertEqual(value[0], b"bad pear")
        self.assertIsInstance(value[1], ItemError)
        self.assertEqual(value[1].type, "ValueError")
        self.assertEqual(value[1].servlet, "models/inner/f")
        self.assertGreater(value[1].pid, 0)

    def test_target_calls_one_member(self):
        self.assertEqual(self.client.call(b"x", target="models/a"), b"x")
        self.assertEqual(self.client.call(b"y", target="models/inner/p"), b"y")
        self.assertEqual(self.client.call(b"z", target="models"), [b"z", b"z", [b"z", b"z"]])

    def test_an_unknown_target_raises_unknown_servlet(self):
        with self.assertRaises(ItemError) as caught:
            self.client.call(b"x", target="models/nope")
        self.assertEqual(caught.exception.type, "UnknownServlet")
        self.assertIn("models/nope", caught.exception.message)

    def test_map_with_return_exceptions_yields_errors_in_place(self):
        items = [b"bad %d" % i if i % 7 == 3 else b"ok %d" % i for i in range(1000)]
        results = list(self.client.map(items, target="models/b", return_exceptions=True))
        self.assertEqual(len(results), len(items))
        for item, result in zip(items, results):
            if item.startswith(b"bad"):
                self.assertIsInstance(result, ItemError)
                self.assertEqual(result.type, "ValueError")
                self.assertIn(item.decode(), result.message)
            else:
                self.assertEqual(result, item)

    def test_map_raises_the_first_error_after_every_earlier_result(self):
        def items():
            for i in itertools.count():
                yield b"bad %d" % i if i in (300, 301, 500) else b"ok %d" % i

        seen = []
        with self.assertRaises(ItemError) as caught:
            for value in self.client.map(items(), target="models/b", window=64):
                seen.append(value)
        self.assertEqual(seen, [b"ok %d" % i for i in range(300)])
        self.assertIn("bad 300", caught.exception.message)
        # the calls abandoned in flight do not disturb the next ones
        self.assertEqual(self.client.call(b"next", target="models/a"), b"next")

    def test_health_counts_every_worker_of_the_tree(self):
        health = self.client.health()
        self.assertTrue(health["ready"])
        self.assertEqual(health["workers"], 4)

    def test_info_lists_every_servlet_depth_first(self):
        self.assertEqual(
            self.client.info(),
            [
                ("models", "ensemble"),
                ("models/a", "pool"),
                ("models/b", "pool"),
                ("models/inner", "ensemble"),
                ("models/inner/p", "pool"),
                ("models/inner/f", "pool"),
            ],
        )


class SlowTest(ServerTestCase):
    server_name = "slow"

    def test_a_short_timeout_gets_the_servers_timeout_answer(self):
        started = time.monotonic()
        with self.assertRaises(TimeoutError) as caught:
            self.client.call(b"x", timeout=0.2)
        elapsed = time.monotonic() - started
        # the deadline travels with the call: the server answers Timeout
        self.assertIsInstance(caught.exception, ItemTimeout)
        self.assertIsInstance(caught.exception, ItemError)
        self.assertEqual(caught.exception.type, "Timeout")
        self.assertEqual(caught.exception.servlet, "slow")
        self.assertGreaterEqual(elapsed, 0.19)
        self.assertLess(elapsed, 2.0)

    def test_map_gives_up_on_a_server_that_stops_answering(self):
        started = time.monotonic()
        with self.assertRaises(TimeoutError) as caught:
            list(self.client.map([b"a", b"b", b"c"], window=2, timeout=0.2))
        self.assertNotIsInstance(caught.exception, ItemError)  # the client gave up
        self.assertLess(time.monotonic() - started, 2.0)

    def test_map_item_timeout_yields_timeouts_in_place(self):
        results = list(
            self.client.map([b"a", b"b"], item_timeout=0.1, return_exceptions=True, timeout=5.0)
        )
        self.assertEqual([type(r) for r in results], [ItemTimeout, ItemTimeout])
        self.assertEqual([r.type for r in results], ["Timeout", "Timeout"])

    def test_calls_over_client_max_in_flight_are_overloaded(self):
        results = list(
            self.client.map(
                [b"%d" % i for i in range(6)], window=6, item_timeout=0.3, return_exceptions=True
            )
        )
        # four calls are taken (and time out in the busy worker), two refused
        self.assertEqual([r.type for r in results[:4]], ["Timeout"] * 4)
        self.assertEqual([r.type for r in results[4:]], ["Overloaded"] * 2)
        self.assertIn("client_max_in_flight", results[4].message)


class StoppingTest(ServerTestCase):
    server_name = "stopping"

    def test_sigterm_answers_calls_in_flight_and_refuses_new_ones(self):
        items = [b"x%d" % i for i in range(3)]
        results = self.client.map(items, window=3)
        self.assertEqual(next(results), b"x0")  # the other two are in flight
        self.server.signal_stop()
        deadline = time.monotonic() + 5.0
        while self.client.health()["ready"]:
            self.assertLess(time.monotonic(), deadline, "still ready after SIGTERM")
            time.sleep(0.01)
        with self.assertRaises(ItemError) as caught:
            self.client.call(b"too late")
        self.assertEqual(caught.exception.type, "Unavailable")
        self.assertEqual(list(results), [b"x1", b"x2"])
        self.assertEqual(self.server.wait_stopped(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
