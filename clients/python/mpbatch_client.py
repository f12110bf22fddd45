"""A Python client of ``mpb serve`` (the client protocol of docs/protocol.md).

It speaks ZeroMQ (a DEALER socket) and msgpack, using Debian's python3-zmq
and python3-msgpack and nothing else, and mirrors the C client
(include/mpbatch/client.h): single calls, a pipelined ``map`` that keeps
many calls in flight and yields results in input order, health and info.

Usage::

    import sys
    sys.path.insert(0, "clients/python")
    from mpbatch_client import Client, ItemError

    with Client("tcp://127.0.0.1:5555") as client:
        print(client.health())                 # {'live': True, 'ready': True, ...}
        print(client.call(b"hello"))           # b'hello' (a passthrough model)
        try:
            client.call("bad item", timeout=2.0)
        except ItemError as e:                 # the model failed this item
            print(e.type, e.servlet, e.message)
        with open("items.txt", "rb") as f:
            lines = (line.rstrip(b"\\n") for line in f)
            for value in client.map(lines, return_exceptions=True):
                print(value)

Results: ``bytes`` for a value; for an ensemble, a list with one member per
model, each ``bytes``, a nested list (a nested ensemble) or an ``ItemError``
instance (a member's error kept in place with ``errors: in_place``).

Errors:

- ``ItemError``: the server answered the call with an error (the model
  failed the item, ``UnknownServlet``, ``Overloaded``, ``Unavailable``,
  ``Protocol``...). ``ItemTimeout`` is the ``ItemError`` of type ``Timeout``
  that the server sends when a call's deadline passes; it is also a
  ``TimeoutError``.
- ``TimeoutError``: no reply came in time (the server is gone, or slow).
- ``ProtocolError``: the server could not use a frame this client sent (an
  ERROR frame, e.g. a message over its ``max_message_bytes``) or sent a
  reply to this call that this client cannot read. A reply that names no
  waiting call (it may answer one given up on) fails no other call; a
  ``TimeoutError`` message counts such replies.

Threading: a Client owns one ZeroMQ socket and is not thread-safe; use one
client per thread (they may share a ``zmq.Context``). Do not use a client
across ``fork()``.
"""

import collections
import itertools
import math
import time

import msgpack
import zmq

__all__ = [
    "Client",
    "ItemError",
    "ItemTimeout",
    "ProtocolError",
    "PROTOCOL_VERSION",
]

PROTOCOL_VERSION = 1

# Frame types of the client protocol.
CALL = 1
RESULTS = 2
HEALTH = 3
HEALTH_REPLY = 4
INFO = 5
INFO_REPLY = 6
ERROR = 8

DEFAULT_WINDOW = 256
DEFAULT_BATCH = 64

_MAX_POLL_MS = 1 << 30  # zmq_poll takes a C long; longer waits poll again
_PUMP_CHECK_EVERY = 64  # messages filed between looks at the clock

_PENDING = object()  # a reply that is wanted and has not come yet


class ItemError(Exception):
    """The server answered one call with an error.

    Attributes: ``type`` (``ValueError``, ``Timeout``, ``UnknownServlet``,
    ``Overloaded``, ``Unavailable``, ``WorkerCrashed``, ``Protocol``...),
    ``message``, ``servlet`` (the servlet path that produced it, ``""`` when
    the server's front end did), ``worker`` and ``pid`` (the worker process
    that produced it; ``""`` and 0 when none did).
    """

    def __init__(self, type, message, servlet="", worker="", pid=0):
        # Exception.__init__ rather than super(): ItemTimeout is also an
        # OSError, whose __init__ would read these as errno and strerror.
        Exception.__init__(self, type, message, servlet, worker, pid)
        self.type = type
        self.message = message
        self.servlet = servlet
        self.worker = worker
        self.pid = pid

    def __str__(self):
        text = f"{self.type}: {self.message}"
        where = []
        if self.servlet:
            where.append(f"servlet {self.servlet}")
        if self.worker:
            where.append(f"worker {self.worker}")
        if self.pid:
            where.append(f"pid {self.pid}")
        return f"{text} ({', '.join(where)})" if where else text

    def __repr__(self):
        return (
            f"{type(self).__name__}(type={self.type!r}, message={self.message!r}, "
            f"servlet={self.servlet!r}, worker={self.worker!r}, pid={self.pid!r})"
        )


class ItemTimeout(ItemError, TimeoutError):
    """The server answered ``Timeout``: the call's deadline passed first.

    Both an ItemError (it names the servlet and worker) and a TimeoutError,
    so ``except TimeoutError`` catches every kind of timeout.
    """


class ProtocolError(Exception):
    """The server sent an ERROR frame, or a frame this client cannot read.

    Attributes: ``code`` (the server's status: -4001 MPB_EPROTO for a frame
    it could not use, -4011 MPB_ELIMIT for a message over its
    max_message_bytes; 0 when this client found the fault), ``message``,
    and ``id`` (the request it concerns, or None).
    """

    def __init__(self, code, message, id=None):
        Exception.__init__(self, code, message, id)
        self.code = code
        self.message = message
        self.id = id

    def __str__(self):
        return f"{self.message} (code {self.code})"


def _item_error(type, message, servlet="", worker="", pid=0):
    cls = ItemTimeout if type == "Timeout" else ItemError
    return cls(type, message, servlet, worker, pid)


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# Ensembles nest at most this deep in a result, as the C client reads them.
_MAX_DEPTH = 32


def _member(value, depth=0):
    """One element of an ensemble's array result."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list):
        if depth >= _MAX_DEPTH:
            raise ValueError(f"a result nested deeper than {_MAX_DEPTH}")
        return [_member(v, depth + 1) for v in value]
    if isinstance(value, dict) and isinstance(value.get("error"), dict):
        e = value["error"]
        return _item_error(
            _text(e.get("type")) or "Error",
            _text(e.get("message")),
            _text(e.get("servlet")),
            _text(e.get("worker")),
            _int(e.get("pid")),
        )
    raise ValueError(f"an array result holds a {type(value).__name__}")


def _result(entry):
    """A RESULTS entry's outcome: bytes, a list, or an ItemError instance."""
    if entry[1] == 0:
        if len(entry) < 3:
            raise ValueError("a value entry without its value")
        return _member(entry[2])
    fields = list(entry[2:7]) + [""] * (7 - len(entry))
    return _item_error(
        _text(fields[0]) or "Error",
        _text(fields[1]),
        _text(fields[2]),
        _text(fields[3]),
        _int(fields[4]),
    )


def _well_formed(kind, message):
    """Whether a HEALTH or INFO reply has the shape docs/protocol.md gives."""
    if kind == HEALTH_REPLY:
        return len(message) >= 8
    return len(message) >= 3 and isinstance(message[2], list)


def _payload(item):
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    raise TypeError(f"an item is bytes or str, not {type(item).__name__}")


def _check_timeout(name, value):
    if value is None:
        return
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not 0 < value < math.inf
    ):
        raise ValueError(f"{name} must be a finite number of seconds > 0 (got {value!r})")


def _deadline_ms(timeout):
    if timeout is None:
        return 0
    # the server takes 2^40 ms and more as no deadline
    return min(max(1, math.ceil(timeout * 1000)), 1 << 40)


def _grace(timeout):
    """How long to wait past a deadline sent with a call for the server's
    own Timeout answer, which names the servlet and worker. A server that
    is up answers at the deadline; the grace only delays giving up on one
    that is not."""
    return min(1.0, 0.25 + 0.1 * timeout)


class Client:
    """A connection to ``mpb serve`` (or any server with a ZeroMQ front end).

    ``endpoint``: ``tcp://HOST:PORT`` or ``ipc:///path``. ZeroMQ connects
    in the background, so a server that is not up yet is found when it
    comes. ``timeout``: seconds to wait for a reply when a method is not
    given one. ``context``: a ``zmq.Context`` to share (the client then
    leaves it open on close); by default the client has its own.
    ``curve_server_key`` and ``curve_key``: for a server with a ``curve:``
    section (docs/security.md), the server's certificate file (its ``.pub``)
    and this client's secret certificate (``mpb keygen``'s ``.key``, whose
    ``.pub`` is in the server's clients folder); a server that refuses the
    key never answers, so calls time out.

    Ids come from one counter per client, so a reply that arrives after its
    caller gave up carries an id nobody waits for and is dropped.

    Not thread-safe: a client belongs to one thread at a time.
    """

    def __init__(self, endpoint, *, timeout=60.0, context=None, curve_server_key=None,
                 curve_key=None):
        _check_timeout("timeout", timeout)
        if timeout is None:
            raise ValueError("timeout must be a finite number of seconds > 0 (got None)")
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self._ids = itertools.count(1)
        self._wanted = {}  # request id -> reply, or _PENDING
        self._stray = None  # an ERROR frame without an id, for the next wait
        # replies naming no call that waits (unreadable, or without an id):
        # how many, and the last one's fault, told when a wait times out
        self._unreadable = 0
        self._unreadable_why = ""
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.DEALER)
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.SNDHWM, 0)
            self._socket.setsockopt(zmq.RCVHWM, 0)
            if curve_server_key is not None or curve_key is not None:
                self._use_curve(curve_server_key, curve_key)
            self._socket.connect(endpoint)
        except zmq.ZMQError as e:
            self.close()
            raise ValueError(f"connect {endpoint}: {e}") from None

    def _use_curve(self, server_key_file, key_file):
        import os
        import stat

        import zmq.auth  # czmq's certificate format, as mpb keygen writes it

        try:
            if server_key_file is None or key_file is None:
                raise ValueError("curve_server_key and curve_key go together")
            server_public, _ = zmq.auth.load_certificate(server_key_file)
            public, secret = zmq.auth.load_certificate(key_file)
            if secret is None:
                raise ValueError(f"{key_file} holds no secret key (give the .key file)")
            if os.stat(key_file).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ValueError(f"{key_file} may be read by others: chmod 600 {key_file}")
        except (OSError, ValueError) as e:
            self.close()
            raise ValueError(f"CURVE keys: {e}") from None
        self._socket.curve_serverkey = server_public
        self._socket.curve_publickey = public
        self._socket.curve_secretkey = secret

    # ---- lifecycle ----

    def close(self):
        """Closes the socket (unsent calls are dropped: linger 0). Idempotent."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._own_context and self._context is not None:
            self._context.term()
        self._context = None
        self._wanted.clear()

    @property
    def closed(self):
        return self._socket is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"<Client {self.endpoint} {state}>"

    # ---- requests ----

    def call(self, item, timeout=None, target=None):
        """Calls one item and returns its value.

        ``item``: bytes or str (sent as UTF-8). ``target``: a servlet path
        such as ``"models/a"`` to call only that part of the tree (None:
        the root). ``timeout``: seconds; also sent to the server as the
        call's deadline, so a call still unanswered then raises
        ``ItemTimeout`` (the server's answer); with no timeout the client's
        is used as a wait limit only. Raises ``TimeoutError`` when no reply
        comes (waiting a short grace past a deadline for the server's
        answer), ``ItemError`` when the server answers with an error,
        ``ProtocolError`` on an ERROR frame.

        Returns bytes, or for an ensemble a list of members (bytes, nested
        lists, or ItemError instances kept in place).
        """
        _check_timeout("timeout", timeout)
        payload = _payload(item)
        request_id = next(self._ids)
        self._send([CALL, [self._call_entry(request_id, payload, timeout, target)]])
        wait = self.timeout if timeout is None else timeout + _grace(timeout)
        reply = self._wait_for(request_id, wait, "a call")
        if isinstance(reply, Exception):
            raise reply
        return reply

    def map(
        self,
        items,
        *,
        window=DEFAULT_WINDOW,
        return_exceptions=False,
        timeout=None,
        target=None,
        batch=DEFAULT_BATCH,
        item_timeout=None,
    ):
        """Calls every item of an iterable, pipelined; yields results in input order.

        Keeps up to ``window`` calls in flight, sends up to ``batch`` calls
        per message, and yields each result as soon as it and every result
        before it are in. ``items`` may be lazy and endless: it is read only
        as the window has room.

        With ``return_exceptions=True`` an item's error is yielded in its
        place as an ItemError instance; otherwise the first error (in input
        order) is raised once every earlier result was yielded, and the
        calls still in flight are abandoned (their late replies are
        dropped). ``timeout``: seconds without any reply from the server
        before giving up with ``TimeoutError`` (default: the client's).
        ``item_timeout``: a per-item deadline sent to the server (an item
        still unanswered then gets an ItemTimeout); none by default.

        The server answers calls beyond its ``client_max_in_flight`` (by
        default its capacity) with ``Overloaded``: keep ``window`` below it.
        Arguments are checked here; the work starts at the first ``next()``.
        """
        _check_timeout("timeout", timeout)
        _check_timeout("item_timeout", item_timeout)
        for name, value in (("window", window), ("batch", batch)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1 (got {value!r})")
        self._check_open()
        return self._stream(
            iter(items),
            window,
            batch,
            return_exceptions,
            self.timeout if timeout is None else timeout,
            target,
            item_timeout,
        )

    def health(self, timeout=5.0):
        """Asks the server how it is.

        Returns a dict: ``live`` (the server answered), ``ready`` (every
        worker of its tree is connected and ready; false while it stops),
        ``workers``, ``in_flight``, ``capacity`` and ``version`` (of the
        client protocol). Raises ``TimeoutError`` when no answer comes
        within ``timeout`` seconds.
        """
        _check_timeout("timeout", timeout)
        request_id = next(self._ids)
        self._send([HEALTH, request_id])
        reply = self._wait_for(
            request_id, self.timeout if timeout is None else timeout, "a health request"
        )
        if isinstance(reply, Exception):
            raise reply
        return reply

    def info(self, timeout=5.0):
        """Lists the server's servlet tree: ``[(path, kind), ...]`` depth first,
        kind one of ``pool``, ``sequential``, ``ensemble``, ``switch``."""
        _check_timeout("timeout", timeout)
        request_id = next(self._ids)
        self._send([INFO, request_id])
        reply = self._wait_for(
            request_id, self.timeout if timeout is None else timeout, "an info request"
        )
        if isinstance(reply, Exception):
            raise reply
        return reply

    # ---- sending ----

    def _check_open(self):
        if self._socket is None:
            raise ValueError("the client is closed")

    @staticmethod
    def _call_entry(request_id, payload, timeout, target):
        entry = [request_id, payload]
        if timeout is not None or target:
            entry.append(_deadline_ms(timeout))
        if target:
            if not isinstance(target, str):
                raise TypeError(f"target is a servlet path (str), not {type(target).__name__}")
            entry.append(target)
        return entry

    def _send(self, frame):
        self._check_open()
        self._socket.send(msgpack.packb(frame, use_bin_type=True))

    # ---- receiving ----

    def _pump(self, wait):
        """Waits up to ``wait`` seconds for a message, then files every
        message already queued. Returns False when none came."""
        self._check_open()
        deadline = time.monotonic() + wait
        while not self._socket.poll(min(max(0, math.ceil(wait * 1000)), _MAX_POLL_MS)):
            wait = deadline - time.monotonic()
            if wait <= 0:
                return False
        filed = 0
        while True:
            try:
                parts = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            self._file(parts[-1])
            filed += 1
            # a server that never stops sending must not hold a wait past
            # its deadline: look at the clock every so many messages
            if filed % _PUMP_CHECK_EVERY == 0 and time.monotonic() >= deadline:
                return True

    def _file(self, frame):
        """Stores what one message answers for the ids still wanted."""
        try:
            # texts are cut at a byte count (an item's first bytes in an
            # error message) and may end inside a character: replace it
            message = msgpack.unpackb(frame, raw=False, unicode_errors="replace")
        except Exception as e:  # msgpack raises several types for bad input
            self._note_unreadable(f"a reply of {len(frame)} bytes is not msgpack ({e})")
            return
        if not isinstance(message, list) or not message or not isinstance(message[0], int):
            self._note_unreadable("a reply is not a msgpack array [type, ...]")
            return
        kind = message[0]
        if kind == RESULTS and len(message) >= 2 and isinstance(message[1], list):
            for entry in message[1]:
                self._file_result(entry)
        elif kind in (HEALTH_REPLY, INFO_REPLY) and not _well_formed(kind, message):
            what = "health" if kind == HEALTH_REPLY else "info"
            self._offer(
                message[1] if len(message) >= 2 else None,
                ProtocolError(0, f"a malformed {what} reply: {message!r:.80}"),
            )
        elif kind == HEALTH_REPLY:
            self._offer(
                message[1],
                {
                    "live": message[2] is True,
                    "ready": message[3] is True,
                    "workers": _int(message[4]),
                    "in_flight": _int(message[5]),
                    "capacity": _int(message[6]),
                    "version": _int(message[7]),
                },
            )
        elif kind == INFO_REPLY:
            self._offer(
                message[1],
                [
                    (_text(pair[0]), _text(pair[1]))
                    for pair in message[2]
                    if isinstance(pair, list) and len(pair) >= 2
                ],
            )
        elif kind == ERROR:
            request_id = message[1] if len(message) >= 2 else None
            code = _int(message[2]) if len(message) >= 3 else 0
            text = _text(message[3]) if len(message) >= 4 else ""
            error = ProtocolError(code, f"the server refused a request: {text}", request_id)
            if isinstance(request_id, int):
                self._offer(request_id, error)
            elif self._stray is None:
                self._stray = error
        # other types (none today) are ignored, as newer servers may add some

    def _file_result(self, entry):
        if not isinstance(entry, list) or not entry or not isinstance(entry[0], int):
            self._note_unreadable(f"a result entry without an id: {entry!r:.80}")
            return
        if self._wanted.get(entry[0], None) is not _PENDING:
            return  # stale: its caller gave up
        try:
            if len(entry) < 2 or not isinstance(entry[1], int):
                raise ValueError(f"the entry is not [id, status, ...]: {entry!r:.80}")
            outcome = _result(entry)
        except ValueError as e:
            outcome = ProtocolError(0, f"cannot read the result of call {entry[0]}: {e}", entry[0])
        self._wanted[entry[0]] = outcome

    def _offer(self, request_id, reply):
        if isinstance(request_id, int) and self._wanted.get(request_id, None) is _PENDING:
            self._wanted[request_id] = reply

    def _note_unreadable(self, why):
        """A reply that names no call: it may answer one given up on, so it
        fails no call that waits; a wait that times out tells of it."""
        self._unreadable += 1
        self._unreadable_why = why

    def _unreadable_note(self):
        if not self._unreadable:
            return ""
        return f" (meanwhile {self._unreadable} unreadable replies; the last: {self._unreadable_why})"

    def _raise_stray(self):
        if self._stray is not None:
            error, self._stray = self._stray, None
            raise error

    def _wait_for(self, request_id, wait, what):
        """The reply to one request, waiting up to ``wait`` seconds."""
        self._wanted[request_id] = _PENDING
        deadline = time.monotonic() + wait
        try:
            while True:
                reply = self._wanted[request_id]
                if reply is not _PENDING:
                    return reply
                self._raise_stray()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no answer to {what} from {self.endpoint} within {wait:.3g} s: "
                        f"is `mpb serve` running there?{self._unreadable_note()}"
                    )
                self._pump(left)
        finally:
            self._wanted.pop(request_id, None)

    # ---- pipelining ----

    def _stream(self, items, window, batch, return_exceptions, idle, target, item_timeout):
        pending = collections.deque()  # ids in input order
        exhausted = False
        try:
            while True:
                # Send: nothing in flight, one call at once; busy, chunks grow
                # with what is in flight, up to batch per message.
                while not exhausted and len(pending) < window:
                    room = min(batch, window - len(pending), max(1, len(pending)))
                    entries = []
                    for item in itertools.islice(items, room):
                        request_id = next(self._ids)
                        entries.append(
                            self._call_entry(request_id, _payload(item), item_timeout, target)
                        )
                    exhausted = len(entries) < room
                    if not entries:
                        break
                    self._send([CALL, entries])
                    for entry in entries:
                        self._wanted[entry[0]] = _PENDING
                        pending.append(entry[0])
                # Yield what is in, in order.
                while pending and self._wanted.get(pending[0], _PENDING) is not _PENDING:
                    reply = self._wanted.pop(pending.popleft())
                    if isinstance(reply, ProtocolError) or (
                        isinstance(reply, ItemError) and not return_exceptions
                    ):
                        raise reply
                    yield reply
                if not pending and exhausted:
                    return
                self._raise_stray()
                if not exhausted and len(pending) < window:
                    self._pump(0)  # only a look: more input may go in
                elif not self._pump(idle):
                    raise TimeoutError(
                        f"no reply from {self.endpoint} for {idle:.3g} s with "
                        f"{len(pending)} calls in flight{self._unreadable_note()}"
                    )
        finally:
            for request_id in pending:
                self._wanted.pop(request_id, None)
