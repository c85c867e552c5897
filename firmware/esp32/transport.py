# Links from the station to the hub. Each has open() / send(topic_kind, body) / close(); send() returns True once
# the hub has the reading (MQTT PUBACK, HTTP 200/201), False when the hub refused it for good (HTTP 400: a reading
# it will never take must not block the backlog) and raises OSError when the link failed (retry later).
import socket


class MqttLink:
    name = "mqtt"

    def __init__(self, cfg, dev):
        self.m = cfg["mqtt"]
        self.dev = dev
        self.c = None

    def topic(self, kind):
        return "%s/%s/%s" % (self.m["topic_prefix"], self.dev, kind)

    def open(self):
        from umqtt.simple import MQTTClient

        m = self.m
        c = MQTTClient(self.dev, m["host"], m["port"], m.get("user"), m.get("password"), m.get("keepalive", 60))
        c.set_last_will(self.topic("status"), b"offline", retain=True, qos=1)
        c.connect(clean_session=True)
        sock = c.sock
        try:  # umqtt waits for each PUBACK: without TCP_NODELAY every small publish waits ~40 ms for Nagle
            if sock is not None:
                sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
        except (OSError, AttributeError):
            pass
        c.publish(self.topic("status"), b"online", retain=True, qos=1)
        self.c = c

    def send(self, body):
        if self.c is None:
            raise OSError("mqtt: not connected")
        self.c.publish(self.topic("reading"), body, qos=1)  # returns after the PUBACK, raises on failure
        return True

    def close(self):
        if self.c is not None:
            try:
                self.c.sock.close()
            except Exception:
                pass
        self.c = None


def parse_url(url):
    """'http://host[:port]/path' -> (host, port, path); https is not supported (no TLS on the station)."""
    if not url.startswith("http://"):
        raise ValueError("http.url must start with http://")
    rest = url[7:]
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    host, _, port = hostport.partition(":")
    return host, int(port) if port else 80, path


class HttpLink:
    """The paper's transport: one JSON reading per POST to the hub's /api/readings, bearer token."""

    name = "http"

    def __init__(self, cfg, dev):
        h = cfg["http"]
        self.host, self.port, self.path = parse_url(h["url"])
        self.token = h.get("token")
        self.timeout = h.get("timeout_s", 10)
        self.addr = None

    def open(self):
        self.addr = socket.getaddrinfo(self.host, self.port)[0][-1]  # DNS once per connection attempt

    def send(self, body):
        if self.addr is None:
            raise OSError("http: not opened")
        s = socket.socket()
        try:
            try:
                s.settimeout(self.timeout)
            except (AttributeError, OSError):
                pass
            s.connect(self.addr)
            head = "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
                self.path, self.host, self.port, len(body))
            if self.token:
                head += "Authorization: Bearer %s\r\n" % self.token
            s.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            line = s.readline()
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise OSError("http: bad status line %r" % line[:40])
            code = int(parts[1])
        finally:
            s.close()
        if code in (200, 201):
            return True
        if code == 400:
            return False
        raise OSError("http %d" % code)

    def close(self):
        self.addr = None


def make_link(cfg, dev):
    kind = cfg.get("transport", "mqtt")
    if kind == "mqtt":
        return MqttLink(cfg, dev)
    if kind == "http":
        return HttpLink(cfg, dev)
    raise ValueError("transport must be mqtt or http, not %r" % kind)
