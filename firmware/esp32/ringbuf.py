# Append-only ring of fixed-size records in flash. A record: 0xA5, seq, ts, temp*10, rh*10, wind*10, label, crc32.
# A torn write (power lost mid-record) fails its CRC and is skipped on boot; the acknowledged watermark lives in a
# small file replaced atomically (write + rename), so a reset never resends acknowledged records nor loses others.
import os
import struct
import binascii

FMT = "<IIhHHB"
BODY = struct.calcsize(FMT)  # 15
SLOT = 1 + BODY + 4  # 20 bytes


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Ring:
    def __init__(self, path, slots):
        self.path = path
        self.slots = slots
        self.ack_path = path + ".ack"
        self.acked = 0
        self.dropped = 0
        self.corrupt = 0
        if _exists(self.ack_path):
            try:
                with open(self.ack_path) as f:
                    a, d = f.read().split(",")
                self.acked, self.dropped = int(a), int(d)
            except (ValueError, OSError):
                pass
        if not _exists(path):
            with open(path, "wb") as f:
                f.write(b"\x00" * (SLOT * slots))
        self._scan()

    def _scan(self):
        self.index = {}  # seq -> slot
        self.corrupt = 0
        top, top_slot = 0, -1
        with open(self.path, "rb") as f:
            for i in range(self.slots):
                raw = f.read(SLOT)
                if len(raw) < SLOT:
                    if len(raw):
                        self.corrupt += 1
                    break
                if raw[0] != 0xA5:
                    continue
                if binascii.crc32(raw[1:1 + BODY]) & 0xFFFFFFFF != struct.unpack("<I", raw[1 + BODY:])[0]:
                    self.corrupt += 1
                    continue
                seq = struct.unpack("<I", raw[1:5])[0]
                self.index[seq] = i
                if seq > top:
                    top, top_slot = seq, i
        self.next_seq = max(top, self.acked) + 1
        self.pos = (top_slot + 1) % self.slots

    def append(self, ts, temp, rh, wind, label):
        seq = self.next_seq
        body = struct.pack(FMT, seq, int(ts), int(round(temp * 10)), int(round(rh * 10)),
                           int(round(wind * 10)), label)
        rec = b"\xa5" + body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF)
        old = [s for s, i in self.index.items() if i == self.pos]
        for s in old:
            if s > self.acked:
                self.dropped += 1  # full: the oldest unsent record is overwritten, and counted
                self._save()
            del self.index[s]
        with open(self.path, "r+b") as f:
            f.seek(self.pos * SLOT)
            f.write(rec)
        self.index[seq] = self.pos
        self.pos = (self.pos + 1) % self.slots
        self.next_seq = seq + 1
        return seq

    def pending(self):
        return sorted(s for s in self.index if s > self.acked)

    def read(self, seq):
        with open(self.path, "rb") as f:
            f.seek(self.index[seq] * SLOT)
            raw = f.read(SLOT)
        s, ts, t, rh, w, label = struct.unpack(FMT, raw[1:1 + BODY])
        return {"seq": s, "ts": ts, "temperature_c": t / 10, "humidity_pct": rh / 10, "wind_kmh": w / 10,
                "label": label}

    def ack(self, seq):
        if seq <= self.acked:
            return
        self.acked = seq
        self._save()

    def _save(self):
        tmp = self.ack_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d,%d" % (self.acked, self.dropped))
        os.rename(tmp, self.ack_path)
