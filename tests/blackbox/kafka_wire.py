"""Hand-built Kafka protocol frames for the raw-socket tests.

Only what the tests need, written from the protocol documentation so that a broker bug cannot
hide behind a shared codec: request frames (header v1/v2), ApiVersions v0 and v3, Metadata v4,
Produce v8 (non-flexible) and RecordBatch v2 with its CRC32C.
"""

import socket
import struct
import time

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_FIND_COORDINATOR = 10
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19

API_NAMES = {
    API_PRODUCE: "Produce",
    API_FETCH: "Fetch",
    API_LIST_OFFSETS: "ListOffsets",
    API_METADATA: "Metadata",
    API_FIND_COORDINATOR: "FindCoordinator",
    API_API_VERSIONS: "ApiVersions",
    API_CREATE_TOPICS: "CreateTopics",
}

# Error codes (org.apache.kafka.common.protocol.Errors).
NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
UNKNOWN_SERVER_ERROR = -1
INVALID_REQUIRED_ACKS = 21
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
INVALID_RECORD = 87
TOPIC_ALREADY_EXISTS = 36
UNSUPPORTED_VERSION = 35


# --- CRC32C (Castagnoli), as RecordBatch v2 uses ---------------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# --- primitive encoders ----------------------------------------------------------------------

def varint(n: int) -> bytes:
    """Zig-zag varint (Kafka's signed varint/varlong)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


# --- RecordBatch v2 --------------------------------------------------------------------------

def record(offset_delta, timestamp_delta, key, value, headers=()):
    body = bytearray()
    body += b"\x00"  # attributes
    body += varint(timestamp_delta)
    body += varint(offset_delta)
    if key is None:
        body += varint(-1)
    else:
        body += varint(len(key)) + key
    if value is None:
        body += varint(-1)
    else:
        body += varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        hkb = hk.encode()
        body += varint(len(hkb)) + hkb
        if hv is None:
            body += varint(-1)
        else:
            body += varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(records, base_timestamp=None, corrupt_crc=False, base_offset=0,
                 last_offset_delta=None, magic=2):
    """An uncompressed RecordBatch v2 of (key, value) pairs with a correct (or flipped) CRC32C;
    base_offset, last_offset_delta and magic may be set wrong on purpose."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    encoded = b"".join(
        record(i, 0, key, value) for i, (key, value) in enumerate(records)
    )
    after_crc = struct.pack(
        ">hiqqqhii",
        0,  # attributes: no compression, CreateTime, not transactional, not control
        len(records) - 1 if last_offset_delta is None else last_offset_delta,
        base_timestamp,
        base_timestamp,  # maxTimestamp
        -1,  # producerId
        -1,  # producerEpoch
        -1,  # baseSequence
        len(records),
    ) + encoded
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    # partitionLeaderEpoch, magic, crc
    after_length = struct.pack(">ibI", -1, magic, crc) + after_crc
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


def with_attributes(batch: bytes, attributes: int) -> bytes:
    """The same batch with other attribute bits (codec, transactional, control) and a CRC
    recomputed to match, so only the attributes are wrong."""
    body = bytearray(batch)
    struct.pack_into(">h", body, 21, attributes)  # after baseOffset, length, epoch, magic, crc
    struct.pack_into(">I", body, 17, crc32c(bytes(body[21:])))
    return bytes(body)


# --- frames ----------------------------------------------------------------------------------

def request_header_v1(api_key, api_version, correlation_id, client_id="blackbox"):
    return struct.pack(">hhi", api_key, api_version, correlation_id) + string(client_id)


def request_header_v2(api_key, api_version, correlation_id, client_id="blackbox"):
    return request_header_v1(api_key, api_version, correlation_id, client_id) + b"\x00"


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError(f"short response: need {n} bytes at {self.pos} of {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def i8(self):
        return self.unpack(">b")[0]

    def i16(self):
        return self.unpack(">h")[0]

    def i32(self):
        return self.unpack(">i")[0]

    def i64(self):
        return self.unpack(">q")[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def array(self, item):
        n = self.i32()
        return None if n < 0 else [item(self) for _ in range(n)]

    def remaining(self):
        return len(self.data) - self.pos


class Connection:
    """One TCP connection to the broker, with bounded reads."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._recv_exact(4))
        return self._recv_exact(size)

    def send_request(self, api_key, api_version, body: bytes, flexible_header=False):
        """Send one request without waiting; return its correlation id."""
        self.correlation_id += 1
        header = (request_header_v2 if flexible_header else request_header_v1)(
            api_key, api_version, self.correlation_id
        )
        self.send_raw(frame(header + body))
        return self.correlation_id

    def request(self, api_key, api_version, body: bytes, flexible_header=False):
        """Send one request; return (correlation_id, response bytes after the correlation id)."""
        self.correlation_id += 1
        header = (request_header_v2 if flexible_header else request_header_v1)(
            api_key, api_version, self.correlation_id
        )
        self.send_raw(frame(header + body))
        response = self.recv_frame()
        (corr,) = struct.unpack(">i", response[:4])
        assert corr == self.correlation_id, f"correlation id {corr} != {self.correlation_id}"
        return response[4:]

    def closed_by_peer(self, timeout=10.0) -> bool:
        """True once the broker closes this connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                data = self.sock.recv(65536)
                if not data:
                    return True
                # A response where none was due still means the connection stayed open.
                return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False


# --- ApiVersions -----------------------------------------------------------------------------

def parse_api_versions_v0(body: bytes):
    r = Reader(body)
    error = r.i16()
    keys = r.array(lambda r: r.unpack(">hhh"))
    return error, {k: (lo, hi) for k, lo, hi in keys or []}, r.remaining()


def api_versions(port, timeout=5.0):
    """ApiVersions v0: {api_key: (min, max)}. Raises if the answer is not error 0."""
    with Connection(port, timeout=timeout) as c:
        error, keys, _ = parse_api_versions_v0(c.request(API_API_VERSIONS, 0, b""))
    if error != NONE:
        raise AssertionError(f"ApiVersions v0 answered error {error}")
    return keys


# --- Metadata v4 -----------------------------------------------------------------------------

def metadata_v4_request(topics=None, allow_auto_topic_creation=False):
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)
    return body + struct.pack(">b", 1 if allow_auto_topic_creation else 0)


def parse_metadata_v4(body: bytes):
    r = Reader(body)
    throttle = r.i32()
    brokers = r.array(lambda r: {
        "node_id": r.i32(), "host": r.string(), "port": r.i32(), "rack": r.string()})
    cluster_id = r.string()
    controller_id = r.i32()

    def partition(r):
        return {
            "error_code": r.i16(),
            "partition_index": r.i32(),
            "leader_id": r.i32(),
            "replica_nodes": r.array(lambda r: r.i32()),
            "isr_nodes": r.array(lambda r: r.i32()),
        }

    topics = r.array(lambda r: {
        "error_code": r.i16(), "name": r.string(), "is_internal": r.i8() != 0,
        "partitions": r.array(partition)})
    assert r.remaining() == 0, f"{r.remaining()} trailing bytes in Metadata v4 response"
    return {"throttle_time_ms": throttle, "brokers": brokers, "cluster_id": cluster_id,
            "controller_id": controller_id, "topics": topics}


def metadata_v4(port, topics=None, timeout=5.0):
    with Connection(port, timeout=timeout) as c:
        return parse_metadata_v4(c.request(API_METADATA, 4, metadata_v4_request(topics)))


# --- Produce v8 ------------------------------------------------------------------------------

def produce_v8_request(topic, partition, batch: bytes, acks=-1, timeout_ms=10000):
    return (
        string(None)  # transactional_id
        + struct.pack(">hi", acks, timeout_ms)
        + struct.pack(">i", 1) + string(topic)
        + struct.pack(">i", 1) + struct.pack(">i", partition)
        + struct.pack(">i", len(batch)) + batch
    )


def parse_produce_v8(body: bytes):
    """{(topic, partition): {"error_code", "base_offset", ...}}"""
    r = Reader(body)
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            index = r.i32()
            error_code = r.i16()
            base_offset = r.i64()
            log_append_time = r.i64()
            log_start_offset = r.i64()
            record_errors = r.array(lambda r: (r.i32(), r.string()))
            error_message = r.string()
            out[(name, index)] = {
                "error_code": error_code, "base_offset": base_offset,
                "log_append_time_ms": log_append_time, "log_start_offset": log_start_offset,
                "record_errors": record_errors, "error_message": error_message}
    r.i32()  # throttle_time_ms
    assert r.remaining() == 0, f"{r.remaining()} trailing bytes in Produce v8 response"
    return out
